"""Telegram's outbound side: the gateway's messages to a customer through the Bot API (python-telegram-bot).

Plain text only (no parse_mode), so nothing an agent or the AI writes can break Telegram's markup
parser. The core has already split long text to Telegram's limit (4,096 UTF-16 code units).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError

from gateway.channel import Capabilities
from gateway.files import FileRejected, FileStore
from gateway.models import Attachment, ConversationRef, DeliveryError, OutboundMessage, SendResult

log = logging.getLogger("channels.telegram")

CHANNEL = "telegram"
# Bot API sendMessage: "Text of the message to be sent, 1-4096 characters after entities parsing",
# counted in UTF-16 code units (the API's strings are UTF-16).
MAX_TEXT = 4096
# sendPhoto takes JPEG, PNG, WebP and GIF stills up to 10 MB; anything else goes as a document.
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
PHOTO_MAX_BYTES = 10 * 1024 * 1024
CSAT_PREFIX = "csat:"
Moved = Callable[[ConversationRef, str], Awaitable[ConversationRef]]


def provider_id(chat_id: str | int, message_id: int) -> str:
    """Telegram's message ids count per chat, so the chat is part of the id."""
    return f"{chat_id}:{message_id}"


def split_provider_id(value: str) -> tuple[str, int] | None:
    chat, _, message = value.rpartition(":")
    return (chat, int(message)) if chat and message.isdigit() else None


def rating_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(str(n), callback_data=f"{CSAT_PREFIX}{n}") for n in range(1, 6)]]
    )


def retry_seconds(exc: RetryAfter) -> float:
    # PTB 22.2+ warns when retry_after is read as an int; a timedelta or an int mean the same here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def delivery_error(exc: TelegramError) -> DeliveryError:
    """Bot API errors as the outbox understands them."""
    if isinstance(exc, RetryAfter):  # 429: "parameters.retry_after" seconds, honoured as a floor
        return DeliveryError(f"Telegram flood control: {exc.message}", retry_after=retry_seconds(exc))
    if isinstance(exc, Forbidden):
        # 403 "bot was blocked by the user" / "user is deactivated": nothing we send can arrive.
        return DeliveryError(f"Telegram refused: {exc.message}", unreachable=True)
    if isinstance(exc, BadRequest):
        if "chat not found" in exc.message.lower():
            return DeliveryError(f"Telegram: {exc.message}", unreachable=True)
        return DeliveryError(f"Telegram rejected the message: {exc.message}", permanent=True)
    # TimedOut, NetworkError, 5xx, a wrong token being fixed: try again later.
    return DeliveryError(f"Telegram unavailable: {type(exc).__name__}: {exc.message}")


class TelegramAdapter:
    name = CHANNEL
    label = "Telegram"
    capabilities = Capabilities(max_text=MAX_TEXT, attachments=True, edits=True, typing=True, text_units="utf16")

    def __init__(self, bot: Bot, *, csat_buttons: bool = True) -> None:
        self.bot = bot
        self.csat_buttons = csat_buttons
        # Set at start (the file store and the core's chat moves exist only then).
        self.files: FileStore | None = None
        self.moved: Moved | None = None

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult:
        try:
            try:
                return await self._send(ref, message)
            except ChatMigrated as exc:
                # The chat became a supergroup with a new id: follow it, and send there.
                if self.moved is None:
                    raise
                ref = await self.moved(ref, str(exc.new_chat_id))
                return await self._send(ref, message)
        except TelegramError as exc:
            raise delivery_error(exc) from exc

    async def _send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult:
        op = message.extra.get("op")
        if op == "edit":
            return await self._edit(message)
        if op == "delete":
            return await self._delete(message)
        if op is not None:
            raise DeliveryError(f"unknown op {op!r}", permanent=True)
        first: Message | None = None
        if message.text:
            markup = rating_keyboard() if self.csat_buttons and message.extra.get("kind") == "csat_question" else None
            first = await self.bot.send_message(ref.chat_id, message.text, reply_markup=markup)
        for attachment in message.attachments:
            sent = await self._send_file(ref.chat_id, attachment)
            first = first or sent
        if first is None:
            raise DeliveryError("nothing to send: no text and no files", permanent=True)
        return SendResult(provider_message_id=provider_id(ref.chat_id, first.message_id))

    async def _send_file(self, chat_id: str, attachment: Attachment) -> Message:
        """An agent's file, uploaded from the gateway's file store (Telegram never fetches our links)."""
        if not attachment.file_id or self.files is None:
            return await self.bot.send_message(chat_id, f"{attachment.name}: {attachment.url}")
        try:
            _doc, data = await self.files.read(attachment.file_id)
        except FileRejected as exc:
            raise DeliveryError(f"{attachment.name}: {exc.reason}", permanent=True) from None
        if attachment.content_type in PHOTO_TYPES and len(data) <= PHOTO_MAX_BYTES:
            return await self.bot.send_photo(chat_id, data, filename=attachment.name)
        return await self.bot.send_document(chat_id, data, filename=attachment.name)

    async def _edit(self, message: OutboundMessage) -> SendResult:
        targets = message.extra.get("target_provider_message_ids") or [""]
        target = split_provider_id(str(targets[0]))
        if target is None:
            raise DeliveryError("the reply to edit was never delivered to Telegram", permanent=True)
        try:
            await self.bot.edit_message_text(message.text, chat_id=target[0], message_id=target[1])
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():  # the same text again: already done
                raise
        return SendResult(provider_message_id=provider_id(*target))

    async def _delete(self, message: OutboundMessage) -> SendResult:
        """Every part of a reply split in parts goes."""
        targets = [split_provider_id(str(p)) for p in message.extra.get("target_provider_message_ids") or []]
        for target in filter(None, targets):
            try:
                await self.bot.delete_message(chat_id=target[0], message_id=target[1])
            except BadRequest as exc:
                # Already gone, or older than 48 hours (Telegram then refuses to delete).
                log.info("telegram_delete_refused", extra={"reason": exc.message})
                if "not found" not in exc.message.lower():
                    raise
        return SendResult()
