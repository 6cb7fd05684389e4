"""The Twilio plug-in: SMS and WhatsApp messages in at POST /twilio/messages, delivery statuses at
POST /twilio/status, both signed by Twilio (X-Twilio-Signature, checked with the twilio package's
RequestValidator over the public URL Twilio posted to).

A message is stored before Twilio gets its answer, an empty TwiML <Response/>: the AI's reply goes out
later through the outbox, so Twilio never waits for it (its webhook times out after 15 seconds). A
redelivered message (same MessageSid) is a no-op. SMS keywords (STOP, START, HELP) are handled here and
never reach the AI; a WhatsApp message reopens the 24-hour window and releases replies held for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from aiohttp import web
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.twilio.adapter import TwilioAdapter
from channels.twilio.contacts import Contacts, template_pending
from channels.twilio.errors import OPTED_OUT, WINDOW_CLOSED, meaning
from channels.twilio.inbound import Rejected, TwilioMessage, parse_inbound
from channels.twilio.media import MediaUnavailable, fetch_media
from channels.twilio.plugin import MESSAGES_PATH, STATUS_PATH
from channels.twilio.settings import TwilioSettings
from gateway.channel import ChannelContext
from gateway.logs import log_event
from gateway.models import ConversationRef, Identity, InboundMessage
from gateway.store import utcnow

log = logging.getLogger("channels.twilio")

SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio's webhooks are a few kilobytes of form fields; media come as URLs, never in the body.
MAX_BODY = 64 * 1024
RECORDED_STATUSES = frozenset({"sent", "delivered", "undelivered", "failed", "read"})
FAILED_STATUSES = frozenset({"undelivered", "failed"})
# A status callback can beat the outbox's note of the message's SID (Twilio answers the create call and
# posts "sent" at about the same time): look again briefly before giving up on it.
STATUS_LOOKUPS = 10
STATUS_LOOKUP_PAUSE = 0.2


class TwilioChannel:
    name = "twilio"

    def __init__(self, settings: TwilioSettings, *, base_url: str) -> None:
        self.settings = settings
        self.base_url = base_url
        self.validator = RequestValidator(settings.token)
        self.auth = aiohttp.encode_basic_auth(settings.account_sid or "", settings.token)
        status_url = f"{base_url}{STATUS_PATH}"
        self._adapters: dict[str, TwilioAdapter] = {}
        if settings.sms_enabled:
            self._adapters["sms"] = TwilioAdapter("sms", None, settings, status_url=status_url)
        if settings.whatsapp_enabled:
            self._adapters["whatsapp"] = TwilioAdapter("whatsapp", None, settings, status_url=status_url)
        self.context: ChannelContext | None = None
        self.contacts: Contacts | None = None
        self.client: Client | None = None
        self.session: aiohttp.ClientSession | None = None

    # the plug-in contract (gateway/channel.py)

    @property
    def adapters(self) -> tuple[TwilioAdapter, ...]:
        return tuple(self._adapters.values())

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(MESSAGES_PATH, self.messages)
        app.router.add_post(STATUS_PATH, self.status)

    async def start(self, context: ChannelContext) -> None:
        self.context = context
        self.contacts = Contacts(context.store.db["channel_state"])
        # The twilio client's async HTTP client is aiohttp underneath: created here, on the running loop.
        self.client = Client(
            self.settings.account_sid, self.settings.token, http_client=AsyncTwilioHttpClient(timeout=30)
        )
        # TWILIO_API_URL: the client has no base-URL setting, but each API domain keeps its base_url.
        self.client.api.base_url = self.settings.api_root
        self.session = aiohttp.ClientSession()
        for adapter in self._adapters.values():
            adapter.client = self.client
            adapter.contacts = self.contacts
            adapter.chats = context.chats

    async def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.http_client.close()  # type: ignore[attr-defined]
        if self.session is not None:
            await self.session.close()

    # signatures

    def signed_url(self, request: web.Request, path: str) -> str:
        """The URL Twilio computed its signature over: the public address it was configured with, so a
        TLS-terminating proxy in front (which makes the request look like http://internal:8080) is no
        matter. TWILIO_WEBHOOK_URL overrides it for the messages webhook when a proxy rewrites paths."""
        if path == MESSAGES_PATH and self.settings.webhook_url is not None:
            return str(self.settings.webhook_url)
        return f"{self.base_url}{request.path_qs}"

    async def _signed_form(self, request: web.Request, path: str) -> Any:
        """The form, if Twilio signed it; else None (the reason is logged)."""
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
        if request.content_type != "application/x-www-form-urlencoded":
            log_event(log, "twilio_webhook_refused", logging.WARNING, reason="not_a_form", path=path)
            raise web.HTTPBadRequest(text="expected application/x-www-form-urlencoded")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        form = await request.post()
        if not signature or not self.validator.validate(self.signed_url(request, path), form, signature):
            # The signature is all that stands between the internet and ingest; it is an HMAC over the
            # URL and every parameter, so a valid one means Twilio sent exactly this, to this address.
            log_event(
                log, "twilio_webhook_refused", logging.WARNING, reason="wrong" if signature else "missing", path=path
            )
            raise web.HTTPForbidden(text="signature check failed")
        return form

    # inbound messages

    async def messages(self, request: web.Request) -> web.Response:
        form = await self._signed_form(request, MESSAGES_PATH)
        if self.context is None:
            raise web.HTTPServiceUnavailable(text="starting")
        parsed = parse_inbound(form)
        if isinstance(parsed, Rejected):
            log_event(log, "twilio_message_ignored", logging.WARNING, reason=parsed.reason)
            if parsed.reason.startswith("Body:"):  # nothing in it (an empty message): nothing to store
                return self._twiml()
            raise web.HTTPBadRequest(text=parsed.reason)
        if parsed.channel not in self._adapters:
            log_event(log, "twilio_message_ignored", logging.WARNING, reason=f"{parsed.channel} is not configured")
            return self._twiml()
        try:
            await self.handle(parsed)
        except MediaUnavailable as exc:
            # Twilio retries a webhook that fails; the message is stored on that retry (same MessageSid).
            log_event(log, "twilio_media_unavailable", logging.WARNING, reason=str(exc))
            raise web.HTTPServiceUnavailable(text="media unavailable, try again") from None
        return self._twiml()

    @staticmethod
    def _twiml() -> web.Response:
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def handle(self, message: TwilioMessage) -> None:
        """One message into the core. Raises when the core could not store it (Twilio sends it again)."""
        assert self.context is not None and self.contacts is not None and self.session is not None
        ref = ConversationRef(message.channel, message.number)
        sender = Identity(message.channel, message.number, name=message.profile_name)
        chats = self.context.chats
        if message.channel == "whatsapp":
            state = await self.contacts.record_inbound("whatsapp", message.number, utcnow())
            if template_pending(state):
                await chats.wake_deliveries(ref)  # the reply held for the template's answer goes now
        if message.keyword is not None and await self._keyword(message, ref, sender):
            return
        key = f"twilio:{message.message_sid}"
        # A redelivery's files are not fetched again (the message is a no-op in ingest anyway).
        media = message.media if not message.media or await self.context.store.message_by_key(key) is None else ()
        attachments, notes = await fetch_media(
            self.session,
            self.auth,
            self.context.files,
            media,
            api_root=self.settings.api_root,
            max_bytes=self.context.settings.files_max_bytes,
        )
        await self.context.ingest.receive(
            InboundMessage(
                ref=ref,
                sender=sender,
                text="\n".join(t for t in (message.text, *notes) if t),
                idempotency_key=key,
                provider_message_id=message.message_sid,
                attachments=attachments,
            )
        )

    async def _keyword(self, message: TwilioMessage, ref: ConversationRef, sender: Identity) -> bool:
        """STOP, START and HELP on SMS: handled here, never shown to the AI. Returns False for a "yes" from
        a customer who never opted out: that is an answer, not a keyword."""
        assert self.context is not None and self.contacts is not None
        chats = self.context.chats
        word = message.text.strip(" .!?").lower()
        if message.keyword == "stop":
            if await self.contacts.set_opted_out(message.channel, message.number, True):
                await chats.set_reachable(
                    ref, False, f"the customer texted {word.upper()} and opted out of messages from this number"
                )
            log_event(log, "twilio_opted_out", channel=message.channel)
            return True
        if message.keyword == "start":
            state = await self.contacts.get(message.channel, message.number)
            if word == "yes" and not state.get("opted_out"):
                return False
            if await self.contacts.set_opted_out(message.channel, message.number, False):
                await chats.set_reachable(ref, True)
                await chats.tell_agents(
                    ref,
                    f"The customer texted {word.upper()}: they can receive messages on this number again.",
                    key=f"twilio-optin:{message.message_sid}",
                )
            log_event(log, "twilio_opted_in", channel=message.channel)
            return True
        # HELP: carriers require an answer with who we are and how to stop.
        await chats.notify(ref, sender, self.settings.sms_help_text, key=f"twilio:{message.message_sid}")
        return True

    # delivery statuses

    async def status(self, request: web.Request) -> web.Response:
        form = await self._signed_form(request, STATUS_PATH)
        if self.context is None:
            raise web.HTTPServiceUnavailable(text="starting")
        sid, status = str(form.get("MessageSid") or ""), str(form.get("MessageStatus") or "").lower()
        if not sid or status not in RECORDED_STATUSES:
            return web.Response(status=204)
        channel = "whatsapp" if str(form.get("From") or form.get("To") or "").startswith("whatsapp:") else "sms"
        code = str(form.get("ErrorCode") or "")
        problem = meaning(code) if status in FAILED_STATUSES else ""
        number = str(form.get("To") or "").removeprefix("whatsapp:")
        if code == str(OPTED_OUT) and self.contacts is not None and number:
            await self.contacts.set_opted_out(channel, number, True)
        # Only a failure is worth waiting for: it must reach the thread. A "sent" that lost the race is
        # followed by "delivered"; statuses of messages that are not ours (templates) answer at once.
        lookups = STATUS_LOOKUPS if problem else 1
        for attempt in range(1, lookups + 1):
            if await self.context.chats.delivery_status(channel, sid, status, problem):
                break
            if attempt < lookups:
                await asyncio.sleep(STATUS_LOOKUP_PAUSE)
        else:
            log_event(log, "twilio_status_unmatched", logging.DEBUG, status=status)
            return web.Response(status=204)
        if code == str(WINDOW_CLOSED) and channel == "whatsapp" and self.contacts is not None and number:
            # Twilio accepted the message and WhatsApp then refused it, outside the 24-hour window: sent
            # again, it meets the adapter's closed-window handling (the template, or the agent told).
            await self.contacts.close_window(channel, number)
            await self.context.chats.redeliver(channel, sid)
        return web.Response(status=204)
