"""The web chat channel: session creation, file uploads, the WebSocket endpoint, and the widget's static files."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, WSMsgType, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from channels.webchat import access_log
from channels.webchat.adapter import CHANNEL, WebchatAdapter
from channels.webchat.client_ip import Network, client_address, limit_key
from channels.webchat.expiry import Expiry
from channels.webchat.frames import error_frame, message_frame, revision_frame
from channels.webchat.hub import Connection, WebchatHub
from channels.webchat.limits import KeyedLimiters, RateLimiter, WebchatLimits
from channels.webchat.settings import WebchatSettings
from channels.webchat.tokens import InvalidToken, Session, TokenSigner
from gateway.channel import ChannelContext
from gateway.events import Event, MessageStored, StatusChanged, Typing
from gateway.files import FileRejected, FileStore, human_size, safe_name
from gateway.ingest import Ingest
from gateway.logs import log_event
from gateway.models import Attachment, ConversationRef, Identity, InboundMessage
from gateway.settings import Settings
from gateway.store import ConversationStore, parse_id, utcnow

log = logging.getLogger("channels.webchat")

STATIC = Path(__file__).parent / "static"
MAX_FRAME_BYTES = 64 * 1024
# How far back a reconnect replays messages at or below its after_seq: longer than an AI turn may take
# (AI_TIMEOUT_SECONDS plus its hold), after which a late reply takes a new, higher number instead.
LATE_REPLY_WINDOW = timedelta(minutes=5)
# Above this aiohttp closes the socket (1009); between the two we answer with an error frame.
HARD_FRAME_LIMIT = 256 * 1024
MAX_CLIENT_MSG_ID = 100
# Uploads are heavier than messages: fewer, per conversation (so a second tab shares the budget).
UPLOAD_WINDOW_SECONDS, UPLOAD_MAX_FILES = 60.0, 10
MAX_ATTACHMENTS = 5
MAX_FILE_ID = 64
UPLOAD_READ_CHUNK = 64 * 1024
# Room for multipart boundaries and part headers on top of the file itself.
MULTIPART_OVERHEAD = 16 * 1024
# What a refused file answers over HTTP.
REJECTION_STATUS = {"empty_file": 400, "file_too_large": 413, "unsupported_type": 415, "type_mismatch": 415}
CLOSE_BAD_TOKEN, CLOSE_BAD_REQUEST, CLOSE_ORIGIN = 4401, 4400, 4403
# ASCII digits only: Python's int() also takes "1_0", "+3", " 3" and other scripts' digits ("٣").
AFTER_SEQ = re.compile(r"[0-9]{1,19}")
MAX_SEQ = 2**63 - 1  # a BSON int64
SESSION_WINDOW_SECONDS = 3600.0
DEFAULT_LIMITS = WebchatLimits()
# Security headers of the gateway's own pages (the widget itself runs on other sites' pages).
STATIC_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _inline_script_hashes(html: str) -> str:
    """CSP hashes of the demo page's inline scripts, so its CSP needs no 'unsafe-inline' for scripts."""
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)


def demo_page_csp(html: str) -> str:
    # style-src needs 'unsafe-inline': the page has a <style> block and the widget injects its own CSS.
    # connect-src 'self' covers the same-origin ws:/wss: URL (CSP Level 3).
    return (
        f"default-src 'none'; script-src 'self' {_inline_script_hashes(html)}; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    )


def well_formed(text: str) -> bool:
    """False for strings holding lone surrogates (half an emoji, e.g. JSON "\ud83d"): BSON cannot store them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def repaired(text: str) -> str:
    """Lone surrogates replaced by U+FFFD, e.g. in a header aiohttp decoded with surrogateescape."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass(frozen=True, slots=True)
class ClientMessage:
    text: str
    client_msg_id: str
    file_ids: tuple[str, ...] = ()


class WebchatChannel:
    """The web chat plug-in: its routes, its adapter (pushes to open sockets), its expiry sweep."""

    name = CHANNEL
    store: ConversationStore
    ingest: Ingest
    files: FileStore | None = None

    def __init__(
        self,
        signer: TokenSigner,
        *,
        max_text: int = 4000,
        allowed_origins: frozenset[str] = frozenset({"*"}),
        limits: WebchatLimits = DEFAULT_LIMITS,
        trusted_proxies: tuple[Network, ...] = (),
        demo_page: bool = True,
    ) -> None:
        self.signer = signer
        self.max_text = max_text
        self.allowed_origins = allowed_origins
        self.limits = limits
        self.trusted_proxies = trusted_proxies
        self.demo_page_enabled = demo_page
        self.hub = WebchatHub(limits.max_sockets_per_conversation)
        self.adapter = WebchatAdapter(self.hub)
        self._upload_limits = KeyedLimiters(UPLOAD_WINDOW_SECONDS, UPLOAD_MAX_FILES)
        # Per conversation, not per socket: ten tabs on one conversation share one budget.
        self._message_limits = KeyedLimiters(limits.rate_window_seconds, limits.rate_max_messages)
        self._session_limits = KeyedLimiters(SESSION_WINDOW_SECONDS, limits.sessions_per_ip_per_hour)
        self.expiry: Expiry | None = None
        index = (STATIC / "index.html").read_text(encoding="utf-8")
        self._demo_headers = {
            **STATIC_HEADERS,
            "Cache-Control": "no-cache",
            "Content-Security-Policy": demo_page_csp(index),
        }

    @classmethod
    def from_settings(cls, signer: TokenSigner, settings: WebchatSettings, core: Settings) -> WebchatChannel:
        channel = cls(
            signer,
            max_text=settings.max_text,
            allowed_origins=settings.origins,
            limits=WebchatLimits.from_settings(settings),
            trusted_proxies=core.trusted_proxy_networks,
            demo_page=settings.demo_page,
        )
        return channel

    # the plug-in contract (gateway/channel.py)

    @property
    def adapters(self) -> tuple[WebchatAdapter]:
        return (self.adapter,)

    async def start(self, context: ChannelContext) -> None:
        """Routes are added when the app is built; the database exists only once the app starts."""
        self.attach(context.store, context.ingest, files=context.files)
        context.events.subscribe(self.on_event)

    def attach(self, store: ConversationStore, ingest: Ingest, files: FileStore | None = None) -> None:
        """Without `files` the upload endpoints answer 404 and message frames with attachments are refused."""
        self.store = store
        self.ingest = ingest
        self.files = files
        self.expiry = Expiry(
            store,
            files,
            channel=CHANNEL,
            empty_session_ttl=self.limits.empty_session_ttl_seconds,
            unattached_upload_ttl=self.limits.unattached_upload_ttl_seconds,
            is_live=self.hub.has,
        )
        self.expiry.start()

    async def stop(self) -> None:
        """At shutdown: stop the expiry sweep and close every socket (clients reconnect elsewhere)."""
        if self.expiry is not None:
            await self.expiry.stop()
        self.hub.close_all()

    def add_routes(self, app: web.Application) -> None:
        access_log.install()
        app.router.add_get("/", self.demo_page)
        app.router.add_get("/webchat/widget.js", self.widget)
        app.router.add_post("/webchat/sessions", self.create_session)
        app.router.add_route("OPTIONS", "/webchat/sessions", self.preflight)
        app.router.add_get("/webchat/files", self.file_policy)
        app.router.add_post("/webchat/files", self.upload_file)
        app.router.add_route("OPTIONS", "/webchat/files", self.preflight)
        app.router.add_get("/webchat/ws", self.websocket)

    # events from the core

    def on_event(self, event: Event) -> None:
        if isinstance(event, MessageStored):
            if event.message["author"] == "customer" and event.conversation["ref"]["channel"] == CHANNEL:
                # The customer's own message, echoed to all their tabs: that is the acknowledgement.
                self.hub.broadcast(str(event.conversation["_id"]), message_frame(event.message))
        elif isinstance(event, Typing):
            self.hub.broadcast(
                event.conversation_id, {"type": "typing", "author": event.author, "active": event.active}
            )
        elif isinstance(event, StatusChanged):
            self.hub.broadcast(event.conversation_id, {"type": "status", "status": event.status})

    # static

    async def demo_page(self, request: web.Request) -> web.StreamResponse:
        if not self.demo_page_enabled:  # WEBCHAT_DEMO_PAGE=false: the widget and protocol stay up
            raise web.HTTPNotFound(text="Not found", headers=STATIC_HEADERS)
        return web.FileResponse(STATIC / "index.html", headers=self._demo_headers)

    async def widget(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(
            STATIC / "widget.js",
            headers={
                **STATIC_HEADERS,
                "Cache-Control": "public, max-age=300",
                "Content-Type": "text/javascript; charset=utf-8",
            },
        )

    # sessions

    def _cors_headers(self, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        if origin is None:
            return {}
        if "*" in self.allowed_origins or origin.rstrip("/") in self.allowed_origins:
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                # Authorization: uploads carry the session token as a Bearer header (so they need a preflight).
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            }
        return {}

    def _origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        return origin is None or "*" in self.allowed_origins or origin.rstrip("/") in self.allowed_origins

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=self._cors_headers(request))

    async def create_session(self, request: web.Request) -> web.Response:
        headers = self._cors_headers(request)

        def refuse(message: str) -> web.Response:
            log_event(log, "webchat_session_refused", reason=message)
            return web.json_response({"error": "bad_request", "message": message}, status=400, headers=headers)

        if not self._origin_allowed(request):
            return web.json_response({"error": "origin_not_allowed"}, status=403)
        client = limit_key(client_address(request, self.trusted_proxies))
        limiter = self._session_limits.get(client)
        if not limiter.allow():
            log_event(log, "webchat_session_rate_limited", logging.WARNING, client=client)
            response = web.json_response(
                {"error": "rate_limited", "message": "Too many new chats from this address; try again later."},
                status=429,
                headers=headers,
            )
            response.headers["Retry-After"] = str(max(1, int(limiter.retry_after() + 0.999)))
            return response
        name = email = ""
        if request.can_read_body:
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            except RecursionError:  # JSON nested thousands deep: json.loads gives up with RecursionError
                return refuse("body is nested too deeply")
            if body is not None and not isinstance(body, dict):
                return refuse("body must be a JSON object")
            body = body or {}
            name = str(body.get("name") or "")[:200]
            email = str(body.get("email") or "")[:320]
            if not (well_formed(name) and well_formed(email)):
                return refuse("name and email must be valid Unicode text")
        visitor_id = uuid.uuid4().hex
        contact_id = await self.store.resolve_contact(Identity(CHANNEL, visitor_id, name=name, email=email))
        conversation = await self.store.create_conversation(ConversationRef(CHANNEL, visitor_id), contact_id)
        conversation_id = str(conversation["_id"])
        log_event(log, "webchat_session_created", conversation_id=conversation_id)
        return web.json_response(
            {"token": self.signer.issue(conversation_id, visitor_id), "conversation_id": conversation_id},
            status=201,
            headers=headers,
        )

    # files

    def _bearer_session(self, request: web.Request) -> Session | None:
        scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return self.signer.verify(token.strip())
        except InvalidToken:
            return None

    def _upload_limiter(self, conversation_id: str) -> RateLimiter:
        return self._upload_limits.get(conversation_id)

    async def file_policy(self, request: web.Request) -> web.Response:
        """What the widget may offer in its file picker; the upload itself is checked again anyway."""
        headers = self._cors_headers(request)
        if self.files is None:
            return web.json_response({"error": "files_disabled"}, status=404, headers=headers)
        policy = self.files.policy
        return web.json_response(
            {
                "max_bytes": policy.max_bytes,
                "allowed_types": sorted(policy.allowed_types),
                "max_attachments": MAX_ATTACHMENTS,
            },
            headers={**headers, "Cache-Control": "public, max-age=300"},
        )

    async def upload_file(self, request: web.Request) -> web.Response:
        headers = self._cors_headers(request)

        def refuse(status: int, code: str, message: str) -> web.Response:
            return web.json_response({"error": code, "message": message}, status=status, headers=headers)

        if not self._origin_allowed(request):
            return web.json_response({"error": "origin_not_allowed"}, status=403)
        if self.files is None:
            return refuse(404, "files_disabled", "file uploads are not enabled on this gateway")
        session = self._bearer_session(request)
        conversation_oid = parse_id(session.conversation_id) if session else None
        if session is None or conversation_oid is None or await self.store.get_conversation(conversation_oid) is None:
            return refuse(401, "invalid_token", "send the session token as Authorization: Bearer <token>")
        if not self._upload_limiter(session.conversation_id).allow():
            response = refuse(429, "rate_limited", "Too many files; wait a minute before sending more.")
            response.headers["Retry-After"] = str(int(UPLOAD_WINDOW_SECONDS))
            return response
        max_bytes = self.files.policy.max_bytes
        too_large = f"files can be at most {human_size(max_bytes)}"
        if request.content_length is not None and request.content_length > max_bytes + MULTIPART_OVERHEAD:
            return refuse(413, "file_too_large", too_large)  # refused before reading a byte of it
        if request.content_type != "multipart/form-data":
            return refuse(400, "bad_request", "send multipart/form-data with one field named file")
        unreadable = "the multipart body could not be read"
        try:
            reader = await request.multipart()
            part = await reader.next()
            if not isinstance(part, BodyPartReader) or part.name != "file":
                return refuse(400, "bad_request", "send multipart/form-data with one field named file")
            # Browsers escape `"` and line breaks in multipart names as %22/%0D/%0A, some clients escape all.
            # Header bytes that are not UTF-8 arrive as lone surrogates (surrogateescape): GridFS could not store them.
            name = repaired(unquote(part.filename or "")) or "file"
            declared_type = repaired(part.headers.get(hdrs.CONTENT_TYPE, ""))
            data = bytearray()
            # Read in chunks and stop at the cap: the whole upload is never held if it is too big.
            while chunk := await part.read_chunk(UPLOAD_READ_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    return refuse(413, "file_too_large", f"{safe_name(name)}: {too_large}")
        except (ValueError, HttpProcessingError) as exc:
            # A broken boundary raises ValueError; a part header with a NUL, CR or LF in it, InvalidHeader.
            log_event(
                log, "webchat_upload_unreadable", conversation_id=session.conversation_id, error=type(exc).__name__
            )
            return refuse(400, "bad_request", unreadable)
        try:
            attachment = await self.files.put(
                bytes(data),
                name=name,
                content_type=declared_type,
                conversation_id=session.conversation_id,
                source="customer",
                unattached=True,
            )
        except FileRejected as exc:
            log_event(log, "webchat_file_refused", conversation_id=session.conversation_id, code=exc.code)
            return refuse(REJECTION_STATUS.get(exc.code, 400), exc.code, exc.reason)
        return web.json_response(
            {
                "file_id": attachment.file_id,
                "name": attachment.name,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "url": attachment.url,
            },
            status=201,
            headers=headers,
        )

    # websocket

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=25.0, max_msg_size=HARD_FRAME_LIMIT)
        # Close codes need an open socket, so bad requests are refused after the handshake.
        await ws.prepare(request)
        if not self._origin_allowed(request):
            await ws.close(code=CLOSE_ORIGIN, message=b"origin not allowed")
            return ws
        if not request.query.get("token"):
            await ws.close(code=CLOSE_BAD_REQUEST, message=b"token is required")
            return ws
        try:
            session = self.signer.verify(request.query.get("token", ""))
        except InvalidToken as exc:
            await ws.close(code=CLOSE_BAD_TOKEN, message=str(exc).encode())
            return ws
        raw_seq = request.query.get("after_seq", "0")
        after_seq = int(raw_seq) if AFTER_SEQ.fullmatch(raw_seq) else -1
        if not 0 <= after_seq <= MAX_SEQ:
            log_event(log, "webchat_bad_after_seq", conversation_id=session.conversation_id)
            await ws.close(
                code=CLOSE_BAD_REQUEST, message=b"after_seq must be an integer from 0 to 2^63-1 in ASCII digits"
            )
            return ws
        conversation_oid = parse_id(session.conversation_id)
        conversation = await self.store.get_conversation(conversation_oid) if conversation_oid else None
        if conversation is None:
            await ws.close(code=CLOSE_BAD_TOKEN, message=b"unknown conversation")
            return ws

        connection = Connection(ws, session.conversation_id, after_seq)
        # Before reading history, so nothing stored meanwhile slips through. Past the cap the oldest
        # sockets of this conversation are closed with 4409: a reload's new socket must always win.
        if replaced := self.hub.add(connection):
            log_event(log, "webchat_sockets_replaced", conversation_id=session.conversation_id, count=len(replaced))
        writer = asyncio.create_task(connection.write_forever())
        try:
            connection.offer({"type": "status", "status": conversation["status"]})
            history = await self.store.messages_after(conversation_oid, after_seq, limit=10_000)
            if after_seq:
                # A reply takes its number when the customer's message is numbered, so it can be stored
                # after a later message the client already holds (seq > the reply's): replay what was
                # stored lately at or below after_seq too. Clients keep one copy per seq.
                history += await self.store.messages.find(
                    {
                        "conversation_id": conversation_oid,
                        "seq": {"$lte": after_seq},
                        "created_at": {"$gte": utcnow() - LATE_REPLY_WINDOW},
                    }
                ).to_list()
            connection.replay([message_frame(m) for m in history])
            if after_seq:
                # Messages the client already holds that an agent edited or deleted while it was away.
                revised = await self.store.messages.find(
                    {"conversation_id": conversation_oid, "seq": {"$lte": after_seq}, "revised_seq": {"$gt": after_seq}}
                ).to_list()
                for frame in filter(None, map(revision_frame, revised)):
                    connection.offer(frame)
            ref = ConversationRef.from_doc(conversation["ref"])
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_frame(connection, ref, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    connection.offer(error_frame("bad_frame", "frames must be JSON text"))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.hub.remove(connection)
            connection.close_soon()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 5)
            if not writer.done():
                writer.cancel()
        return ws

    async def _on_frame(self, connection: Connection, ref: ConversationRef, data: str) -> None:
        parsed = self._validate(data)
        if isinstance(parsed, dict):
            log_event(log, "webchat_frame_refused", conversation_id=connection.conversation_id, code=parsed["code"])
            connection.offer(parsed)
            return
        if not self._message_limits.get(connection.conversation_id).allow():
            log_event(log, "webchat_rate_limited", logging.DEBUG, conversation_id=connection.conversation_id)
            connection.offer(
                {
                    **error_frame("rate_limited", "Too many messages; wait a few seconds."),
                    "client_msg_id": parsed.client_msg_id,
                }
            )
            return
        attachments: tuple[Attachment, ...] = ()
        if parsed.file_ids:
            try:
                if self.files is None:
                    raise FileRejected("file uploads are not enabled on this gateway")
                # Only files this conversation uploaded: a file id from elsewhere is refused, never attached.
                attachments = await self.files.owned_attachments(parsed.file_ids, connection.conversation_id)
            except FileRejected as exc:
                connection.offer({**error_frame("bad_attachment", exc.reason), "client_msg_id": parsed.client_msg_id})
                return
        inbound = InboundMessage(
            ref=ref,
            sender=Identity(CHANNEL, ref.chat_id),
            text=parsed.text,
            idempotency_key=f"webchat:{connection.conversation_id}:{parsed.client_msg_id}",
            attachments=attachments,
            client_msg_id=parsed.client_msg_id,
        )
        result = await self.ingest.receive(inbound)
        if result.duplicate:
            # The client resent a message it never saw acknowledged: acknowledge it again.
            # It may be older than what this socket already sent, so it skips the seq filter.
            connection.offer({**message_frame(result.message), "_ack": True})

    def _validate(self, data: str) -> dict[str, Any] | ClientMessage:
        """The message, or the error frame refusing it. Nothing is written before this passes.

        Refusals of a frame whose client_msg_id can be read carry it, so a client stops resending that
        message. It is echoed even when it holds lone surrogates: JSON escapes them (\\ud83d), and a
        JavaScript client parses the escape back into the very string it sent.
        """
        if len(data.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
            return error_frame("frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
        try:
            frame = json.loads(data)
        except json.JSONDecodeError:
            return error_frame("bad_frame", "frame is not valid JSON")
        except RecursionError:  # "[[[[...": json.loads recurses once per level
            return error_frame("bad_frame", "frame is nested too deeply")
        if not isinstance(frame, dict) or frame.get("type") != "message":
            return error_frame("bad_frame", 'expected {"type": "message", "text": ..., "client_msg_id": ...}')
        text, client_msg_id = frame.get("text"), frame.get("client_msg_id")
        if not isinstance(client_msg_id, str) or not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID:
            return error_frame("bad_frame", f"client_msg_id must be a string of 1-{MAX_CLIENT_MSG_ID} characters")

        def refuse(code: str, message: str) -> dict[str, Any]:
            return {**error_frame(code, message), "client_msg_id": client_msg_id}

        if not well_formed(client_msg_id):
            return refuse("bad_frame", "client_msg_id must be valid Unicode text (it holds a lone surrogate)")
        if not isinstance(text, str):
            return refuse("bad_frame", "text must be a string")
        if not well_formed(text):
            return refuse("malformed_text", "text holds a lone surrogate (half of an emoji?); it cannot be stored")
        file_ids = self._file_ids(frame.get("attachments", []))
        if file_ids is None:
            return refuse(
                "bad_frame", f'attachments must be a list of at most {MAX_ATTACHMENTS} {{"file_id": ...}} objects'
            )
        text = text.strip()
        if not text and not file_ids:  # a file on its own is a message; nothing at all is not
            return refuse("empty_text", "text is empty")
        if len(text) > self.max_text:
            return refuse("text_too_long", f"text is limited to {self.max_text} characters")
        return ClientMessage(text, client_msg_id, file_ids)

    @staticmethod
    def _file_ids(raw: Any) -> tuple[str, ...] | None:
        if raw is None:
            return ()
        if not isinstance(raw, list) or len(raw) > MAX_ATTACHMENTS:
            return None
        ids = []
        for item in raw:
            file_id = item.get("file_id") if isinstance(item, dict) else None
            if not isinstance(file_id, str) or not 1 <= len(file_id) <= MAX_FILE_ID:
                return None
            ids.append(file_id)
        return tuple(dict.fromkeys(ids))
