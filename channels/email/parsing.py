"""An inbound mail (RFC 5322 + MIME, as raw bytes) turned into one message. Pure: no I/O, no mailbox, no store.

Mail arrives in every shape clients and servers produce: any charset (declared or not, sometimes wrongly),
quoted-printable or base64, 8-bit bytes straight in the headers, boundaries that never close, filenames in
RFC 2231 or RFC 2047 or raw UTF-8. `parse_mail` reads all of it with the standard library's `email` package
(policy.default) and never raises: whatever it cannot read becomes a sentence in `ParsedMail.notes`.

It does not judge: no size limits (the file store's job), no sender authentication (SPF/DKIM/DMARC are the
receiving server's and the channel's), no de-duplication (the channel keys on `message_id`).

The reading itself is spread over modules named for what they hold: `charsets` (decoding with fallbacks),
`headers` (Message-IDs, addresses, subject, date), `parts` (safe MIME part accessors), `attachments` (the files
kept), `automatic` (auto-replies, lists, bounces) and `notes`. This module walks the MIME tree, chooses the
body text among the alternatives and ties the pieces together into a `ParsedMail`.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import Message

from channels.email.attachments import EMBEDDED_MESSAGES, Attachments, MailAttachment, declared_filename
from channels.email.automatic import AutoKind, auto_kind, bounced_message_ids
from channels.email.charsets import CONTROL, decode_bytes, decode_words
from channels.email.headers import (
    FORWARD_PREFIX,
    addresses,
    first_id,
    header_value,
    message_ids,
    normalize_subject,
    oneline,
    parse_date,
    sender,
)
from channels.email.html_text import split_html
from channels.email.notes import Notes
from channels.email.parts import mime_disposition, mime_param, mime_payload, mime_type
from channels.email.quotes import strip_quotes

_MAX_DEPTH = 40  # MIME nesting deeper than any client writes: a mail bomb, not a message
# Only the headers of an embedded mail, as a delivery report carries them besides its human-readable first part.
_EMBEDDED_HEADERS = frozenset({"text/rfc822-headers", "message/global-headers"})
# multipart/signed's signature part means nothing to a reader (S/MIME, PGP/MIME).
_SIGNATURES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"})
# Alternatives only a watch or an AMP-capable webmail renders; the text/plain or text/html one is the mail.
_OTHER_RENDERINGS = frozenset({"text/watch-html", "text/x-amp-html", "text/enriched", "text/richtext"})


@dataclass(frozen=True, slots=True)
class ParsedMail:
    message_id: str  # without angle brackets; "sha256-<hex>@missing" when the mail has none
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_name: str
    from_address: str  # lower-cased; "" when missing or unreadable
    to: tuple[str, ...]
    reply_to: str
    subject: str
    normalized_subject: str  # without Re:/Fwd:/AW:/... prefixes, lower-cased
    date: datetime | None  # aware; a Date without a zone is taken as UTC
    text: str  # the whole readable body
    visible_text: str  # `text` without quoted earlier messages and signature; `text` when nothing is left
    attachments: tuple[MailAttachment, ...]
    notes: tuple[str, ...]
    auto: AutoKind | None
    bounced_message_ids: tuple[str, ...]
    delivery_status: str = ""  # a bounce's message/delivery-status fields, as text


def parse_mail(raw: bytes) -> ParsedMail:
    """The mail as received (RFC 5322 bytes, e.g. an IMAP RFC822 fetch or an SMTP DATA payload). Never
    raises; what could not be read is described in `notes`."""
    try:
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    except Exception:
        data = b""
    try:
        return _parse(data)
    except Exception as exc:  # a parser bug or a pathological mail must not stall the mailbox
        return _unreadable(data, f"message could not be read ({type(exc).__name__}); body and headers skipped")


def synthetic_message_id(raw: bytes) -> str:
    """The id a mail without Message-ID gets: the same bytes always give the same id, so redelivery of the
    same mail is recognised as such."""
    return f"sha256-{hashlib.sha256(raw).hexdigest()}@missing"


def _unreadable(raw: bytes, note: str) -> ParsedMail:
    return ParsedMail(
        message_id=synthetic_message_id(raw), in_reply_to=(), references=(), from_name="", from_address="",
        to=(), reply_to="", subject="", normalized_subject="", date=None, text="", visible_text="",
        attachments=(), notes=(note,), auto=None, bounced_message_ids=(),
    )  # fmt: skip


def _parse(raw: bytes) -> ParsedMail:
    notes = Notes()
    msg = email.message_from_bytes(raw, policy=policy.default)

    message_id = first_id(header_value(msg, "Message-ID"))
    if not message_id:
        message_id = synthetic_message_id(raw)
        notes.add(f"Message-ID: missing; using {message_id}, derived from the raw mail")
    in_reply_to = message_ids(header_value(msg, "In-Reply-To"))
    references = message_ids(header_value(msg, "References"))

    from_name, from_address = sender(msg, notes)
    to = tuple(address for _, address in addresses(msg, "To", notes))
    reply_to = next((address for _, address in addresses(msg, "Reply-To", notes)), "")
    subject = oneline(decode_words(header_value(msg, "Subject"), notes, "Subject"))
    date = parse_date(header_value(msg, "Date"), notes)

    walk = _Walk(notes)
    pieces = walk.visit(msg, "", 0)
    walk.finish()
    text = "\n\n".join(p.text for p in pieces if p.text)
    if FORWARD_PREFIX.match(subject):
        # A forward is what the customer wants us to read: the forwarded mail is content, not a quote.
        visible = text
    else:
        visible = strip_quotes("\n\n".join(p.visible for p in pieces if p.visible))
    if not visible.strip():
        visible = text

    auto = auto_kind(msg, from_address, header_value(msg, "From"), subject)
    bounced: tuple[str, ...] = ()
    if auto == "bounce":
        bounced = bounced_message_ids(message_id, walk.embedded_ids, in_reply_to, references, text)

    return ParsedMail(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        from_name=from_name,
        from_address=from_address,
        to=to,
        reply_to=reply_to,
        subject=subject,
        normalized_subject=normalize_subject(subject),
        date=date,
        text=text,
        visible_text=visible,
        attachments=tuple(walk.files.items),
        notes=tuple(notes.items),
        auto=auto,
        bounced_message_ids=bounced,
        delivery_status="\n\n".join(walk.delivery_status),
    )


def _status_text(part: Message) -> str:
    """A delivery-status part's header blocks as text (the email package parses them as sub-messages)."""
    try:
        if part.is_multipart():
            return "\n\n".join(
                str(block.as_string(policy=policy.default.clone(refold_source="none"))) for block in part.get_payload()
            )
        return decode_bytes(mime_payload(part), "utf-8", Notes(), "delivery status")
    except Exception:
        return ""


# -- bodies -------------------------------------------------------------------------------------------


def _clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip()


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed: a line ending in a space continues on the next line (same quote depth);
    a leading space is stuffing. The signature separator "-- " is never a soft break."""
    out: list[str] = []
    current: str | None = None
    current_depth = -1
    for line in text.replace("\r\n", "\n").split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        if body.startswith(" "):
            body = body[1:]
        prefix = ">" * depth + (" " if depth else "")
        if current is not None and depth == current_depth:
            current += body
        else:
            if current is not None:
                out.append(current)
            current, current_depth = prefix + body, depth
        if not (body.endswith(" ") and body != "-- "):
            out.append(current)
            current, current_depth = None, -1
        elif delsp:
            current = current[:-1]
    if current is not None:
        out.append(current)
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    visible: str  # the text quotes are stripped from: for HTML, without the blocks clients mark as quotes
    html: bool


class _Walk:
    """Walks the MIME tree once: body text pieces out, attachments and embedded Message-IDs collected."""

    def __init__(self, notes: Notes) -> None:
        self.notes = notes
        self.files = Attachments(notes)
        self.embedded_ids: list[str] = []
        self.delivery_status: list[str] = []  # the per-recipient fields of a bounce (RFC 3464)
        self._defect_places: dict[str, list[str]] = {}

    def visit(
        self, part: Message, path: str, depth: int, *, report: bool = False, resource: bool = False
    ) -> list[_Piece]:
        where = f"part {path}" if path else "message"
        if depth > _MAX_DEPTH:
            self.notes.add(f"{where}: MIME nesting deeper than {_MAX_DEPTH} levels; the rest was skipped")
            return []
        try:
            if resource:
                self.files.add(part, mime_type(part))
                return []
            return self._visit(part, path, depth, where, report)
        except Exception as exc:
            self.notes.add(f"{where}: could not be read ({type(exc).__name__}); skipped")
            return []
        finally:
            # After reading: decoding the payload adds defects too (bad base64 characters, padding).
            self._defects(part, where)

    def _visit(self, part: Message, path: str, depth: int, where: str, report: bool) -> list[_Piece]:
        ctype = mime_type(part)
        maintype = ctype.split("/")[0]
        sub = f"{path}." if path else ""

        if ctype in EMBEDDED_MESSAGES or ctype in _EMBEDDED_HEADERS:
            self._embedded(part, ctype, report)
            return []
        if maintype == "multipart":
            if not part.is_multipart():
                return self._broken_multipart(part, ctype, path, depth, where)
            children = [p for p in part.get_payload() if isinstance(p, Message)]
            if ctype == "multipart/alternative":
                return self._alternative(children, sub, depth)
            if ctype == "multipart/encrypted":
                self.notes.add(f"{where}: encrypted (PGP/MIME); cannot be read")
                return []
            pieces: list[_Piece] = []
            for n, child in enumerate(children, 1):
                child_type = mime_type(child)
                if ctype == "multipart/signed" and child_type in _SIGNATURES:
                    continue
                # multipart/report: the first part is for people, the rest (delivery-status, the returned
                # headers or message) for software; they are read for Message-IDs, not kept as files.
                in_report = report or (ctype == "multipart/report" and n > 1)
                # multipart/related: the first part is the body, the rest are what its HTML embeds.
                resource = ctype == "multipart/related" and n > 1
                pieces += self.visit(child, f"{sub}{n}", depth + 1, report=in_report, resource=resource)
            return pieces
        if ctype == "message/delivery-status":
            self.delivery_status.append(_status_text(part))
        if report:
            return []
        if part.is_multipart():  # message/delivery-status, message/partial: a list of header blocks
            if ctype == "message/delivery-status":
                self.files.add(part, ctype)
            return []
        if (
            ctype in ("text/plain", "text/html")
            and mime_disposition(part) != "attachment"
            and not declared_filename(part)
        ):
            piece = self._text(part, ctype, where)
            return [piece] if piece.text else []
        if ctype == "application/pkcs7-mime":
            self.notes.add(f"{where}: S/MIME encrypted or opaque-signed; kept as an attachment, not read")
        self.files.add(part, ctype)
        return []

    def _alternative(self, children: list[Message], sub: str, depth: int) -> list[_Piece]:
        # Each alternative is the same mail, simplest first. Text comes from the text/plain one when it says
        # something, else from the richest; attachments from all (Apple Mail puts the inline images only
        # in the HTML alternative's multipart/related).
        candidates = []
        for n, child in enumerate(children, 1):
            if mime_type(child) in _OTHER_RENDERINGS:
                continue
            candidates.append(self.visit(child, f"{sub}{n}", depth + 1))
        for pieces in candidates:
            if pieces and not any(p.html for p in pieces):
                return pieces
        return next((pieces for pieces in reversed(candidates) if pieces), [])

    def _text(self, part: Message, ctype: str, where: str) -> _Piece:
        data = mime_payload(part)
        charset = mime_param(part, "charset")
        if ctype == "text/html" and not charset:
            # No MIME charset: the HTML may name it in <meta charset> / http-equiv.
            meta = re.search(rb"""charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", data[:4096], re.IGNORECASE)
            charset = meta.group(1).decode("ascii") if meta else ""
        text = decode_bytes(data, charset, self.notes, where)
        if ctype == "text/html":
            full, visible = split_html(text)
            return _Piece(_clean_text(full), _clean_text(visible), html=True)
        if mime_param(part, "format").lower() == "flowed":
            text = _unflow(text, delsp=mime_param(part, "delsp").lower() == "yes")
        text = _clean_text(text)
        return _Piece(text, text, html=False)

    def _broken_multipart(self, part: Message, ctype: str, path: str, depth: int, where: str) -> list[_Piece]:
        # A multipart whose declared boundary never occurs (or is missing): if the body has another
        # boundary line followed by part headers, the sender's software meant that one.
        data = mime_payload(part)
        match = re.search(rb"^--([^\s\"]{1,200})[ \t]*\r?\n(?=content-)", data, re.MULTILINE | re.IGNORECASE)
        if match:
            boundary = match.group(1)
            subtype = ctype if re.fullmatch(r"multipart/[a-z0-9.+-]{1,40}", ctype) else "multipart/mixed"
            rebuilt = b'Content-Type: %s; boundary="%s"\r\n\r\n' % (subtype.encode("ascii"), boundary) + data
            recovered = email.message_from_bytes(rebuilt, policy=policy.default)
            if recovered.is_multipart():
                self.notes.add(
                    f"{where}: broken MIME structure (declared boundary not found); "
                    f"read with the boundary found in the body"
                )
                return self.visit(recovered, path, depth + 1)
        self.notes.add(f"{where}: broken MIME structure (no usable boundary); body read as plain text")
        text = _clean_text(decode_bytes(data, mime_param(part, "charset"), self.notes, where))
        return [_Piece(text, text, html=False)] if text else []

    def _embedded(self, part: Message, ctype: str, report: bool) -> None:
        # A returned or forwarded mail (message/rfc822), or only its headers (text/rfc822-headers).
        if part.is_multipart():
            inner = part.get_payload(0)
        else:
            inner = email.message_from_bytes(mime_payload(part), policy=policy.default)
        if isinstance(inner, Message):
            message_id = first_id(header_value(inner, "Message-ID"))
            if message_id:
                self.embedded_ids.append(message_id)
        if not report:
            named = ctype in EMBEDDED_MESSAGES and isinstance(inner, Message)
            self.files.add(part, ctype, subject=header_value(inner, "Subject") if named else "")

    def _defects(self, part: Message, where: str) -> None:
        for defect in getattr(part, "defects", ()):
            doc = (type(defect).__doc__ or "").strip().split("\n")[0].rstrip(".") or type(defect).__name__
            detail = str(defect)
            text = f"{doc} ({detail[:80]})" if detail and detail != doc else doc
            self._defect_places.setdefault(text, []).append(where)

    def finish(self) -> None:
        # One note per kind of defect, naming where: a mail nested 40 deep should not give 40 notes.
        for text, places in self._defect_places.items():
            shown = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
            self.notes.add(f"MIME defect in {shown}: {text}")
