"""One driver per registered channel: how the contract suite plays the customer and the provider.

A driver delivers a customer's text (and the same message again, as a provider's retry would), forges
a request, reads what the customer received, and, where the channel has a provider that can refuse a
message for good, makes it refuse. Adding a channel to channels/registry.py without a driver here
fails the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import ClientWebSocketResponse, WSMsgType

from gateway.text_split import Units
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.telegram_updates import text_update
from tests.fakes.twilio_api import FakeTwilioApi
from tests.helpers import eventually
from tests.integration.email_desk import CUSTOMER, customer_mail, post_mail, start_email_desk
from tests.integration.slack_desk import Desk, start_desk
from tests.integration.telegram_bot import start_webhook_desk
from tests.integration.twilio_phone import SMS_FROM, WHATSAPP_FROM, messages_url, start_twilio_desk
from tests.mailservers.certs import MailCerts
from tests.mailservers.smtp import SmtpServer


@dataclass
class Received:
    """One message as the customer's app shows it now."""

    text: str
    files: list[str] = field(default_factory=list)  # names of files that arrived as files
    edited: bool = False


class ChannelDriver(Protocol):
    name: str
    max_text: int
    units: Units

    async def start(self, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path) -> Desk: ...

    async def customer_says(self, text: str, key: int) -> str:
        """Deliver the customer's message `key`; returns the conversation id once it is stored."""
        ...

    async def forge(self, text: str) -> int:
        """A request with a wrong signature or secret; returns the HTTP status (or WebSocket close code)."""
        ...

    async def received(self) -> list[Received]: ...

    async def refuse_everything(self) -> bool:
        """Make the provider refuse every further message for good; False if the channel has no such provider."""
        ...

    async def close(self) -> None: ...


class WebchatDriver:
    name = "webchat"
    max_text = 100_000
    units: Units = "chars"

    def __init__(self) -> None:
        self.gateway: RunningGateway | None = None
        self.session: dict[str, str] = {}
        self.ws: ClientWebSocketResponse | None = None
        self.frames: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path) -> Desk:
        desk = await start_desk(gateway_factory, slack, routing_file)
        self.gateway = desk.gateway
        return desk

    async def _connect(self) -> ClientWebSocketResponse:
        assert self.gateway is not None
        if not self.session:
            self.session = await self.gateway.new_session()
        if self.ws is None:
            self.ws = await self.gateway.connect(self.session["token"])
            self._reader = asyncio.create_task(self._read(self.ws))
        return self.ws

    async def _read(self, ws: ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.frames.append(msg.json())

    async def customer_says(self, text: str, key: int) -> str:
        ws = await self._connect()
        seen = len(self.frames)
        await ws.send_json({"type": "message", "text": text, "client_msg_id": f"m{key}"})
        # Stored: the customer's own message comes back as its echo (or as the ack of a re-send).
        await eventually(lambda: any(f.get("client_msg_id") == f"m{key}" for f in self.frames[seen:]))
        return self.session["conversation_id"]

    async def forge(self, text: str) -> int:
        assert self.gateway is not None
        session = await self.gateway.new_session()
        forged = session["token"][:-4] + ("AAAA" if not session["token"].endswith("AAAA") else "BBBB")
        ws = await self.gateway.connect(forged)
        await ws.send_json({"type": "message", "text": text, "client_msg_id": "forged"})
        await ws.receive()
        return int(ws.close_code or 0)

    async def received(self) -> list[Received]:
        """Messages by seq in their latest state: edits and deletions applied, as the widget shows them."""
        shown: dict[int, Received] = {}
        for frame in self.frames:
            if frame.get("type") == "message" and frame.get("author") != "customer":
                files = [a["name"] for a in frame.get("attachments") or []]
                shown.setdefault(frame["seq"], Received(frame.get("text") or "", files))
            elif frame.get("type") == "message_edited" and frame["seq"] in shown:
                shown[frame["seq"]] = Received(frame["text"], shown[frame["seq"]].files, edited=True)
            elif frame.get("type") == "message_deleted":
                shown.pop(frame["seq"], None)
        return [shown[seq] for seq in sorted(shown)]

    async def refuse_everything(self) -> bool:
        return False  # messages are stored first and replayed on reconnect: there is no provider to refuse

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


class TelegramDriver:
    name = "telegram"
    max_text = 4096
    units: Units = "utf16"
    chat = 7770001

    def __init__(self, fake: FakeTelegramApi) -> None:
        self.fake = fake
        self.gateway: RunningGateway | None = None

    async def start(self, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path) -> Desk:
        desk = await start_webhook_desk(gateway_factory, slack, routing_file, self.fake)
        self.gateway = desk.gateway
        return desk

    async def customer_says(self, text: str, key: int) -> str:
        status = await self.fake.deliver_webhook(text_update(self.chat, text, message_id=key))
        assert status == 200, status
        assert self.gateway is not None and self.gateway.runtime.store is not None
        conversation = await self.gateway.runtime.store.conversations.find_one({"ref.chat_id": str(self.chat)})
        assert conversation is not None
        return str(conversation["_id"])

    async def forge(self, text: str) -> int:
        return await self.fake.deliver_webhook(text_update(self.chat, text), secret="forged-secret")

    async def received(self) -> list[Received]:
        shown = []
        for message in self.fake.sent_messages(self.chat):
            files = (
                [str((message.get("document") or {}).get("file_name") or "photo")]
                if (message.get("photo") or message.get("document"))
                else []
            )
            shown.append(Received(message.get("text") or message.get("caption") or "", files, "edit_date" in message))
        return shown

    async def refuse_everything(self) -> bool:
        self.fake.block(self.chat)
        return True

    async def close(self) -> None:
        pass


class TwilioDriver:
    """SMS or WhatsApp (one plug-in, two adapters), through the fake Twilio API."""

    number = "+15558880001"

    def __init__(self, fake: FakeTwilioApi, kind: str) -> None:
        self.fake = fake
        self.name = kind
        if kind == "sms":
            self.max_text, self.units = 6, "sms_segments"  # TWILIO_SMS_MAX_SEGMENTS' default
        else:
            self.max_text, self.units = 1600, "chars"
        self.gateway: RunningGateway | None = None

    @property
    def address(self) -> str:
        return f"whatsapp:{self.number}" if self.name == "whatsapp" else self.number

    async def start(self, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path) -> Desk:
        desk = await start_twilio_desk(gateway_factory, slack, routing_file, self.fake)
        self.gateway = desk.gateway
        return desk

    def _params(self, text: str, key: int | None) -> dict[str, str]:
        sid = f"SM{key:032x}" if key is not None else None
        if self.name == "whatsapp":
            return self.fake.whatsapp_params(self.address, f"whatsapp:{WHATSAPP_FROM}", text, message_sid=sid)
        return self.fake.sms_params(self.number, SMS_FROM, text, message_sid=sid)

    async def customer_says(self, text: str, key: int) -> str:
        assert self.gateway is not None and self.gateway.runtime.store is not None
        status, _body, _headers = await self.fake.send_inbound(messages_url(self.gateway), self._params(text, key))
        assert status == 200, status
        conversation = await self.gateway.runtime.store.conversations.find_one({"ref.chat_id": self.number})
        assert conversation is not None
        return str(conversation["_id"])

    async def forge(self, text: str) -> int:
        assert self.gateway is not None
        status, _body, _headers = await self.fake.send_inbound(
            messages_url(self.gateway), self._params(text, None), forge=True
        )
        return status

    async def received(self) -> list[Received]:
        return [
            Received(m.body or "", [url.rsplit("/", 1)[-1].split("?")[0] for url in m.media_urls])
            for m in self.fake.messages_to(self.address)
        ]

    async def refuse_everything(self) -> bool:
        self.fake.refuse(self.address, 21610)
        return True

    async def close(self) -> None:
        pass


class EmailDriver:
    """Mail posted to /email/inbound as a forwarding provider would; replies caught by a real SMTP server."""

    name = "email"
    max_text = 100_000
    units: Units = "chars"

    def __init__(self, certs: MailCerts) -> None:
        self.certs = certs
        self.smtp = SmtpServer(certs, mode="starttls").start()
        self.gateway: RunningGateway | None = None

    async def start(self, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path) -> Desk:
        desk = await start_email_desk(gateway_factory, slack, routing_file, self.smtp, self.certs)
        self.gateway = desk.gateway
        return desk

    async def customer_says(self, text: str, key: int) -> str:
        assert self.gateway is not None and self.gateway.runtime.store is not None
        # One subject, no thread headers: every mail joins the customer's conversation by sender and subject.
        raw = customer_mail(text, subject="My order", message_id=f"<m{key}@customer.example>")
        status, body = await post_mail(self.gateway, raw)
        assert status == 200, (status, body)
        conversation = await self.gateway.runtime.store.conversations.find_one({"ref.chat_id": CUSTOMER})
        assert conversation is not None
        return str(conversation["_id"])

    async def forge(self, text: str) -> int:
        assert self.gateway is not None
        status, _body = await post_mail(self.gateway, customer_mail(text), secret="forged-secret")
        return status

    async def received(self) -> list[Received]:
        shown = []
        for mail in self.smtp.mails_to(CUSTOMER):
            body = mail.message.get_body(("plain",))
            text = body.get_content() if body is not None else ""
            files = [str(part.get_filename()) for part in mail.message.iter_attachments()]
            shown.append(Received(text.replace("\r\n", "\n").removesuffix("\n"), files))
        return shown

    async def refuse_everything(self) -> bool:
        self.smtp.refuse(CUSTOMER, 550, "5.1.1 User unknown")
        return True

    async def close(self) -> None:
        self.smtp.stop()
