"""Customers' MMS and WhatsApp files, fetched from Twilio into the gateway's file store.

Twilio's MediaUrl needs the account's credentials (HTTP basic auth) unless the account turned that off,
and it answers with a redirect to its media CDN. Only URLs on Twilio's API host (or TWILIO_API_URL, for a
local fake) are fetched, never an address taken from the request: a forged-looking but validly signed
webhook must not make the gateway fetch an arbitrary URL. A file over the limit or of a refused type
becomes a note in the message text, so the AI and the agents know something was sent.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

import aiohttp

from channels.twilio.inbound import Media
from gateway.files import FileRejected, FileStore, human_size
from gateway.logs import log_event
from gateway.models import Attachment

log = logging.getLogger("channels.twilio.media")

TWILIO_MEDIA_HOSTS = frozenset({"api.twilio.com"})
CHUNK = 64 * 1024


class MediaUnavailable(Exception):
    """Twilio could not hand the file over right now: the webhook fails and Twilio tries again."""


def allowed(url: str, api_root: str) -> bool:
    parts, api = urlsplit(url), urlsplit(api_root)
    if parts.scheme == "https" and parts.hostname in TWILIO_MEDIA_HOSTS and parts.port in (None, 443):
        return True
    return (parts.scheme, parts.hostname, parts.port) == (api.scheme, api.hostname, api.port)


async def fetch_media(
    session: aiohttp.ClientSession,
    auth: str,
    files: FileStore,
    media: Sequence[Media],
    *,
    api_root: str,
    max_bytes: int,
) -> tuple[tuple[Attachment, ...], list[str]]:
    attachments: list[Attachment] = []
    notes: list[str] = []
    for index, item in enumerate(media, start=1):
        name = f"file-{index}{mimetypes.guess_extension(item.content_type) or ''}"
        if not allowed(item.url, api_root):
            notes.append(f"[{name} not received: it was not on Twilio's media host]")
            log_event(log, "twilio_media_refused", logging.WARNING, reason="host")
            continue
        try:
            data = await _download(session, auth, item.url, max_bytes)
        except FileRejected as exc:
            notes.append(f"[{name} not received: {exc.reason}]")
            continue
        try:
            attachments.append(
                await files.put(data, name=name, content_type=item.content_type, conversation_id="", source="customer")
            )
        except FileRejected as exc:
            notes.append(f"[{name} not received: {exc.reason}]")
            log_event(log, "twilio_media_refused", code=exc.code)
    return tuple(attachments), notes


async def _download(session: aiohttp.ClientSession, auth: str, url: str, max_bytes: int) -> bytes:
    """`auth` is the Authorization header value. Twilio answers a media URL with a redirect to its CDN
    (a pre-signed address): followed here by hand, without the credentials, which must only ever go to
    the host they are for."""
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        headers = {"Authorization": auth}
        for _ in range(3):
            async with session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                    url, headers = urljoin(str(response.url), response.headers["Location"]), {}
                    continue
                return await _body(response, max_bytes)
        raise MediaUnavailable("Twilio media redirected too often")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise MediaUnavailable(f"Twilio media unreachable: {type(exc).__name__}") from exc


async def _body(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    if response.status in (404, 410):
        raise FileRejected("Twilio no longer has this file", code="not_found")
    if response.status != 200:
        raise MediaUnavailable(f"Twilio media answered {response.status}")
    if (response.content_length or 0) > max_bytes:
        raise FileRejected(f"{human_size(response.content_length or 0)} is over the limit", code="file_too_large")
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise FileRejected(f"it is over the {human_size(max_bytes)} limit", code="file_too_large")
    return bytes(data)
