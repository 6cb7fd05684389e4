"""Replies out by SMTP, each in the customer's mail thread (channels/email/compose.py builds the mail).

The Message-ID comes from the outbox job's content (message id and text), so a send the outbox retries
after a crash carries the same id and the customer's client shows it once; a correction (new text) gets
its own. The id is returned as the provider's message id: the outbox maps it to our message, which is how
a bounce that names it finds the delivery to mark failed, and how the customer's reply finds the
conversation.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from channels.email.compose import OutgoingFile, compose, message_id
from channels.email.settings import EmailSettings
from channels.email.smtp import send_mail
from channels.email.threads import CHANNEL, Threads
from gateway.channel import Capabilities
from gateway.files import FileFetchError, FileRejected, FileStore
from gateway.logs import log_event
from gateway.models import ConversationRef, DeliveryError, OutboundMessage, SendResult
from gateway.shaping import file_links

log = logging.getLogger("channels.email")

# Mail has no practical text limit; this keeps one reply one mail.
MAX_TEXT = 100_000
# Files over this (all together) go as links: many servers refuse mail over 25 MB, and base64 adds a third.
MAX_ATTACHED_BYTES = 15 * 1024 * 1024
DEFAULT_SUBJECT = "Your message to our support team"


class EmailAdapter:
    name = CHANNEL
    label = "Email"
    capabilities = Capabilities(max_text=MAX_TEXT, attachments=True)

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        # Set at start: the channel's thread state and the core's file store.
        self.threads: Threads | None = None
        self.files: FileStore | None = None
        self._tls: ssl.SSLContext | None = None

    @property
    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = self.settings.tls_context()
        return self._tls

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult:
        assert self.threads is not None
        if message.extra.get("op") is not None:  # a sent mail cannot be changed (capabilities say so)
            raise DeliveryError(f"email cannot {message.extra['op']} a sent message", permanent=True)
        thread = await self.threads.get(ref)
        recipient = str(thread.get("to") or ref.chat_id)
        if "@" not in recipient:
            raise DeliveryError("the customer's mail had no sender address to reply to", unreachable=True)
        files, links = await self._files(message)
        text = "\n\n".join(t for t in (message.text, file_links(links)) if t)
        digest = hashlib.sha256(f"{message.message_id}\n{message.seq}\n{text}".encode()).hexdigest()
        mail_id = message_id(f"{ref.key}\n{digest}", self.settings.domain)
        try:
            mail = self._compose(message, thread, recipient, text, mail_id, files)
        except (ValueError, TypeError, IndexError, MessageError) as exc:  # what the email package refuses
            raise DeliveryError(f"the reply could not be written as a mail: {exc}"[:300], permanent=True) from exc
        await send_mail(self.settings, mail, recipient, self.tls)
        bare = mail_id.strip("<>")
        try:
            await self.threads.sent(ref, bare)
        except Exception:  # the mail went; a lost link only shortens the next reply's References
            log.warning("email_thread_not_updated", exc_info=True)
        log_event(log, "email_sent", author=message.author, files=len(files))
        return SendResult(provider_message_id=bare)

    def _compose(
        self,
        message: OutboundMessage,
        thread: dict[str, Any],
        recipient: str,
        text: str,
        mail_id: str,
        files: list[OutgoingFile],
    ) -> EmailMessage:
        to_name = " ".join(str(thread.get("to_name") or "").split())
        return compose(
            sender=self._sender(message),
            to=Address(display_name=to_name, addr_spec=recipient) if to_name else recipient,
            subject=str(thread.get("subject") or DEFAULT_SUBJECT),
            text=text,
            msg_id=mail_id,
            in_reply_to=str(thread.get("in_reply_to") or ""),
            previous_references=[thread["root"], *thread.get("references", [])] if thread.get("root") else [],
            files=files,
            reply_to=self.settings.reply_to,
            automatic=message.author in ("ai", "system"),
            date=message.created_at,
        )

    def _sender(self, message: OutboundMessage) -> Address:
        """EMAIL_FROM; an agent's reply shows who wrote it ("Dana (Shop Support)"), from the same address,
        as help desks do, so the customer knows a person answered."""
        sender = self.settings.sender
        if message.author != "agent" or not message.agent_name:
            return sender
        team = sender.display_name or sender.domain
        return Address(display_name=f"{message.agent_name} ({team})", addr_spec=sender.addr_spec)

    async def _files(self, message: OutboundMessage) -> tuple[list[OutgoingFile], tuple]:
        """Agents' files attached, up to MAX_ATTACHED_BYTES together; the rest as links."""
        if not message.attachments:
            return [], ()
        assert self.files is not None
        attached: list[OutgoingFile] = []
        links = []
        budget = MAX_ATTACHED_BYTES
        for attachment in message.attachments:
            try:
                data = await self.files.read_attachment(attachment, max_bytes=budget)
            except (FileRejected, FileFetchError) as exc:
                log_event(log, "email_file_linked", reason=str(exc)[:200])
                links.append(attachment)
                continue
            budget -= len(data)
            attached.append(OutgoingFile(attachment.name, attachment.content_type or "application/octet-stream", data))
        return attached, tuple(links)
