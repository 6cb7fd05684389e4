"""SMS and WhatsApp out through Twilio's REST API (the `twilio` package's client on its aiohttp-based
async HTTP client, so a send never blocks the event loop).

The core has already split the text: for SMS into messages of at most TWILIO_SMS_MAX_SEGMENTS segments
counted as carriers count them (gateway/sms.py), for WhatsApp at Twilio's 1,600 characters. Before each
send the customer's number is checked: an SMS contact who texted STOP gets nothing more, and a WhatsApp
reply outside the 24-hour window is not sent blindly (an approved template goes instead, if configured).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from channels.twilio.contacts import Contacts, template_pending, window_open
from channels.twilio.errors import MEANINGS, OPTED_OUT, WINDOW_CLOSED, delivery_error, meaning
from channels.twilio.settings import TwilioSettings
from gateway.channel import Capabilities
from gateway.chat_events import ChatEvents
from gateway.logs import log_event
from gateway.models import ConversationRef, DeliveryError, OutboundMessage, SendResult
from gateway.store import utcnow

log = logging.getLogger("channels.twilio")

Kind = Literal["sms", "whatsapp"]
# Twilio's Messages resource takes a Body of up to 1,600 characters (WhatsApp and concatenated SMS alike).
WHATSAPP_MAX_TEXT = 1600
# How long a reply held back by a closed WhatsApp window waits between looks; the customer's answer
# wakes it at once (ChatEvents.wake_deliveries), and the outbox gives up after OUTBOX_GIVE_UP_SECONDS.
WINDOW_RECHECK_SECONDS = 3600.0


def address(kind: Kind, number: str) -> str:
    """Twilio addresses WhatsApp users as whatsapp:+E164, SMS users as the bare number."""
    return f"whatsapp:{number}" if kind == "whatsapp" else number


class TwilioAdapter:
    def __init__(self, kind: Kind, client: Client | None, settings: TwilioSettings, *, status_url: str) -> None:
        self.name = kind
        self.kind = kind
        self.label = "SMS" if kind == "sms" else "WhatsApp"
        if kind == "sms":
            # Files go as MediaUrl only where MMS exists (US and Canada numbers, TWILIO_SMS_MEDIA); else
            # the core turns them into links in the text.
            self.capabilities = Capabilities(
                max_text=settings.sms_max_segments, attachments=settings.sms_media, text_units="sms_segments"
            )
        else:
            self.capabilities = Capabilities(max_text=WHATSAPP_MAX_TEXT, attachments=True)
        self.client = client
        self.settings = settings
        self.status_url = status_url
        # Set at start: the per-number state and the core's channel events.
        self.contacts: Contacts | None = None
        self.chats: ChatEvents | None = None

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult:
        assert self.contacts is not None
        if message.extra.get("op") is not None:  # no edits on SMS or WhatsApp (capabilities say so)
            raise DeliveryError(f"{self.label} cannot {message.extra['op']} a sent message", permanent=True)
        state = await self.contacts.get(self.kind, ref.chat_id)
        if state.get("opted_out"):
            # Carriers and Twilio refuse it anyway (21610); saying so here spares a doomed request.
            raise DeliveryError(f"{MEANINGS[OPTED_OUT]}; they can text START to hear from us again", unreachable=True)
        if self.kind == "whatsapp" and not window_open(state, utcnow()):
            await self._window_closed(ref, message, state)
        try:
            first = await self._create(ref, message)
        except TwilioRestException as exc:
            if exc.code == WINDOW_CLOSED:  # Twilio knows better than our clock (another sender, a lost inbound)
                await self._window_closed(ref, message, {**state, "last_inbound_at": None})
            if exc.code == OPTED_OUT:
                await self.contacts.set_opted_out(self.kind, ref.chat_id, True)
            raise delivery_error(exc) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"Twilio unreachable: {type(exc).__name__}") from exc
        return SendResult(provider_message_id=first)

    async def _create(self, ref: ConversationRef, message: OutboundMessage) -> str:
        """The text with the first file, then one message per further file (WhatsApp takes one media
        per message). Returns the first message's SID."""
        media = [a.url for a in message.attachments if a.url]
        first = await self._post(ref, body=message.text, media=media[:1])
        for url in media[1:]:
            await self._post(ref, body="", media=[url])
        return first

    async def _post(self, ref: ConversationRef, *, body: str = "", media: list[str] | None = None, **extra: Any) -> str:
        params: dict[str, Any] = {"to": address(self.kind, ref.chat_id), "status_callback": self.status_url, **extra}
        if self.kind == "whatsapp":
            params["from_"] = self.settings.whatsapp_from
        elif self.settings.messaging_service_sid:
            params["messaging_service_sid"] = self.settings.messaging_service_sid
        else:
            params["from_"] = self.settings.sms_from
        if body:
            params["body"] = body
        if media:
            params["media_url"] = media
        if not body and not media and "content_sid" not in extra:
            raise DeliveryError("nothing to send: no text and no files", permanent=True)
        assert self.client is not None
        sent = await asyncio.wait_for(self.client.messages.create_async(**params), timeout=30)
        return str(sent.sid)

    async def _window_closed(self, ref: ConversationRef, message: OutboundMessage, state: dict[str, Any]) -> None:
        """WhatsApp only lets a business write freely within 24 hours of the customer's last message.
        With an approved template configured, it goes instead (once) and the reply waits for the
        customer's answer; without one the reply fails and the agent is told why."""
        assert self.contacts is not None and self.chats is not None
        template = self.settings.whatsapp_template_sid
        key = f"twilio-window:{ref.key}:{state.get('last_inbound_at')}"
        if template is None:
            await self.chats.tell_agents(
                ref,
                "WhatsApp's 24-hour window is closed: the customer has not written for a day, so WhatsApp only "
                "delivers approved templates. Your reply was not sent. Set TWILIO_WHATSAPP_TEMPLATE_SID to "
                "reopen the conversation with a template, or reach the customer another way.",
                key=key,
            )
            raise DeliveryError(meaning(WINDOW_CLOSED) + " (no template configured)", permanent=True)
        if not template_pending(state):
            variables = json.dumps({"1": message.agent_name or "our support team"})
            try:
                await self._post(ref, content_sid=template, content_variables=variables)
            except TwilioRestException as exc:
                raise delivery_error(exc) from exc
            await self.contacts.record_template(self.kind, ref.chat_id, utcnow())
            log_event(log, "twilio_template_sent", channel=self.kind)
            await self.chats.tell_agents(
                ref,
                "WhatsApp's 24-hour window was closed, so the approved template was sent to ask the customer "
                "to reply. Your message goes out as soon as they do.",
                key=key,
            )
        raise DeliveryError("held until the customer answers the WhatsApp template", retry_after=WINDOW_RECHECK_SECONDS)
