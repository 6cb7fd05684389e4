"""The email plug-in: mail in from an IMAP mailbox (channels/email/mailbox.py) or a forwarding
provider's POST /email/inbound, replies out by SMTP (channels/email/adapter.py).

Every mail, whichever way it came, takes `handle`: parsed (never raising), sorted into a customer's
mail or software's (auto-replies, lists, bounces, our own), and stored before it is acknowledged: the
webhook answers 200 and the mailbox marks the mail processed only afterwards. Its Message-ID is its
idempotency key, so a mail delivered twice is stored once.

Software's mail never reaches the AI, so it can never start a loop with an autoresponder. It is
recorded in `email_received`; a bounce of one of our replies marks that delivery failed (and says so in
the Slack thread), and an out-of-office answer in a handed-off conversation is mentioned there.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from aiohttp import web
from pymongo.errors import DuplicateKeyError

from channels.email.adapter import EmailAdapter
from channels.email.bounces import bounce_reason
from channels.email.forwarded import NotAuthorized, check_basic_auth, read_forwarded_mail
from channels.email.mailbox import Mailbox
from channels.email.parsing import ParsedMail, parse_mail
from channels.email.plugin import INBOUND_PATH
from channels.email.settings import EmailSettings
from channels.email.threads import CHANNEL, Threads
from gateway.channel import ChannelContext
from gateway.files import FileRejected, human_size
from gateway.logs import log_event
from gateway.models import Attachment, ConversationRef, Identity, InboundMessage
from gateway.store import utcnow

log = logging.getLogger("channels.email")

Outcome = Literal["stored", "duplicate", "auto_reply", "bounce", "list", "own"]
AUTO_NOTE_CHARS = 300
# What of a mail's text is stored as the message; the whole mail is kept as the original file.
MAX_TEXT_CHARS = 100_000


class EmailChannel:
    name = CHANNEL

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self.adapter = EmailAdapter(settings)
        self.context: ChannelContext | None = None
        self.threads: Threads | None = None
        self.received: Any = None
        self.mailbox: Mailbox | None = None

    # the plug-in contract (gateway/channel.py)

    @property
    def adapters(self) -> tuple[EmailAdapter]:
        return (self.adapter,)

    def add_routes(self, app: web.Application) -> None:
        if self.settings.inbound_secret:
            app.router.add_post(INBOUND_PATH, self.inbound)
            # Mailgun posts the raw mail (body-mime) only to a URL that ends in "mime".
            app.router.add_post(f"{INBOUND_PATH}/mime", self.inbound)

    async def start(self, context: ChannelContext) -> None:
        self.context = context
        db = context.store.db
        self.threads = Threads(context.store, db["channel_state"], window_days=self.settings.email_thread_days)
        self.received = db["email_received"]
        self.adapter.threads = self.threads
        self.adapter.files = context.files
        if self.settings.imap_enabled:
            self.mailbox = Mailbox(self.settings, self.handle, db["channel_state"])
            self.mailbox.start()

    async def stop(self) -> None:
        if self.mailbox is not None:
            await self.mailbox.stop()

    # forwarded mail

    async def inbound(self, request: web.Request) -> web.Response:
        try:
            check_basic_auth(request, self.settings.inbound_secret)
        except NotAuthorized as exc:
            log_event(log, "email_webhook_refused", logging.WARNING, reason=str(exc))
            return web.Response(
                status=401, text="authentication required", headers={"WWW-Authenticate": 'Basic realm="email"'}
            )
        if self.context is None:
            raise web.HTTPServiceUnavailable(text="starting")
        try:
            raw = await read_forwarded_mail(request, self.settings.max_bytes)
        except web.HTTPException as exc:
            log_event(log, "email_webhook_unreadable", logging.WARNING, status=exc.status, reason=exc.text)
            raise
        # Anything raised while storing (the database away) answers 500: the provider posts it again.
        outcome = await self.handle(raw)
        return web.json_response({"status": outcome})

    # every mail

    async def handle(self, raw: bytes, *, oversize: int = 0) -> Outcome:
        """One mail into the core. Raises when it could not be stored (the mail comes again).
        `oversize`: the mailbox read only the headers of a mail this many bytes long."""
        assert self.context is not None and self.threads is not None
        mail = parse_mail(raw)
        kind = "own" if mail.from_address and mail.from_address == self.settings.address else mail.auto
        if kind is not None:
            return await self._software(mail, kind)
        key = f"email:{mail.message_id}"
        if await self.context.store.message_by_key(key) is not None:
            # Stored before: ingest's duplicate path runs a turn a killed process left unanswered.
            await self.context.ingest.receive(self._inbound(ConversationRef(CHANNEL, ""), mail, key, "", ()))
            return "duplicate"
        found = await self.threads.find(mail)
        ref = found or Threads.new_ref(mail)
        attachments, notes = await self._files(mail)
        if oversize:
            notes.append(
                f"[The mail was {human_size(oversize)}, over the {human_size(self.settings.max_bytes)} limit "
                "(EMAIL_MAX_MB): only its headers were read; the whole mail is still in the mailbox]"
            )
        original = await self._keep_original(raw, mail) if not oversize else ""
        text = mail.visible_text
        if found is None and mail.subject and not text.startswith(mail.subject):
            text = f"{mail.subject}\n\n{text}".strip()  # a first mail's subject is often the question itself
        if len(text) > MAX_TEXT_CHARS:
            # A message is one database document (16 MB at most) and the AI reads it whole.
            text = text[:MAX_TEXT_CHARS].rstrip() + f"\n[The mail's text was cut at {MAX_TEXT_CHARS:,} characters]"
        text = "\n".join(t for t in (text, *notes) if t)
        # The thread is noted first: the AI's reply, sent as soon as the message is stored, answers this mail.
        await self.threads.received(ref, mail)
        await self.context.ingest.receive(self._inbound(ref, mail, key, text, attachments, original))
        log_event(log, "email_received", threaded=found is not None, files=len(attachments), notes=len(mail.notes))
        return "stored"

    def _inbound(
        self,
        ref: ConversationRef,
        mail: ParsedMail,
        key: str,
        text: str,
        attachments: tuple[Attachment, ...],
        original: str = "",
    ) -> InboundMessage:
        return InboundMessage(
            ref=ref,
            sender=Identity(
                CHANNEL, mail.from_address or "unknown-sender", name=mail.from_name, email=mail.from_address
            ),
            text=text,
            idempotency_key=key,
            provider_message_id=mail.message_id,
            attachments=attachments,
            received_at=None,
            origin={
                "subject": mail.subject,
                "from": mail.from_address,
                "to": list(mail.to),
                "original_file_id": original or None,
                "notes": list(mail.notes),
            },
        )

    async def _files(self, mail: ParsedMail) -> tuple[tuple[Attachment, ...], list[str]]:
        """The mail's files into the file store, within its limits; each refused one a note in the text."""
        assert self.context is not None
        stored: list[Attachment] = []
        notes: list[str] = []
        for item in mail.attachments:
            try:
                stored.append(
                    await self.context.files.put(
                        item.data, name=item.name, content_type=item.content_type, conversation_id="", source="customer"
                    )
                )
            except FileRejected as exc:
                notes.append(f"[{item.name} not received: {exc.reason}]")
                log_event(log, "email_file_refused", code=exc.code)
        return tuple(stored), notes

    async def _keep_original(self, raw: bytes, mail: ParsedMail) -> str:
        """The mail as received, for people to open: what the AI sees has quotes and signatures cut."""
        assert self.context is not None
        return await self.context.files.keep_original(
            raw,
            name=f"{(mail.subject or 'mail')[:80]}.eml",
            content_type="message/rfc822",
            source="customer",
            key=f"email:{mail.message_id}",
        )

    async def _software(self, mail: ParsedMail, kind: str) -> Outcome:
        """Mail software sent: recorded, never answered. Effects first, record last, so a crash in
        between repeats the (idempotent) effects rather than skipping them."""
        assert self.context is not None and self.threads is not None
        if await self.received.find_one({"_id": mail.message_id}, {"_id": 1}) is not None:
            return "duplicate"
        chats = self.context.chats
        matched: list[str] = []
        conversation_ref: ConversationRef | None = None
        if kind == "bounce":
            reason = bounce_reason(mail.text, mail.delivery_status)
            for bounced in mail.bounced_message_ids:
                if await chats.delivery_status(CHANNEL, bounced, "failed", f"the mail bounced: {reason}"):
                    matched.append(bounced)
        elif kind == "auto_reply":
            conversation_ref = await self.threads.find(mail)
            if conversation_ref is not None:
                said = " ".join(mail.visible_text.split())[:AUTO_NOTE_CHARS]
                await chats.tell_agents(
                    conversation_ref,
                    f"An automatic reply came back from the customer's mailbox (not answered): “{mail.subject}”"
                    + (f"\n> {said}" if said else ""),
                    key=f"email-auto:{mail.message_id}",
                )
        try:
            await self.received.insert_one(
                {
                    "_id": mail.message_id,
                    "kind": kind,
                    "from": mail.from_address,
                    "subject": mail.subject[:500],
                    "received_at": utcnow(),
                    "bounced": matched,
                    "conversation": conversation_ref.key if conversation_ref else None,
                }
            )
        except DuplicateKeyError:
            return "duplicate"
        log_event(log, "email_not_answered", kind=kind, matched=len(matched))
        return kind  # type: ignore[return-value]
