"""Safe accessors for one MIME part: its content type, a parameter, its disposition and its decoded payload.

The email package parses these headers on access under policy.default and can raise on malformed input; each
accessor here catches that and falls back to what RFC 2045 implies (text/plain, no parameter, no disposition,
no bytes). The body walk, the attachment collector and the auto-reply classification all read parts through
them, so a broken header never stops a mail from being read.
"""

from __future__ import annotations

from email.message import Message


def mime_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:  # policy.default parses the header on access; a parser bug falls back to RFC 2045's
        return "text/plain"


def mime_param(part: Message, name: str, header: str = "content-type") -> str:
    try:
        value = part.get_param(name, header=header)
    except Exception:
        return ""
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value) under compat policies
        value = value[2]
    return str(value or "").strip()


def mime_disposition(part: Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""


def mime_payload(part: Message) -> bytes:
    # Undoes quoted-printable, base64 (leniently: bad characters become a defect) and x-uuencode; 7bit,
    # 8bit, binary and unknown transfer encodings come back as the raw bytes.
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""
