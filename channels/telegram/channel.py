"""The Telegram plug-in: the webhook route or long polling, inbound updates into the core, typing.

Updates arrive by webhook (POST /telegram/webhook, checked against the secret Telegram echoes in
X-Telegram-Bot-Api-Secret-Token) or by long polling (getUpdates with an offset kept in the database, so
a restart neither loses nor repeats an update). Each update is handled before it is acknowledged: a
webhook answers 200 only after the message is stored, and polling confirms an offset only after its
updates are stored. A repeat is a no-op (the message's idempotency key is its chat and message id).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import warnings
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from telegram import Bot
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from channels.telegram.adapter import CHANNEL, CSAT_PREFIX, TelegramAdapter, provider_id
from channels.telegram.media import fetch_media
from channels.telegram.plugin import WEBHOOK_PATH
from channels.telegram.settings import TelegramSettings
from channels.telegram.updates import (
    CallbackAnswer,
    ChatBlocked,
    ChatMoved,
    ChatUnblocked,
    CustomerEdit,
    CustomerMessage,
    Ignored,
    Parsed,
    Start,
    parse_update_data,
)
from gateway.channel import ChannelContext
from gateway.events import Event, Typing
from gateway.logs import log_event
from gateway.models import ConversationRef, InboundMessage

log = logging.getLogger("channels.telegram")

# The update types the gateway acts on (setWebhook / getUpdates `allowed_updates`); Telegram sends no others.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram shows "typing…" for 5 seconds or until a message arrives (sendChatAction), so it is renewed.
TYPING_RENEW_SECONDS = 4.0
MAX_BODY = 1024 * 1024
RETRY_MAX_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Handled:
    ok: bool
    reason: str = ""


class TelegramChannel:
    name = CHANNEL

    def __init__(self, settings: TelegramSettings, *, mode: str, base_url: str) -> None:
        self.settings = settings
        self.mode = mode
        self.webhook_url = f"{base_url}{WEBHOOK_PATH}"
        self.secret = settings.secret_token()
        root = settings.api_root
        self.bot = Bot(
            settings.token,
            base_url=f"{root}/bot",
            base_file_url=f"{root}/file/bot",
            request=HTTPXRequest(connection_pool_size=32, read_timeout=30.0, media_write_timeout=60.0),
        )
        self.adapter = TelegramAdapter(self.bot, csat_buttons=settings.csat_buttons)
        self.context: ChannelContext | None = None
        self._loop: asyncio.Task[None] | None = None
        self._typing: dict[str, asyncio.Task[None]] = {}

    # the plug-in contract (gateway/channel.py)

    @property
    def adapters(self) -> tuple[TelegramAdapter]:
        return (self.adapter,)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.webhook)

    async def start(self, context: ChannelContext) -> None:
        self.context = context
        self.adapter.files = context.files
        self.adapter.moved = context.chats.move_chat
        context.events.subscribe(self.on_event)
        # Registering the webhook or polling runs in the background: Telegram being unreachable at
        # start delays Telegram, never the gateway.
        work = self._register_webhook if self.mode == "webhook" else self._poll_forever
        self._loop = asyncio.create_task(work(), name=f"telegram-{self.mode}")

    async def stop(self) -> None:
        for task in [self._loop, *self._typing.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._typing.clear()
        with contextlib.suppress(Exception):
            await self.bot.shutdown()

    # webhook

    async def webhook(self, request: web.Request) -> web.Response:
        # Constant time: the secret is the only thing between the internet and ingest.
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log_event(log, "telegram_webhook_refused", logging.WARNING, reason="missing" if not given else "wrong")
            return web.json_response({"ok": False, "error": "forbidden"}, status=403)
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"ok": False, "error": "too large"}, status=413)
        try:
            data = json.loads(await request.read())
        except (ValueError, RecursionError):
            log_event(log, "telegram_webhook_unreadable", logging.WARNING)
            return web.json_response({"ok": False, "error": "body is not JSON"}, status=400)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            log_event(log, "telegram_webhook_unreadable", logging.WARNING)
            return web.json_response({"ok": False, "error": "not an update"}, status=400)
        if self.context is None:
            return web.json_response({"ok": False, "error": "starting"}, status=503)
        # Anything raised here (the database away) answers 500: Telegram delivers the update again.
        await self.handle(parse_update_data(data))
        return web.json_response({})

    async def _register_webhook(self) -> None:
        await self._with_retries(
            "telegram_webhook_set",
            lambda: self.bot.set_webhook(self.webhook_url, secret_token=self.secret, allowed_updates=ALLOWED_UPDATES),
        )
        log_event(log, "telegram_webhook_registered", url=self.webhook_url)

    async def _with_retries(self, what: str, call: Any) -> Any:
        delay = 1.0
        while True:
            try:
                return await call()
            except TelegramError as exc:
                log_event(log, what + "_failed", logging.WARNING, error=type(exc).__name__, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    # polling

    @property
    def _offset_key(self) -> str:
        return f"telegram:{self.settings.token.partition(':')[0]}:offset"

    async def _poll_forever(self) -> None:
        assert self.context is not None
        state = self.context.store.db["channel_state"]
        # A webhook left from webhook mode would make every getUpdates fail with 409.
        await self._with_retries("telegram_delete_webhook", lambda: self.bot.delete_webhook())
        log_event(log, "telegram_polling_started")
        delay = 1.0
        while True:
            try:
                saved = await state.find_one({"_id": self._offset_key})
                offset = int(saved["offset"]) if saved else None
                updates = await self._get_updates(offset)
                for update in updates:
                    await self.handle(parse_update_data(update))
                if updates:
                    # Confirmed only once every update of the batch is stored: a crash before this line
                    # gets the batch again, and the idempotency keys make the repeats no-ops.
                    newest = max(int(u["update_id"]) for u in updates) + 1
                    await state.update_one({"_id": self._offset_key}, {"$set": {"offset": newest}}, upsert=True)
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Conflict (409): another process polls this bot, or a webhook was set again.
                level = logging.WARNING if isinstance(exc, TelegramError) else logging.ERROR
                log_event(log, "telegram_poll_failed", level, error=type(exc).__name__, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _get_updates(self, offset: int | None) -> list[dict[str, Any]]:
        """getUpdates as raw JSON. PTB's own get_updates parses the whole batch at once, and one update
        it cannot parse (a field shape newer than the library) would fail every retry and wedge the
        offset; parsed one by one (parse_update_data), such an update is skipped and logged instead."""
        timeout = self.settings.poll_timeout_seconds
        params = {"offset": offset, "timeout": timeout, "allowed_updates": list(ALLOWED_UPDATES)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PTB suggests its own get_updates, for the reason above not used
            raw = await self.bot.do_api_request(
                "getUpdates", api_kwargs={k: v for k, v in params.items() if v is not None}, read_timeout=timeout + 10
            )
        return [u for u in raw if isinstance(u, dict) and isinstance(u.get("update_id"), int)]

    # inbound

    async def handle(self, parsed: Parsed) -> Handled:
        """One update into the core. Raises when the core could not store it (the update comes again)."""
        assert self.context is not None
        ingest, chats = self.context.ingest, self.context.chats
        if isinstance(parsed, CustomerMessage):
            ref = ConversationRef(CHANNEL, parsed.chat_id)
            attachments, notes = await fetch_media(
                self.bot,
                self.context.files,
                parsed.media,
                self.context.settings,
                official_api=self.settings.official_api,
            )
            text = "\n".join(t for t in (parsed.text, *notes) if t)
            await ingest.receive(
                InboundMessage(
                    ref=ref,
                    sender=parsed.sender.identity(),
                    text=text,
                    idempotency_key=f"telegram:{parsed.chat_id}:{parsed.message_id}",
                    provider_message_id=provider_id(parsed.chat_id, parsed.message_id),
                    attachments=attachments,
                    reply_to_provider_id=(
                        provider_id(parsed.chat_id, parsed.reply_to_message_id) if parsed.reply_to_message_id else ""
                    ),
                )
            )
        elif isinstance(parsed, Start):
            await chats.greet(
                ConversationRef(CHANNEL, parsed.chat_id),
                parsed.sender.identity(),
                key=f"telegram:{parsed.chat_id}:{parsed.message_id}",
                payload=parsed.payload,
            )
        elif isinstance(parsed, CustomerEdit):
            await chats.record_edit(
                CHANNEL, provider_id(parsed.chat_id, parsed.message_id), parsed.text, parsed.edit_date
            )
        elif isinstance(parsed, CallbackAnswer):
            await self._callback(parsed)
        elif isinstance(parsed, ChatBlocked):
            await chats.set_reachable(ConversationRef(CHANNEL, parsed.chat_id), False, "the customer blocked the bot")
        elif isinstance(parsed, ChatUnblocked):
            await chats.set_reachable(ConversationRef(CHANNEL, parsed.chat_id), True)
        elif isinstance(parsed, ChatMoved):
            await chats.move_chat(ConversationRef(CHANNEL, parsed.old_chat_id), parsed.new_chat_id)
        else:
            assert isinstance(parsed, Ignored)
            log_event(log, "telegram_update_ignored", logging.DEBUG, reason=parsed.reason)
            return Handled(False, parsed.reason)
        return Handled(True)

    async def _callback(self, parsed: CallbackAnswer) -> None:
        """A tap on a rating button: the same as typing the number."""
        assert self.context is not None
        with contextlib.suppress(TelegramError):  # only stops the button's spinner; the rating counts anyway
            await self.bot.answer_callback_query(parsed.callback_query_id)
        score = parsed.data.removeprefix(CSAT_PREFIX)
        if not parsed.data.startswith(CSAT_PREFIX) or score not in {"1", "2", "3", "4", "5"}:
            log_event(log, "telegram_update_ignored", logging.DEBUG, reason="unknown_callback")
            return
        await self.context.ingest.receive(
            InboundMessage(
                ref=ConversationRef(CHANNEL, parsed.chat_id),
                sender=parsed.sender.identity(),
                text=score,
                idempotency_key=f"telegram:callback:{parsed.callback_query_id}",
            )
        )

    # typing

    def on_event(self, event: Event) -> None:
        if not isinstance(event, Typing) or event.ref is None or event.ref.channel != CHANNEL:
            return
        current = self._typing.pop(event.conversation_id, None)
        if current is not None:
            current.cancel()
        if event.active:
            self._typing[event.conversation_id] = asyncio.create_task(self._keep_typing(event.ref.chat_id))

    async def _keep_typing(self, chat_id: str) -> None:
        # Stopped by the turn's end (Typing inactive); bounded in case that never comes.
        for _ in range(30):
            try:
                await self.bot.send_chat_action(chat_id, "typing")
            except TelegramError as exc:  # cosmetic: never worth a retry or a warning
                log_event(log, "telegram_typing_failed", logging.DEBUG, error=type(exc).__name__)
                return
            await asyncio.sleep(TYPING_RENEW_SECONDS)
