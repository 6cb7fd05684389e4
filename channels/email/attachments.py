"""The files of an inbound mail: what is kept, under which name, inline or not, and each file once.

Holds `MailAttachment` and `Attachments`, the collector the body walk hands every non-body part to: it takes
the decoded bytes (an embedded mail re-serialised as received), names the file from the declared filename
(`declared_filename`: RFC 2231, RFC 2047, raw 8-bit) or the embedded mail's subject or a numbered fallback
with an extension for its type, marks it inline by disposition or Content-ID, and drops the same file met
again in another alternative. Sizes and content sniffing are the file store's job, not this module's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message

from channels.email.charsets import CONTROL, decode_words, fix_8bit
from channels.email.headers import first_id, header_value, oneline
from channels.email.notes import Notes
from channels.email.parts import mime_disposition, mime_payload
from gateway.files import safe_name

# Headers of an embedded message: serialised back as they came, not refolded.
_AS_RECEIVED = policy.default.clone(refold_source="none")
# Embedded mails: a delivery report carries them (or only their headers) besides its human-readable first part.
EMBEDDED_MESSAGES = frozenset({"message/rfc822", "message/global"})
# A fallback name's extension when the sender gave none.
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/json": ".json",
    "application/msword": ".doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/ms-tnef": ".dat",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "image/svg+xml": ".svg",
    "audio/mpeg": ".mp3",
    "video/mp4": ".mp4",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/csv": ".csv",
    "text/calendar": ".ics",
    "text/rfc822-headers": ".txt",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
}


@dataclass(frozen=True, slots=True)
class MailAttachment:
    name: str  # decoded and made safe (gateway.files.safe_name); "attachment-<n>.<ext>" when none was given
    content_type: str  # as declared, lower-cased; the file store sniffs the bytes itself
    data: bytes = field(repr=False)
    inline: bool  # Content-Disposition: inline, or a Content-ID without disposition (embedded in the HTML)
    content_id: str  # without angle brackets, "" when none

    @property
    def size(self) -> int:
        return len(self.data)


class Attachments:
    """The attachments of one mail, in the order they were met; the same file twice is kept once."""

    def __init__(self, notes: Notes) -> None:
        self.notes = notes
        self.items: list[MailAttachment] = []
        self._seen: set[tuple[str, str, bytes]] = set()

    def add(self, part: Message, ctype: str, subject: str = "") -> None:
        if part.is_multipart() and ctype in EMBEDDED_MESSAGES:
            inner = part.get_payload(0)
            try:
                data = inner.as_bytes(policy=_AS_RECEIVED)
            except Exception:
                data = b""
                self.notes.add("an attached mail could not be re-serialised; kept empty")
        elif part.is_multipart():
            try:
                data = b"\n".join(p.as_bytes(policy=_AS_RECEIVED) for p in part.get_payload())
            except Exception:
                data = b""
        else:
            data = mime_payload(part)
        name = declared_filename(part)
        if not name and subject:
            name = safe_name(oneline(decode_words(subject, self.notes, "Subject"))) + ".eml"
        name = safe_name(name) if name else f"attachment-{len(self.items) + 1}{_EXTENSIONS.get(ctype, '.bin')}"
        content_id = first_id(header_value(part, "Content-ID")) or header_value(part, "Content-ID").strip().strip("<>")
        disposition = mime_disposition(part)
        inline = disposition == "inline" or (not disposition and bool(content_id))
        key = (name, content_id, data)
        if key in self._seen:  # the same file in two alternatives
            return
        self._seen.add(key)
        self.items.append(MailAttachment(name, ctype, data, inline, CONTROL.sub("", content_id)))


def declared_filename(part: Message) -> str:
    """Content-Disposition filename, else Content-Type name: RFC 2231 (also continued, filename*0*=) and
    RFC 2047 inside the quotes are decoded by the email package; unquoted encoded words, raw 8-bit bytes
    and charsets it does not know are handled here."""
    notes = Notes()  # a name's charset trouble is visible in the name itself
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        for header in ("Content-Disposition", "Content-Type"):
            raw = header_value(part, header)
            match = re.search(r"""(?:^|;)\s*(?:file)?name\s*=\s*("[^"]*"|[^;\s]+)""", raw, re.IGNORECASE)
            if match:
                name = match.group(1).strip('"')
                break
    if not name:
        return ""
    name = fix_8bit(str(name))
    name = decode_words(name, notes, "filename")
    return oneline(name)
