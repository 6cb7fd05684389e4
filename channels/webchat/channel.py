"""The web chat channel: session creation, the WebSocket endpoint, and the widget's static files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from channels.webchat.adapter import CHANNEL, WebchatAdapter
from channels.webchat.frames import error_frame, message_frame
from channels.webchat.hub import Connection, WebchatHub
from channels.webchat.tokens import InvalidToken, TokenSigner
from gateway.events import Event, MessageStored, StatusChanged, Typing
from gateway.ingest import Ingest
from gateway.logs import log_event
from gateway.models import ConversationRef, Identity, InboundMessage
from gateway.store import ConversationStore, parse_id

log = logging.getLogger("channels.webchat")

STATIC = Path(__file__).parent / "static"
MAX_FRAME_BYTES = 64 * 1024
# Above this aiohttp closes the socket (1009); between the two we answer with an error frame.
HARD_FRAME_LIMIT = 256 * 1024
MAX_CLIENT_MSG_ID = 100
RATE_WINDOW_SECONDS, RATE_MAX_MESSAGES = 10.0, 20
CLOSE_BAD_TOKEN, CLOSE_BAD_REQUEST, CLOSE_ORIGIN = 4401, 4400, 4403


class RateLimiter:
    """A sliding window per connection: a stuck client or a script can't flood a conversation."""

    def __init__(self) -> None:
        self._times: list[float] = []

    def allow(self) -> bool:
        now = time.monotonic()
        self._times = [t for t in self._times if now - t < RATE_WINDOW_SECONDS]
        if len(self._times) >= RATE_MAX_MESSAGES:
            return False
        self._times.append(now)
        return True


class WebchatChannel:
    store: ConversationStore
    ingest: Ingest

    def __init__(
        self,
        signer: TokenSigner,
        *,
        max_text: int = 4000,
        allowed_origins: frozenset[str] = frozenset({"*"}),
    ) -> None:
        self.signer = signer
        self.max_text = max_text
        self.allowed_origins = allowed_origins
        self.hub = WebchatHub()
        self.adapter = WebchatAdapter(self.hub, max_text=max_text)

    def attach(self, store: ConversationStore, ingest: Ingest) -> None:
        """Routes are added when the app is built; the database exists only once the app starts."""
        self.store = store
        self.ingest = ingest

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.demo_page)
        app.router.add_get("/webchat/widget.js", self.widget)
        app.router.add_post("/webchat/sessions", self.create_session)
        app.router.add_route("OPTIONS", "/webchat/sessions", self.preflight)
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

    async def demo_page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def widget(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(
            STATIC / "widget.js",
            headers={
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
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type",
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
        if not self._origin_allowed(request):
            return web.json_response({"error": "origin_not_allowed"}, status=403)
        name = email = ""
        if request.can_read_body:
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if body is not None and not isinstance(body, dict):
                return web.json_response(
                    {"error": "bad_request", "message": "body must be a JSON object"},
                    status=400,
                    headers=headers,
                )
            body = body or {}
            name = str(body.get("name") or "")[:200]
            email = str(body.get("email") or "")[:320]
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
        try:
            after_seq = int(request.query.get("after_seq", "0"))
            if after_seq < 0:
                raise ValueError
        except ValueError:
            await ws.close(code=CLOSE_BAD_REQUEST, message=b"after_seq must be a non-negative integer")
            return ws
        conversation_oid = parse_id(session.conversation_id)
        conversation = await self.store.get_conversation(conversation_oid) if conversation_oid else None
        if conversation is None:
            await ws.close(code=CLOSE_BAD_TOKEN, message=b"unknown conversation")
            return ws

        connection = Connection(ws, session.conversation_id, after_seq)
        self.hub.add(connection)  # before reading history, so nothing stored meanwhile slips through
        writer = asyncio.create_task(connection.write_forever())
        try:
            connection.offer({"type": "status", "status": conversation["status"]})
            history = await self.store.messages_after(conversation_oid, after_seq, limit=10_000)
            connection.replay([message_frame(m) for m in history])
            ref = ConversationRef.from_doc(conversation["ref"])
            limiter = RateLimiter()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_frame(connection, ref, msg.data, limiter)
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

    async def _on_frame(self, connection: Connection, ref: ConversationRef, data: str, limiter: RateLimiter) -> None:
        problem = self._validate(data)
        if isinstance(problem, dict):
            connection.offer(problem)
            return
        text, client_msg_id = problem
        if not limiter.allow():
            connection.offer(error_frame("rate_limited", "Too many messages; wait a few seconds."))
            return
        inbound = InboundMessage(
            ref=ref,
            sender=Identity(CHANNEL, ref.chat_id),
            text=text,
            idempotency_key=f"webchat:{connection.conversation_id}:{client_msg_id}",
            client_msg_id=client_msg_id,
        )
        result = await self.ingest.receive(inbound)
        if result.duplicate:
            # The client resent a message it never saw acknowledged: acknowledge it again.
            # It may be older than what this socket already sent, so it skips the seq filter.
            connection.offer({**message_frame(result.message), "_ack": True})

    def _validate(self, data: str) -> dict[str, Any] | tuple[str, str]:
        if len(data.encode()) > MAX_FRAME_BYTES:
            return error_frame("frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
        try:
            frame = json.loads(data)
        except json.JSONDecodeError:
            return error_frame("bad_frame", "frame is not valid JSON")
        if not isinstance(frame, dict) or frame.get("type") != "message":
            return error_frame("bad_frame", 'expected {"type": "message", "text": ..., "client_msg_id": ...}')
        text, client_msg_id = frame.get("text"), frame.get("client_msg_id")
        if not isinstance(text, str):
            return error_frame("bad_frame", "text must be a string")
        if not isinstance(client_msg_id, str) or not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID:
            return error_frame("bad_frame", f"client_msg_id must be a string of 1-{MAX_CLIENT_MSG_ID} characters")
        text = text.strip()
        if not text:
            return error_frame("empty_text", "text is empty")
        if len(text) > self.max_text:
            return error_frame("text_too_long", f"text is limited to {self.max_text} characters")
        return text, client_msg_id
