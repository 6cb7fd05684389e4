"""Our outbound mail, built so every common client keeps one thread per conversation.

Gmail threads by subject plus References/In-Reply-To, Outlook by its own conversation index but falls back
to the same headers, Apple Mail by References. So each mail carries its own Message-ID, In-Reply-To (the
customer's latest mail) and References (the chain so far), and a "Re:" subject. The body is a plain-text
part plus an HTML alternative: the text escaped, links kept clickable, line breaks kept.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

# A reply's subject: one "Re:" in front, whatever prefixes the customer's client put there.
_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|antw)\s*(?:\[\d+\])?\s*:\s*", re.IGNORECASE)
_LINK = re.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)\]}'’”]")
# RFC 5322 allows long References; clients cut them too. The first id (the thread's root) and the latest
# ones are what threading needs.
MAX_REFERENCES = 20


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    name: str
    content_type: str
    data: bytes


def reply_subject(subject: str) -> str:
    subject = " ".join(subject.split())
    stripped = subject
    while (match := _REPLY_PREFIX.match(stripped)) is not None:
        stripped = stripped[match.end() :]
    return f"Re: {stripped}" if stripped else "Re: your message"


def message_id(key: str, domain: str) -> str:
    """A Message-ID derived from the outbox job's key: a retried send carries the same id, so a mail that
    did go out before a crash is recognisable as the same mail."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def references(previous: Sequence[str], in_reply_to: str) -> list[str]:
    chain = [ref for ref in previous if ref] + ([in_reply_to] if in_reply_to else [])
    chain = list(dict.fromkeys(chain))  # a client that repeats an id does not make it count twice
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1) :]
    return [f"<{ref.strip('<>')}>" for ref in chain]


def text_to_html(text: str) -> str:
    """The plain text as HTML: escaped, links clickable, paragraphs and line breaks kept."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        pieces, last = [], 0
        for match in _LINK.finditer(block):
            pieces.append(html.escape(block[last : match.start()]))
            url = html.escape(match.group(), quote=True)
            pieces.append(f'<a href="{url}">{url}</a>')
            last = match.end()
        pieces.append(html.escape(block[last:]))
        paragraphs.append("<p>" + "".join(pieces).replace("\n", "<br>\n") + "</p>")
    return '<!DOCTYPE html><html><body style="font-family: sans-serif">\n' + "\n".join(paragraphs) + "\n</body></html>"


def compose(
    *,
    sender: Address,
    to: str | Address,
    subject: str,
    text: str,
    msg_id: str,
    in_reply_to: str = "",
    previous_references: Sequence[str] = (),
    files: Sequence[OutgoingFile] = (),
    reply_to: str = "",
    automatic: bool = False,
    date: datetime | None = None,
) -> EmailMessage:
    """One mail to the customer. `automatic`: an AI answer, marked `Auto-Submitted: auto-replied` (RFC 3834),
    so the customer's own auto-responder does not answer it and start a loop."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = reply_subject(subject)
    mail["Message-ID"] = msg_id
    if date is not None:
        mail["Date"] = format_datetime(date)
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to.strip('<>')}>"
    chain = references(previous_references, in_reply_to)
    if chain:
        mail["References"] = " ".join(chain)
    if reply_to:
        mail["Reply-To"] = reply_to
    if automatic:
        mail["Auto-Submitted"] = "auto-replied"
    mail.set_content(text)
    mail.add_alternative(text_to_html(text), subtype="html")
    for file in files:
        maintype, _, subtype = file.content_type.partition("/")
        mail.add_attachment(
            file.data, maintype=maintype or "application", subtype=subtype or "octet-stream", filename=file.name
        )
    return mail
