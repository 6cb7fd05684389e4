"""The raw mail out of a forwarding provider's POST to /email/inbound, and its credentials checked.

Three shapes are taken, all carrying the mail exactly as received (RFC 5322 bytes):
- the request body itself, `Content-Type: message/rfc822` (a mail server's pipe-to-HTTP, curl);
- SendGrid Inbound Parse with "POST the raw, full MIME message" on: multipart/form-data, field `email`;
- a Mailgun route forwarding to a URL ending in "mime": field `body-mime` (multipart or url-encoded).

Both providers put credentials in the URL (https://user:secret@host/email/inbound) and send them as HTTP
basic auth. Only the password is checked, in constant time, against EMAIL_INBOUND_SECRET.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import parse_qs

from aiohttp import BodyPartReader, web

from gateway.files import human_size

MAIL_FIELDS = ("email", "body-mime")
RAW_TYPES = frozenset({"message/rfc822", "message/global", "application/octet-stream"})
CHUNK = 64 * 1024


class NotAuthorized(Exception):
    pass


def check_basic_auth(request: web.Request, secret: str) -> None:
    """Raises NotAuthorized unless the request's basic-auth password is `secret`."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        raise NotAuthorized("missing")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthorized("unreadable") from None
    password = decoded.partition(":")[2]
    if not hmac.compare_digest(password.encode(), secret.encode()):
        raise NotAuthorized("wrong")


def _too_large(max_bytes: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=max_bytes, actual_size=max_bytes + 1, text=f"a mail over {human_size(max_bytes)} (EMAIL_MAX_MB)"
    )


async def _read_stream(read_chunk, max_bytes: int) -> bytes:
    data = bytearray()
    while chunk := await read_chunk(CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
    return bytes(data)


async def read_forwarded_mail(request: web.Request, max_bytes: int) -> bytes:
    """The mail's bytes; an HTTP error (400, 413, 415) saying what is wrong with the request otherwise."""
    if request.content_length is not None and request.content_length > max_bytes + 1024 * 1024:
        raise _too_large(max_bytes)  # leave room for the form around the mail
    ctype = request.content_type
    if ctype in RAW_TYPES:
        raw = await _read_stream(request.content.read, max_bytes)
    elif ctype == "multipart/form-data":
        raw = await _from_multipart(request, max_bytes)
    elif ctype == "application/x-www-form-urlencoded":
        body = await _read_stream(request.content.read, max_bytes * 2)  # percent-encoding grows it
        form = parse_qs(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="surrogateescape")
        field = next((form[name][0] for name in MAIL_FIELDS if form.get(name)), None)
        if field is None:
            raise web.HTTPBadRequest(text=f"no mail in the form: expected a field named {' or '.join(MAIL_FIELDS)}")
        raw = field.encode("utf-8", "surrogateescape")
    else:
        raise web.HTTPUnsupportedMediaType(
            text="send the mail as message/rfc822, or as the 'email' (SendGrid) or 'body-mime' (Mailgun) form field"
        )
    if not raw.strip():
        raise web.HTTPBadRequest(text="the mail is empty")
    return raw


async def _from_multipart(request: web.Request, max_bytes: int) -> bytes:
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name in MAIL_FIELDS:
            return await _read_stream(part.read_chunk, max_bytes)
        await part.release()  # the providers' parsed fields (from, subject, text, …): the raw mail has it all
    raise web.HTTPBadRequest(text=f"no mail in the form: expected a field named {' or '.join(MAIL_FIELDS)}")
