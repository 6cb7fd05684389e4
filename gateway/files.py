"""Files customers and agents exchange: checked on the way in, kept in GridFS, served by capability URL.

A file is accepted only when its bytes say what it is: the type is sniffed from magic bytes and must be
both allowed (FILES_ALLOWED_TYPES) and consistent with what the uploader declared, so a renamed
executable or a PDF posing as a photo is refused with a sentence a person can act on.

Stored files are served at `/files/{file_id}/{name}?sig=...`. The signature is an HMAC over the file id:
whoever has the link can open the file, nobody can guess one, and links never expire, so a conversation
replayed months later still shows working attachments. Served files get `nosniff` and a sandboxing CSP,
because the gateway's own origin must never run something a customer uploaded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.errors import FileExists, NoFile
from pymongo.asynchronous.database import AsyncDatabase

from gateway.logs import log_event
from gateway.models import Attachment
from gateway.settings import Settings

log = logging.getLogger("gateway.files")

BUCKET = "files"  # collections files.files and files.chunks
SIG_CHARS = 32  # 192 bits of the HMAC: far beyond guessing, short enough for a readable link
MAX_NAME_CHARS = 120
FETCH_CHUNK = 64 * 1024
# A declared type that says nothing: the sniffed type stands in for it.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})
# Names browsers and mail clients use for the same thing.
TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "application/x-pdf": "application/pdf",
}
# Magic bytes at offset 0. Executables and archives are recognised too, so a refusal can name them.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"PK\x03\x04", "application/zip"),
    # Voice notes and recordings from messengers: Telegram and WhatsApp voice is Ogg/Opus.
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mpeg"),
)
# Extensions a verified type may keep; any other gets the type's own appended (see `fit_extension`).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg", ".jpe"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
    "text/plain": (".txt", ".text", ".log", ".csv", ".md"),
    "audio/ogg": (".ogg", ".oga", ".opus"),
    "audio/mpeg": (".mp3",),
    "audio/mp4": (".m4a",),
    "video/mp4": (".mp4",),
}
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})


class FileRejected(Exception):
    """A file the gateway will not take. `reason` is shown to the person who sent it.

    `code` is one of empty_file, file_too_large, unsupported_type, type_mismatch, not_found.
    """

    def __init__(self, reason: str, *, code: str = "file_rejected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class FileFetchError(Exception):
    """A remote attachment could not be fetched. `permanent` is false when retrying may help (5xx, timeout)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class FilePolicy:
    max_bytes: int
    allowed_types: frozenset[str]  # exact types or wildcards like image/*

    @classmethod
    def from_settings(cls, settings: Settings) -> FilePolicy:
        return cls(max_bytes=settings.files_max_bytes, allowed_types=settings.allowed_file_types)

    def allows(self, content_type: str) -> bool:
        major = content_type.split("/", 1)[0]
        return any(t in (content_type, f"{major}/*", "*/*") for t in self.allowed_types)


def normalize_type(content_type: str) -> str:
    base = content_type.split(";", 1)[0].strip().lower()
    return TYPE_ALIASES.get(base, base)


def sniff(data: bytes) -> str | None:
    """The type the bytes themselves show, or None when they match nothing in the table."""
    for magic, content_type in SIGNATURES:
        if data.startswith(magic):
            return content_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        # ISO base media (MP4): the major brand tells audio-only M4A from video.
        return "audio/mp4" if data[8:12] in (b"M4A ", b"M4B ") else "video/mp4"
    if len(data) >= 2 and data[0] == 0xFF and data[1] in (0xFB, 0xF3, 0xF2):
        return "audio/mpeg"  # an MP3 frame header without an ID3 tag
    if b"\x00" not in data:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None


def _consistent(declared: str, sniffed: str) -> bool:
    if declared in GENERIC_TYPES or declared == sniffed:
        return True
    # Text is text whatever a browser calls it (text/csv, text/markdown): it is served as text/plain.
    return sniffed == "text/plain" and declared.startswith("text/")


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


def check_file(name: str, declared_type: str, data: bytes, policy: FilePolicy) -> str:
    """The verified content type of `data`, or FileRejected saying why not."""
    shown = safe_name(name)
    if not data:
        raise FileRejected(f"{shown} is empty", code="empty_file")
    if len(data) > policy.max_bytes:
        raise FileRejected(
            f"{shown} is {human_size(len(data))}; files can be at most {human_size(policy.max_bytes)}",
            code="file_too_large",
        )
    sniffed = sniff(data)
    if sniffed is None:
        raise FileRejected(f"{shown}: this kind of file is not accepted", code="unsupported_type")
    if not policy.allows(sniffed):
        raise FileRejected(f"{shown}: type {sniffed} is not accepted", code="unsupported_type")
    declared = normalize_type(declared_type)
    if not _consistent(declared, sniffed):
        raise FileRejected(f"{shown} says it is {declared} but its content is {sniffed}", code="type_mismatch")
    return sniffed


_UNSAFE_CHARS = re.compile(r'[<>:"|?*]')


def safe_name(name: str) -> str:
    """A file name fit to store and show: last path part only, no control or direction-override
    characters (they disguise extensions: "photo\\u202egnp.exe"), no leading dots, at most 120 characters."""
    name = unicodedata.normalize("NFC", str(name))
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(
        " " if c.isspace() else c for c in name if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf")
    )
    name = _UNSAFE_CHARS.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip()
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and len(ext) <= 10:
            name = stem[: MAX_NAME_CHARS - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_NAME_CHARS].rstrip()
    return name or "file"


def fit_extension(name: str, content_type: str) -> str:
    """A PNG named invoice.exe is stored as invoice.exe.png: the name a person saves it under
    must not promise something the bytes are not."""
    allowed = EXTENSIONS.get(content_type)
    if not allowed or name.lower().endswith(allowed):
        return name
    return safe_name(name + allowed[0])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def content_disposition(name: str, content_type: str) -> str:
    """RFC 6266: an ASCII fallback for old clients, then the exact name as RFC 5987 `filename*`."""
    kind = "inline" if content_type in INLINE_TYPES else "attachment"
    fallback = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_").replace("\\", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _object_id(file_id: str) -> ObjectId | None:
    try:
        return ObjectId(file_id)
    except (InvalidId, TypeError):
        return None


def _shown_url(url: str) -> str:
    # Errors and logs name the host and path only: query strings often carry provider tokens.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class FileStore:
    """The gateway's file store on GridFS.

    Routes have to be registered before the app starts, but the database only exists once it has
    started. So the store is built first with `db=None`, `add_routes` registers its bound handler, and
    the app's `database` cleanup context calls `attach(db)`; until then the route answers 503.
    """

    def __init__(self, db: AsyncDatabase | None, secret: bytes, base_url: str, policy: FilePolicy) -> None:
        # Own key, derived with a label, so a file signature can never double as a session token's MAC.
        self._key = hmac.new(secret, b"gateway-files-v1", hashlib.sha256).digest()
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self._bucket: AsyncGridFSBucket | None = None
        self._db: AsyncDatabase | None = None
        if db is not None:
            self.attach(db)

    def attach(self, db: AsyncDatabase) -> None:
        self._db = db
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)

    @property
    def bucket(self) -> AsyncGridFSBucket:
        if self._bucket is None:
            raise RuntimeError("FileStore.attach(db) has not been called yet")
        return self._bucket

    @property
    def _files(self) -> Any:
        if self._db is None:
            raise RuntimeError("FileStore.attach(db) has not been called yet")
        return self._db[f"{BUCKET}.files"]

    # signing

    def signature(self, file_id: str) -> str:
        return _b64(hmac.new(self._key, b"file:" + file_id.encode(), hashlib.sha256).digest())[:SIG_CHARS]

    def verify(self, file_id: str, sig: str) -> bool:
        return hmac.compare_digest(self.signature(file_id).encode(), sig.encode("utf-8", "replace"))

    def signed_url(self, file_id: str, name: str) -> str:
        return f"{self.base_url}/files/{file_id}/{quote(name, safe='')}?sig={self.signature(file_id)}"

    # storing and reading

    async def put(
        self,
        data: bytes,
        *,
        name: str,
        content_type: str,
        conversation_id: str,
        source: str,
        unattached: bool = False,
    ) -> Attachment:
        """Check, then store. `source` is who sent it: "customer" or "agent".

        `unattached`: an upload no message names yet; it expires unless `owned_attachments` claims it.
        """
        verified = check_file(name, content_type, data, self.policy)
        stored_name = fit_extension(safe_name(name), verified)
        metadata: dict[str, Any] = {
            "conversation_id": conversation_id,
            "source": source,
            "content_type": verified,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if unattached:
            metadata["unattached_since"] = datetime.now(UTC)
        oid = await self.bucket.upload_from_stream(stored_name, data, metadata=metadata)
        file_id = str(oid)
        log_event(log, "file_stored", file_id=file_id, conversation_id=conversation_id, size=len(data), type=verified)
        return Attachment(
            name=stored_name,
            content_type=verified,
            url=self.signed_url(file_id, stored_name),
            size=len(data),
            file_id=file_id,
        )

    async def keep_original(self, data: bytes, *, name: str, content_type: str, source: str, key: str) -> str:
        """Store bytes exactly as a provider handed them over (a whole mail), unchecked: a record for
        people to open, never shown to the AI. The caller bounds the size. Returns the file id.

        The id derives from `key` (the provider's id for the message), so storing the same original again
        (a redelivery, a retry after the database went away mid-upload) reuses it instead of leaving a
        second copy nobody refers to."""
        oid = ObjectId(hashlib.sha256(f"original:{key}".encode()).digest()[:12])
        if await self._files.find_one({"_id": oid}, {"_id": 1}) is not None:
            return str(oid)
        metadata = {
            "conversation_id": "",
            "source": source,
            "content_type": content_type,
            "sha256": hashlib.sha256(data).hexdigest(),
            "original": True,
        }
        try:
            await self.bucket.upload_from_stream_with_id(oid, safe_name(name), data, metadata=metadata)
        except FileExists:
            # Another process stored the same original at the same moment, or pymongo retried a write that
            # had gone through: one copy is there either way. Without a files document, the chunks are an
            # upload still running elsewhere or one that died: never deleted here (that would cut a live
            # upload short); this copy goes under an id of its own.
            if await self._files.find_one({"_id": oid}, {"_id": 1}) is None:
                return str(await self.bucket.upload_from_stream(safe_name(name), data, metadata=metadata))
        return str(oid)

    async def describe(self, file_id: str) -> dict[str, Any] | None:
        """The stored file's document (filename, length, metadata), without its bytes."""
        oid = _object_id(file_id)
        if oid is None:
            return None
        return await self._files.find_one({"_id": oid})

    def attachment_from(self, doc: dict[str, Any]) -> Attachment:
        file_id = str(doc["_id"])
        return Attachment(
            name=doc["filename"],
            content_type=doc["metadata"]["content_type"],
            url=self.signed_url(file_id, doc["filename"]),
            size=int(doc["length"]),
            file_id=file_id,
        )

    async def owned_attachments(self, file_ids: Sequence[str], conversation_id: str) -> tuple[Attachment, ...]:
        """Attachments for files uploaded to this conversation; one that is unknown or another
        conversation's is refused as not found, so a file id leaks nothing about other conversations."""
        wanted = list(dict.fromkeys(file_ids))
        oids = [_object_id(f) for f in wanted]
        docs: dict[str, dict[str, Any]] = {}
        if all(oids):
            async for doc in self._files.find({"_id": {"$in": oids}}):
                docs[str(doc["_id"])] = doc
        result = []
        for file_id in wanted:
            doc = docs.get(file_id)
            if doc is None or (doc.get("metadata") or {}).get("conversation_id") != conversation_id:
                raise FileRejected(f"file {file_id[:40]} was not uploaded to this conversation", code="not_found")
            result.append(self.attachment_from(doc))
        # Claimed: they no longer expire. Counting the matches catches a file the expiry sweep deleted
        # between the read above and this write (its delete and this update are each atomic per file).
        claimed = await self._files.update_many(
            {"_id": {"$in": oids}, "metadata.conversation_id": conversation_id},
            {"$unset": {"metadata.unattached_since": ""}},
        )
        if claimed.matched_count != len(oids):
            raise FileRejected("a file in this message has expired; upload it again", code="not_found")
        return tuple(result)

    async def delete_unattached(self, older_than: datetime) -> int:
        """Deletes uploads no message claimed since before `older_than`; how many went."""
        expired = {"metadata.unattached_since": {"$lt": older_than}}
        deleted = 0
        async for doc in self._files.find(expired, {"_id": 1}).limit(1000):
            # The condition is checked again in the delete: a message that claimed it meanwhile keeps it.
            if (await self._files.delete_one({"_id": doc["_id"], **expired})).deleted_count:
                await self._db[f"{BUCKET}.chunks"].delete_many({"files_id": doc["_id"]})  # type: ignore[index]
                deleted += 1
        return deleted

    async def read(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        """The file's document and its bytes; FileRejected(code="not_found") when there is none."""
        oid = _object_id(file_id)
        if oid is None:
            raise FileRejected(f"file {file_id[:40]} does not exist", code="not_found")
        try:
            grid_out = await self.bucket.open_download_stream(oid)
        except NoFile:
            raise FileRejected(f"file {file_id} does not exist", code="not_found") from None
        data = await grid_out.read()
        doc = {
            "_id": oid,
            "filename": grid_out.filename,
            "length": grid_out.length,
            "metadata": grid_out.metadata or {},
            "uploadDate": grid_out.upload_date,
        }
        return doc, data

    async def read_attachment(
        self,
        attachment: Attachment,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> bytes:
        """The attachment's bytes, from this store or over HTTP(S), never more than `max_bytes`.

        For a URL the body is streamed and abandoned as soon as it passes the cap, so a huge or
        endless response costs at most `max_bytes`. `headers` is for providers whose file URLs need
        credentials (e.g. Slack's bot token). Raises FileRejected (too large, not found) or
        FileFetchError (HTTP error status, timeout, network failure).
        """
        if attachment.file_id:
            doc = await self.describe(attachment.file_id)
            if doc is None:
                raise FileRejected(f"{attachment.name}: file {attachment.file_id} does not exist", code="not_found")
            if int(doc["length"]) > max_bytes:
                raise self._too_large(attachment.name, max_bytes)
            return (await self.read(attachment.file_id))[1]
        url = attachment.url
        if urlsplit(url).scheme not in ("http", "https"):
            raise FileFetchError(f"{attachment.name}: only http and https URLs can be fetched", permanent=True)
        shown = _shown_url(url)
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10)) as http,
                http.get(url, headers=dict(headers or {})) as response,
            ):
                if response.status >= 400:
                    permanent = response.status < 500 and response.status not in (408, 429)
                    raise FileFetchError(f"{shown}: HTTP {response.status} {response.reason}", permanent=permanent)
                if response.content_length is not None and response.content_length > max_bytes:
                    raise self._too_large(attachment.name, max_bytes)
                body = bytearray()
                async for chunk in response.content.iter_chunked(FETCH_CHUNK):
                    body += chunk
                    if len(body) > max_bytes:
                        raise self._too_large(attachment.name, max_bytes)
                return bytes(body)
        except TimeoutError:
            raise FileFetchError(f"{shown}: no complete answer within {timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise FileFetchError(f"{shown}: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _too_large(name: str, max_bytes: int) -> FileRejected:
        return FileRejected(
            f"{safe_name(name)} is larger than {human_size(max_bytes)}, the most this channel takes",
            code="file_too_large",
        )

    # serving

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/files/{file_id}/{name}", self.serve)

    async def serve(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        # The signature is checked before the database is asked, so a bad link reveals nothing.
        if not self.verify(file_id, request.query.get("sig", "")):
            return web.Response(status=403, text="This link is not valid.")
        if self._bucket is None:
            return web.Response(status=503, text="The file store is starting.")
        try:
            doc, data = await self.read(file_id)
        except FileRejected:
            return web.Response(status=404, text="This file no longer exists.")
        content_type = doc["metadata"].get("content_type") or "application/octet-stream"
        # Whole-file bodies are fine at FILES_MAX_MB sizes and make HEAD and Content-Length trivial.
        response = web.Response(body=data, content_type=content_type)
        if content_type == "text/plain":
            response.charset = "utf-8"
        response.headers.update(
            {
                "Content-Disposition": content_disposition(doc["filename"], content_type),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox",
                "Cache-Control": "private, max-age=86400",
                "Referrer-Policy": "no-referrer",
            }
        )
        return response
