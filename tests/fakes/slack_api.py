"""A local fake of Slack's Web API, so the Slack bridge's tests drive the real slack_sdk client offline.

Point the real client at it: ``AsyncWebClient(token=fake.token, base_url=fake.url + "/api/")``.
It follows the conventions of https://api.slack.com/web ("Basics"): POST ``/api/<method>``, arguments
as query string, form (urlencoded or multipart) or JSON body, ``Authorization: Bearer xoxb-...``, and an
HTTP 200 answer of ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Every call is recorded;
failures can be scripted per method (HTTP 429 with Retry-After, HTTP 5xx, or an ``ok: false`` error).

Besides the Web API it serves what a bridge meets around it:

- Slack-hosted files an agent attaches in a thread (``add_user_file``), downloadable from ``url_private`` /
  ``url_private_download`` with the bot token only (https://api.slack.com/types/file "Authentication").
- Socket Mode (https://api.slack.com/apis/socket-mode): ``apps.connections.open`` with the app-level token
  hands out ``ws://127.0.0.1:<port>/link/?ticket=...``; the fake says ``hello`` on connect, and a test pushes
  envelopes with ``await fake.socket_send(...)`` and gets the client's ack back.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

Params = dict[str, Any]
Answer = dict[str, Any]

# Arguments that arrive as JSON strings inside form data (the SDK serialises them that way for
# form-encoded methods; https://api.slack.com/web "POST bodies": JSON-typed args are sent as strings).
_JSON_ARGS = ("blocks", "attachments", "files", "metadata")

# --- Limits -----------------------------------------------------------------------------------
# chat.postMessage, "Truncating really long messages": https://api.slack.com/changelog/2018-04-truncating-really-long-messages
# and the `msg_too_long` error listed at https://api.slack.com/methods/chat.postMessage#errors.
# Slack documents truncation at 40,000 characters; the fake is stricter and rejects, so a bridge
# that would silently lose text fails loudly in tests.
MAX_TEXT = 40_000
# "You can include up to 50 blocks in each message": https://api.slack.com/reference/block-kit/blocks
MAX_BLOCKS = 50
# block_id "Maximum length for this field is 255 characters ... should be unique for each message":
# https://api.slack.com/reference/block-kit/blocks (every block's `block_id` field)
MAX_BLOCK_ID = 255
# Section block: text ≤ 3000; fields ≤ 10 items, each ≤ 2000: https://api.slack.com/reference/block-kit/blocks#section
MAX_SECTION_TEXT = 3_000
MAX_SECTION_FIELDS = 10
MAX_SECTION_FIELD_TEXT = 2_000
# Header block: text is plain_text, ≤ 150: https://api.slack.com/reference/block-kit/blocks#header
MAX_HEADER_TEXT = 150
# Context block: elements ≤ 10: https://api.slack.com/reference/block-kit/blocks#context
MAX_CONTEXT_ELEMENTS = 10
# Actions block: elements ≤ 25: https://api.slack.com/reference/block-kit/blocks#actions
MAX_ACTIONS_ELEMENTS = 25
# Button element: text plain_text ≤ 75, action_id ≤ 255, value ≤ 2000, url ≤ 3000:
# https://api.slack.com/reference/block-kit/block-elements#button
MAX_BUTTON_TEXT = 75
MAX_ACTION_ID = 255
MAX_BUTTON_VALUE = 2_000
MAX_BUTTON_URL = 3_000
# Block types Slack accepts in messages: https://api.slack.com/reference/block-kit/blocks ("Blocks" list).
KNOWN_BLOCK_TYPES = frozenset(
    {"actions", "context", "divider", "file", "header", "image", "input", "markdown", "rich_text", "section", "video"}
)

# --- Channel arguments ------------------------------------------------------------------------
# chat.postMessage and chat.postEphemeral document `channel` as "an encoded ID or channel name"; the other
# methods the bridge uses (chat.update, chat.delete, reactions.add, conversations.info/replies,
# files.completeUploadExternal's channel_id) document an ID only. The fake follows the docs, so a bridge
# that keeps "#support" around and later edits with it fails here and not in production.
# (Handlers pass `names=True` to `_channel` for exactly those two methods.)

# --- Tokens -----------------------------------------------------------------------------------
# https://api.slack.com/authentication/token-types: apps.connections.open takes only an app-level token
# (xapp-), and an app-level token is refused by the bot methods; both give `not_allowed_token_type`.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})

# --- Socket Mode ------------------------------------------------------------------------------
# Envelope types Slack sends over the socket (https://api.slack.com/apis/socket-mode "Payload").
SOCKET_PAYLOAD_TYPES = frozenset({"events_api", "interactive", "slash_commands"})
# Interactive payloads whose ack may carry a response payload (view_submission errors, options lists);
# block_actions acks carry none. Slash commands may always answer in the ack.
_RESPONSE_PAYLOAD_INTERACTIONS = frozenset({"view_submission", "block_suggestion", "dialog_suggestion"})
SOCKET_ACK_TIMEOUT = 10.0

# --- Files --------------------------------------------------------------------------------------
# Slack's `filetype` is a short name, mostly the extension (https://api.slack.com/types/file#types).
_FILETYPE_BY_EXTENSION = {"jpeg": "jpg", "txt": "text", "htm": "html", "md": "markdown"}


@dataclass(frozen=True)
class Outcome:
    """One scripted answer, consumed by the next call of its method instead of the real handler."""

    status: int = 200
    error: str | None = None
    retry_after: int | None = None

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> Outcome:
        """HTTP 429 + Retry-After in whole seconds, as https://api.slack.com/apis/rate-limits describes."""
        return cls(status=429, error="ratelimited", retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Outcome:
        """A 5xx: Slack being down, which the SDK's server-error retry handler may retry."""
        return cls(status=status, error="internal_error")

    @classmethod
    def disconnect(cls) -> Outcome:
        """No answer at all: the connection is closed under the request (the client sees a network error,
        e.g. aiohttp's ServerDisconnectedError, which slack_sdk retries once by default)."""
        return cls(status=0)

    @classmethod
    def fail(cls, error: str) -> Outcome:
        """An HTTP 200 ``{"ok": false, "error": error}`` answer, e.g. ``channel_not_found``."""
        return cls(status=200, error=error)


@dataclass
class Call:
    """One recorded request: what the client sent and what the fake answered."""

    method: str
    params: Params
    headers: dict[str, str]
    status: int = 200
    answer: Answer = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.answer.get("ok"))


@dataclass
class Message:
    """A stored message; replies carry the parent's ts in ``thread_ts``."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    user: str = ""
    bot_id: str = ""
    username: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None
    unfurl_links: Any = None
    unfurl_media: Any = None
    reactions: dict[str, list[str]] = field(default_factory=dict)  # reaction name → user ids
    files: list[dict[str, Any]] = field(default_factory=list)
    edited: bool = False

    def to_api(self) -> dict[str, Any]:
        """The message object shape Slack returns (https://api.slack.com/events/message); a person's message
        has no ``bot_id``."""
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user}
        if self.bot_id:
            out["bot_id"] = self.bot_id
        if self.text is not None:
            out["text"] = self.text
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.attachments is not None:
            out["attachments"] = self.attachments
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.username is not None:
            out["username"] = self.username
        if self.reactions:
            out["reactions"] = [{"name": n, "users": u, "count": len(u)} for n, u in self.reactions.items()]
        if self.files:
            out["files"] = self.files
        if self.edited:
            out["edited"] = {"user": self.user, "ts": self.ts}
        return out


@dataclass
class Ephemeral:
    """A chat.postEphemeral message: seen by one user only, never part of the channel's history."""

    channel: str
    user: str
    message_ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    thread_ts: str | None = None


@dataclass
class UploadedFile:
    """A stored file: from the bot's upload v2 flow (reserved, then its bytes, then shared by
    completeUploadExternal), or attached by a person in Slack (``add_user_file``)."""

    id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    mimetype: str | None = None
    user: str | None = None


class SlackApiError(Exception):
    """Raised inside handlers to answer ``{"ok": false, "error": ...}`` with optional extra keys."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class FakeSlackApi:
    """The fake server: start it, point AsyncWebClient at ``url + "/api/"``, read ``calls()``/``thread()``."""

    def __init__(
        self,
        token: str = "xoxb-test-token",
        *,
        channels: dict[str, str] | None = None,
        users: dict[str, dict[str, str]] | None = None,
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        team_id: str = "T0TEAM",
        app_id: str = "A0APP",
        app_token: str = "xapp-test-token",
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.app_id = app_id
        self.channels: dict[str, str] = dict(channels or {"C0HANDOFF": "handoff"})  # id → name
        self.users: dict[str, dict[str, str]] = dict(users or {})  # id → {"real_name", "display_name"}
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.files: dict[str, UploadedFile] = {}
        self.deleted: list[Message] = []
        self.ephemerals: list[Ephemeral] = []
        # Socket Mode: set while at least one client is connected and has been sent its hello.
        self.socket_connected = asyncio.Event()
        self.socket_connects = 0  # connections accepted so far; grows on every reconnect
        self.socket_frames: list[dict[str, Any]] = []  # every JSON frame a client sent (acks)
        self.server: TestServer | None = None
        self._sockets: list[web.WebSocketResponse] = []  # open connections, oldest first
        self._tickets: set[str] = set()
        self._pending_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._calls: list[Call] = []
        self._script: dict[str, list[Outcome]] = {}
        self._delays: dict[str, float] = {}  # method → seconds each call takes (see ``slow``)
        self._messages: dict[str, list[Message]] = {}  # channel → messages in posting order
        self._seq = 0
        self._handlers: dict[str, Callable[[Params], Awaitable[Answer]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "reactions.add": self._reactions_add,
            "users.info": self._users_info,
            "conversations.info": self._conversations_info,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "apps.connections.open": self._apps_connections_open,
        }

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> FakeSlackApi:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # the SDK GETs read methods such as users.info
        app.router.add_post("/upload/{file_id}", self._upload)
        # Slack-hosted files: https://files.slack.com/files-pri/<team>-<file>/[download/]<name>
        app.router.add_get("/files-pri/{file_key}/download/{name}", self._download)
        app.router.add_get("/files-pri/{file_key}/{name}", self._download)
        app.router.add_get("/", self._signin_page)
        app.router.add_get("/link/", self._socket)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        for future in self._pending_acks.values():
            future.cancel()
        for ws in list(self._sockets):
            await ws.close(message=b"fake shutting down")
        if self.server is not None:
            await self.server.close()

    @property
    def url(self) -> str:
        """Root URL without trailing slash; the SDK's base_url is ``url + "/api/"``."""
        assert self.server is not None, "start() the fake first"
        return str(self.server.make_url("")).rstrip("/")

    # --- scripting and inspection ----------------------------------------------------------------

    def script(self, method: str, *outcomes: Outcome) -> None:
        """Queue outcomes for ``method`` (or ``"upload"`` / ``"download"`` for the raw file requests), one per
        call."""
        self._script.setdefault(method, []).extend(outcomes)

    def unscript(self, method: str) -> None:
        """Drop the outcomes still queued for ``method``: it answers normally again."""
        self._script.pop(method, None)

    def slow(self, method: str, seconds: float) -> None:
        """Make every later call of ``method`` take ``seconds`` before it is answered (and takes effect), as a
        busy Slack does; 0 makes it fast again."""
        self._delays[method] = seconds

    def calls(self, method: str | None = None) -> list[Call]:
        """Every request in arrival order, failed ones included, optionally for one method. Besides Web API
        methods: ``"upload"``, ``"download"`` (file GETs), ``"socket.connect"`` (websocket handshakes) and
        ``"socket.envelope"`` (what ``socket_send`` sent, with the client's ack as ``answer``)."""
        return [c for c in self._calls if method is None or c.method == method]

    @property
    def downloads(self) -> list[Call]:
        """File downloads that returned the bytes (refused ones are in ``calls("download")`` too)."""
        return [c for c in self.calls("download") if c.status == 200]

    def channel_id(self, channel: str) -> str | None:
        """The id for an id, a name (``support``) or a ``#name``; None if the workspace has no such channel."""
        if channel in self.channels:
            return channel
        name = channel.removeprefix("#")
        return next((cid for cid, known in self.channels.items() if known == name), None)

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel (thread replies excluded), oldest first."""
        return [m for m in self._messages.get(channel, []) if m.thread_ts is None or m.thread_ts == m.ts]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The parent at ``ts`` followed by its replies, oldest first (empty if no such message)."""
        parent = self.message(channel, ts)
        if parent is None:
            return []
        return [parent, *(m for m in self._messages.get(channel, []) if m.thread_ts == ts and m.ts != ts)]

    def message(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self._messages.get(channel, []) if m.ts == ts), None)

    # --- what people do in Slack (no API call: the test then sends the matching event) ----------------

    def add_user_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> Message:
        """Store a message a person wrote (e.g. an agent's thread reply), so ``conversations.replies`` sees it.
        Pair it with ``slack_events.thread_message(..., ts=message.ts)`` to deliver the event."""
        channel_id = self.channel_id(channel)
        if channel_id is None:
            raise KeyError(f"no channel {channel!r} in the fake workspace")
        if thread_ts is not None:
            parent = self.message(channel_id, thread_ts)
            if parent is None:
                raise KeyError(f"no message {thread_ts} in {channel_id}")
            thread_ts = parent.thread_ts or parent.ts
        message = Message(
            channel=channel_id, ts=self._next_ts(), text=text, thread_ts=thread_ts, user=user, files=list(files or [])
        )
        self._messages.setdefault(channel_id, []).append(message)
        return message

    def add_user_file(
        self, name: str, content_type: str, data: bytes, *, user: str | None = None, title: str | None = None
    ) -> dict[str, Any]:
        """Store a file a person attached in Slack and return the file object as a ``message`` event's
        ``files`` array carries it (https://api.slack.com/types/file). Its ``url_private`` and
        ``url_private_download`` point at this fake and need ``Authorization: Bearer <bot token>``."""
        self._seq += 1
        file_id = f"F{self._seq:08d}"
        owner = user or next(iter(self.users), "U0AGENT")
        mimetype = content_type.split(";")[0].strip().lower()
        self.files[file_id] = UploadedFile(
            id=file_id,
            filename=name,
            length=len(data),
            data=data,
            title=title or name,
            mimetype=mimetype,
            user=owner,
        )
        return self.file_object(file_id)

    def file_object(self, file_id: str) -> dict[str, Any]:
        """A stored file in Slack's file object shape (the fields a hosted file has in a message event)."""
        stored = self.files[file_id]
        extension = stored.filename.rpartition(".")[2].lower() if "." in stored.filename else ""
        filetype = _FILETYPE_BY_EXTENSION.get(extension, extension or "binary")
        created = int(time.time())
        base = f"{self.url}/files-pri/{self.team_id}-{file_id}"
        name = quote(stored.filename)
        return {
            "id": file_id,
            "created": created,
            "timestamp": created,
            "name": stored.filename,
            "title": stored.title or stored.filename,
            "mimetype": stored.mimetype or "application/octet-stream",
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": stored.user or self.bot_user_id,
            "user_team": self.team_id,
            "editable": False,
            "size": len(stored.data or b""),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{base}/{name}",
            "url_private_download": f"{base}/download/{name}",
            "permalink": f"https://fake-workspace.slack.com/files/{stored.user or self.bot_user_id}/{file_id}/{name}",
            "has_rich_preview": False,
            "file_access": "visible",
        }

    # --- HTTP plumbing ---------------------------------------------------------------------------

    def _next_ts(self) -> str:
        """Unique, increasing "seconds.micros" ts strings like Slack's (https://api.slack.com/messaging/retrieving)."""
        self._seq += 1
        micros = self._seq * 100
        return f"{1733000000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _scripted(self, method: str, request: web.Request | None = None) -> web.Response | None:
        queue = self._script.get(method)
        if not queue:
            return None
        outcome = queue.pop(0)
        if outcome.status == 0:
            if request is not None and request.transport is not None:
                request.transport.close()
            raise ConnectionResetError(f"scripted disconnect for {method}")
        headers = {"Retry-After": str(outcome.retry_after)} if outcome.retry_after is not None else {}
        return web.json_response(
            {"ok": False, "error": outcome.error or "fatal_error"}, status=outcome.status, headers=headers
        )

    async def _parse(self, request: web.Request) -> Params:
        """Merge query string and body (JSON, urlencoded or multipart); decode JSON-string args."""
        params: Params = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in _JSON_ARGS:
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    params[key] = _Malformed(params[key])
        return params

    def _authorised(self, request: web.Request, params: Params, method: str) -> str | None:
        """None if the token matches, else the error Slack gives (https://api.slack.com/web "Authentication");
        the token's type must suit the method (see ``_APP_TOKEN_METHODS``)."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else params.get("token")
        if not token:
            return "not_authed"
        token = str(token)
        wants_app_token = method in _APP_TOKEN_METHODS
        if token.startswith("xapp-") != wants_app_token:
            return "not_allowed_token_type"
        return None if token == (self.app_token if wants_app_token else self.token) else "invalid_auth"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._parse(request)
        call = Call(method=method, params=params, headers=dict(request.headers))
        self._calls.append(call)
        if self._delays.get(method):
            await asyncio.sleep(self._delays[method])
        response = self._scripted(method, request)
        if response is None:
            auth_error = self._authorised(request, params, method)
            handler = self._handlers.get(method)
            if auth_error is not None:
                answer: Answer = {"ok": False, "error": auth_error}
            elif handler is None:
                answer = {"ok": False, "error": "unknown_method"}
            else:
                try:
                    answer = {"ok": True, **await handler(params)}
                except SlackApiError as exc:
                    answer = {"ok": False, "error": exc.error, **exc.extra}
            response = web.json_response(answer)
        call.status = response.status
        call.answer = json.loads(response.body) if isinstance(response.body, bytes) else {}
        return response

    async def _upload(self, request: web.Request) -> web.Response:
        """The raw POST to the upload_url from files.getUploadURLExternal (no auth, body is the bytes)."""
        file_id = request.match_info["file_id"]
        data = await request.read()
        call = Call(method="upload", params={"file_id": file_id, "size": len(data)}, headers=dict(request.headers))
        self._calls.append(call)
        scripted = self._scripted("upload", request)
        if scripted is not None:
            call.status = scripted.status
            return scripted
        pending = self.files.get(file_id)
        if pending is None:
            call.status = 404
            return web.Response(status=404, text="unknown upload")
        pending.data = data
        return web.Response(text=f"OK - {len(data)}")

    # --- shared validation -----------------------------------------------------------------------

    def _channel(self, params: Params, key: str = "channel", *, names: bool = False) -> str:
        """The channel id; ``names=True`` for the methods documented to take a name as well (see
        "Channel arguments" at the top). Answers always carry the id, as Slack's do."""
        channel = params.get(key)
        if not channel:
            raise SlackApiError("channel_not_found")
        channel = str(channel)
        resolved = self.channel_id(channel) if names else (channel if channel in self.channels else None)
        if resolved is None:
            raise SlackApiError("channel_not_found")
        return resolved

    def _existing(self, channel: str, ts: Any) -> Message:
        message = self.message(channel, str(ts)) if ts else None
        if message is None:
            raise SlackApiError("message_not_found")
        return message

    def _check_content(self, params: Params) -> None:
        """Text/blocks rules shared by chat.postMessage and chat.update."""
        text, blocks, attachments = params.get("text"), params.get("blocks"), params.get("attachments")
        if isinstance(attachments, _Malformed):
            raise SlackApiError("invalid_attachments")
        if isinstance(blocks, _Malformed):
            raise SlackApiError("invalid_blocks_format")
        if not text and not blocks and not attachments:
            raise SlackApiError("no_text")  # https://api.slack.com/methods/chat.postMessage#errors
        if text is not None and len(str(text)) > MAX_TEXT:
            raise SlackApiError("msg_too_long")
        if blocks:
            errors = validate_blocks(blocks)
            if errors:
                # Shape of a real invalid_blocks answer: errors + response_metadata.messages.
                raise SlackApiError("invalid_blocks", errors=errors, response_metadata={"messages": errors})

    # --- methods ---------------------------------------------------------------------------------

    async def _auth_test(self, params: Params) -> Answer:
        # https://api.slack.com/methods/auth.test
        return {
            "url": "https://fake-workspace.slack.com/",
            "team": "Fake Workspace",
            "user": "support-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    async def _chat_post_message(self, params: Params) -> Answer:
        # https://api.slack.com/methods/chat.postMessage
        channel = self._channel(params, names=True)
        self._check_content(params)
        thread_ts = params.get("thread_ts") or None
        if thread_ts is not None:
            parent = self._existing(channel, thread_ts)  # the fake is strict: replies need a parent
            thread_ts = parent.thread_ts or parent.ts  # replying to a reply lands in the same thread
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            text=params.get("text"),
            blocks=params.get("blocks"),
            attachments=params.get("attachments"),
            thread_ts=thread_ts,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            username=params.get("username"),
            icon_emoji=params.get("icon_emoji"),
            icon_url=params.get("icon_url"),
            unfurl_links=params.get("unfurl_links"),
            unfurl_media=params.get("unfurl_media"),
        )
        self._messages.setdefault(channel, []).append(message)
        return {"channel": channel, "ts": message.ts, "message": message.to_api()}

    async def _chat_post_ephemeral(self, params: Params) -> Answer:
        # https://api.slack.com/methods/chat.postEphemeral: shown to `user` only, gone on reload, so it is
        # kept apart from the channel history; the answer names it by `message_ts`.
        channel = self._channel(params, names=True)
        user = str(params.get("user") or "")
        if not user:
            raise SlackApiError("user_not_found")
        if user not in self.users:
            raise SlackApiError("user_not_in_channel")
        self._check_content(params)
        thread_ts = params.get("thread_ts") or None
        if thread_ts is not None:
            parent = self._existing(channel, thread_ts)
            thread_ts = parent.thread_ts or parent.ts
        ephemeral = Ephemeral(
            channel=channel,
            user=user,
            message_ts=self._next_ts(),
            text=params.get("text"),
            blocks=params.get("blocks"),
            attachments=params.get("attachments"),
            thread_ts=thread_ts,
        )
        self.ephemerals.append(ephemeral)
        return {"message_ts": ephemeral.message_ts}

    async def _chat_update(self, params: Params) -> Answer:
        # https://api.slack.com/methods/chat.update
        channel = self._channel(params)
        message = self._existing(channel, params.get("ts"))
        self._check_content(params)
        for key in ("text", "blocks", "attachments"):
            if key in params:
                setattr(message, key, params[key])
        message.edited = True
        return {"channel": channel, "ts": message.ts, "text": message.text, "message": message.to_api()}

    async def _chat_delete(self, params: Params) -> Answer:
        # https://api.slack.com/methods/chat.delete
        channel = self._channel(params)
        message = self._existing(channel, params.get("ts"))
        self._messages[channel].remove(message)
        self.deleted.append(message)
        return {"channel": channel, "ts": message.ts}

    async def _reactions_add(self, params: Params) -> Answer:
        # https://api.slack.com/methods/reactions.add (errors: already_reacted, invalid_name, message_not_found)
        channel = self._channel(params)
        message = self._existing(channel, params.get("timestamp"))
        name = str(params.get("name") or "").strip(":")
        if not name:
            raise SlackApiError("invalid_name")
        users = message.reactions.setdefault(name, [])
        if self.bot_user_id in users:
            raise SlackApiError("already_reacted")
        users.append(self.bot_user_id)
        return {}

    async def _users_info(self, params: Params) -> Answer:
        # https://api.slack.com/methods/users.info
        user_id = params.get("user")
        info = self.users.get(str(user_id)) if user_id else None
        if info is None:
            raise SlackApiError("user_not_found")
        real_name = info.get("real_name", "")
        display_name = info.get("display_name", "")
        return {
            "user": {
                "id": user_id,
                "team_id": self.team_id,
                "name": info.get("name", display_name or str(user_id).lower()),
                "real_name": real_name,
                "is_bot": False,
                "profile": {"real_name": real_name, "display_name": display_name},
            }
        }

    async def _conversations_info(self, params: Params) -> Answer:
        # https://api.slack.com/methods/conversations.info
        channel = self._channel(params)
        return {
            "channel": {
                "id": channel,
                "name": self.channels[channel],
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": True,
            }
        }

    async def _conversations_replies(self, params: Params) -> Answer:
        # https://api.slack.com/methods/conversations.replies: `ts` is the parent's or any reply's; the answer
        # is the parent then its replies, oldest first. The parent of a thread carries thread_ts,
        # reply_count, reply_users and latest_reply; each reply carries thread_ts and parent_user_id.
        channel = self._channel(params)
        ts = params.get("ts")
        message = self.message(channel, str(ts)) if ts else None
        parent = self.message(channel, message.thread_ts or message.ts) if message is not None else None
        if parent is None:
            raise SlackApiError("thread_not_found")
        replies = [m for m in self._messages.get(channel, []) if m.thread_ts == parent.ts and m.ts != parent.ts]
        head = parent.to_api()
        if replies:
            users = list(dict.fromkeys(m.user for m in replies))
            head.update(
                thread_ts=parent.ts,
                reply_count=len(replies),
                reply_users=users,
                reply_users_count=len(users),
                latest_reply=replies[-1].ts,
            )
        items = [head, *({**m.to_api(), "parent_user_id": parent.user} for m in replies)]
        # Cursor pagination as in https://api.slack.com/apis/pagination; the cursor is an opaque offset.
        limit = int(params.get("limit") or 1000)
        start = int(str(params.get("cursor") or "0"))
        page, rest = items[start : start + limit], items[start + limit :]
        return {
            "messages": page,
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": str(start + limit) if rest else ""},
        }

    async def _files_get_upload_url(self, params: Params) -> Answer:
        # https://api.slack.com/methods/files.getUploadURLExternal: filename and length are required.
        filename, length = params.get("filename"), params.get("length")
        if not filename or length is None or not str(length).isdigit():
            raise SlackApiError("invalid_arguments")
        self._seq += 1
        file_id = f"F{self._seq:08d}"
        self.files[file_id] = UploadedFile(id=file_id, filename=str(filename), length=int(length))
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    async def _files_complete_upload(self, params: Params) -> Answer:
        # https://api.slack.com/methods/files.completeUploadExternal: files=[{id, title}], channel_id, thread_ts.
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackApiError("invalid_arguments")
        uploads: list[UploadedFile] = []
        for entry in entries:
            upload = self.files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if upload is None or upload.data is None:
                raise SlackApiError("file_not_found")
            upload.title = entry.get("title") or upload.filename
            uploads.append(upload)
        channel = self._channel(params, "channel_id") if params.get("channel_id") else None
        thread_ts = params.get("thread_ts") or None
        if thread_ts is not None:
            if channel is None:
                raise SlackApiError("invalid_arguments")
            self._existing(channel, thread_ts)
        shared = [{"id": u.id, "name": u.filename, "title": u.title, "size": len(u.data or b"")} for u in uploads]
        if channel is not None:
            for upload in uploads:
                upload.channel, upload.thread_ts = channel, thread_ts
            message = Message(
                channel=channel,
                ts=self._next_ts(),
                text=params.get("initial_comment") or "",
                thread_ts=thread_ts,
                user=self.bot_user_id,
                bot_id=self.bot_id,
                files=shared,
            )
            self._messages.setdefault(channel, []).append(message)
        return {"files": shared}

    async def _files_info(self, params: Params) -> Answer:
        # https://api.slack.com/methods/files.info
        file_id = str(params.get("file") or "")
        stored = self.files.get(file_id)
        if stored is None or stored.data is None:
            raise SlackApiError("file_not_found")
        return {"file": self.file_object(file_id)}

    async def _apps_connections_open(self, params: Params) -> Answer:
        # https://api.slack.com/methods/apps.connections.open: a fresh websocket URL per call, carrying a
        # ticket; the client connects to it straight away.
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        base = self.url.replace("http://", "ws://", 1)
        return {"url": f"{base}/link/?ticket={ticket}&app_id={self.app_id}"}

    # --- Slack-hosted files ------------------------------------------------------------------------

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """GET url_private[_download]. https://api.slack.com/types/file "Authentication": the bot token goes in
        an ``Authorization: Bearer`` header. Without it (or with another token) Slack does not answer 401/403:
        it redirects (302) to the workspace sign-in page, an HTML page with status 200 for a client that
        follows redirects. The fake does the same, so a bridge that forgets the header or skips the
        content-type check is caught."""
        team, _, file_id = request.match_info["file_key"].rpartition("-")
        name = request.match_info["name"]
        authorised = request.headers.get("Authorization", "") == f"Bearer {self.token}"
        call = Call(
            method="download",
            params={"file_id": file_id, "name": name, "authorised": authorised},
            headers=dict(request.headers),
        )
        self._calls.append(call)
        scripted = self._scripted("download", request)
        if scripted is not None:
            call.status = scripted.status
            return scripted
        stored = self.files.get(file_id)
        if stored is None or stored.data is None or team != self.team_id or name != stored.filename:
            call.status = 404
            return web.Response(status=404, text="file not found")
        if not authorised:
            call.status = 302
            return web.Response(status=302, headers={"Location": f"{self.url}/?redir={quote(request.path_qs)}"})
        call.answer = {"size": len(stored.data)}
        return web.Response(
            body=stored.data,
            headers={
                "Content-Type": stored.mimetype or "application/octet-stream",
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(stored.filename)}",
            },
        )

    async def _signin_page(self, request: web.Request) -> web.Response:
        """Where an unauthenticated file request lands: HTML, status 200."""
        return web.Response(
            text="<!DOCTYPE html><title>Sign in | Slack</title><h1>Sign in</h1>", content_type="text/html"
        )

    # --- Socket Mode -------------------------------------------------------------------------------

    @property
    def socket_connections(self) -> int:
        return len(self._sockets)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        """The websocket behind apps.connections.open's URL. On connect Slack sends a ``hello`` frame
        (https://api.slack.com/apis/socket-mode "Connecting"): num_connections, debug_info and
        connection_info.app_id. Pings are answered with pongs carrying the same data (aiohttp's autoping),
        which the SDK's client relies on to see the connection alive."""
        ticket = request.query.get("ticket", "")
        call = Call(method="socket.connect", params=dict(request.query), headers=dict(request.headers))
        self._calls.append(call)
        if ticket not in self._tickets:
            call.status = 401
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connects += 1
        hello = {
            "type": "hello",
            "num_connections": len(self._sockets),
            "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_json(hello)
        call.status, call.answer = 101, hello
        self.socket_connected.set()
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(frame.data)
                except ValueError:
                    data = {"unparsed": frame.data}
                self.socket_frames.append(data)
                pending = self._pending_acks.get(str(data.get("envelope_id"))) if isinstance(data, dict) else None
                if pending is not None and not pending.done():
                    pending.set_result(data)
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self.socket_connected.clear()
        return ws

    async def socket_send(
        self,
        payload_type: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        accepts_response_payload: bool | None = None,
        timeout: float = SOCKET_ACK_TIMEOUT,
    ) -> dict[str, Any]:
        """Send one envelope to the newest connection and return the client's ack frame
        (``{"envelope_id": ..., "payload"?: ...}``). Raises TimeoutError when no ack comes in ``timeout``;
        the fake does not redeliver by itself (Slack retries unacked events_api envelopes): send again with
        ``retry_attempt=1, retry_reason="timeout"`` to test that.

        Envelope fields per https://api.slack.com/apis/socket-mode "Payload": retry_attempt/retry_reason only
        on events_api; accepts_response_payload true for slash commands and for interactions that may answer
        in the ack (view_submission, suggestions), false otherwise, unless given."""
        if payload_type not in SOCKET_PAYLOAD_TYPES:
            raise ValueError(f"payload_type must be one of {sorted(SOCKET_PAYLOAD_TYPES)}")
        open_sockets = [ws for ws in self._sockets if not ws.closed]
        if not open_sockets:
            raise RuntimeError("no Socket Mode client is connected (await fake.socket_connected.wait() first)")
        if accepts_response_payload is None:
            accepts_response_payload = payload_type == "slash_commands" or (
                payload_type == "interactive" and payload.get("type") in _RESPONSE_PAYLOAD_INTERACTIONS
            )
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "type": payload_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if payload_type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        call = Call(method="socket.envelope", params=envelope, headers={})
        self._calls.append(call)
        acked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope["envelope_id"]] = acked
        try:
            await open_sockets[-1].send_json(envelope)
            async with asyncio.timeout(timeout):
                ack = await acked
        except TimeoutError:
            call.status = 504
            raise TimeoutError(f"no ack for {payload_type} envelope {envelope['envelope_id']} in {timeout}s") from None
        finally:
            self._pending_acks.pop(envelope["envelope_id"], None)
        call.answer = ack
        return ack

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` frame (https://api.slack.com/apis/socket-mode "Disconnect"); the SDK
        answers by opening a new connection, so ``socket_connects`` grows."""
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        for ws in list(self._sockets):
            if not ws.closed:
                await ws.send_json(frame)


@dataclass(frozen=True)
class _Malformed:
    """A JSON-string argument that did not parse; the method answers with its format error."""

    raw: str


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def validate_blocks(blocks: Any) -> list[str]:
    """Block Kit limits (see the constants above), as Slack-style "message [json-pointer:...]" errors."""
    if not isinstance(blocks, list):
        return ["expected an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        at = f"/blocks/{i}"
        if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCK_TYPES:
            kind = block.get("type") if isinstance(block, dict) else block
            errors.append(f"unsupported type: {kind!r} [json-pointer:{at}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > MAX_BLOCK_ID:
                errors.append(f"must be less than {MAX_BLOCK_ID + 1} characters [json-pointer:{at}/block_id]")
            if block_id in seen_ids:
                errors.append(f"duplicate block_id: {block_id} [json-pointer:{at}/block_id]")
            seen_ids.add(str(block_id))
        kind = block["type"]
        if kind == "section":
            errors += _check_section(block, at)
        elif kind == "header":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                errors.append(f"must be plain_text [json-pointer:{at}/text]")
            elif len(_text_of(text)) > MAX_HEADER_TEXT:
                errors.append(f"must be less than {MAX_HEADER_TEXT + 1} characters [json-pointer:{at}/text/text]")
        elif kind == "context":
            elements = block.get("elements") or []
            if not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
                errors.append(f"must have 1 to {MAX_CONTEXT_ELEMENTS} items [json-pointer:{at}/elements]")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not elements or len(elements) > MAX_ACTIONS_ELEMENTS:
                errors.append(f"must have 1 to {MAX_ACTIONS_ELEMENTS} items [json-pointer:{at}/elements]")
            for j, element in enumerate(elements):
                errors += _check_element(element, f"{at}/elements/{j}")
    return errors


def _check_section(block: dict[str, Any], at: str) -> list[str]:
    errors: list[str] = []
    text, fields = block.get("text"), block.get("fields")
    if text is None and not fields:
        errors.append(f"must provide text or fields [json-pointer:{at}]")
    if text is not None and len(_text_of(text)) > MAX_SECTION_TEXT:
        errors.append(f"must be less than {MAX_SECTION_TEXT + 1} characters [json-pointer:{at}/text/text]")
    if fields:
        if len(fields) > MAX_SECTION_FIELDS:
            errors.append(f"no more than {MAX_SECTION_FIELDS} items allowed [json-pointer:{at}/fields]")
        for j, item in enumerate(fields):
            if len(_text_of(item)) > MAX_SECTION_FIELD_TEXT:
                errors.append(
                    f"must be less than {MAX_SECTION_FIELD_TEXT + 1} characters [json-pointer:{at}/fields/{j}/text]"
                )
    accessory = block.get("accessory")
    if accessory is not None:
        errors += _check_element(accessory, f"{at}/accessory")
    return errors


def _check_element(element: Any, at: str) -> list[str]:
    """Interactive elements; only buttons are checked in detail (the bridge's only element)."""
    if not isinstance(element, dict) or element.get("type") != "button":
        return []
    errors: list[str] = []
    text = element.get("text")
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        errors.append(f"must be plain_text [json-pointer:{at}/text]")
    elif len(_text_of(text)) > MAX_BUTTON_TEXT:
        errors.append(f"must be less than {MAX_BUTTON_TEXT + 1} characters [json-pointer:{at}/text/text]")
    for key, limit in (("action_id", MAX_ACTION_ID), ("value", MAX_BUTTON_VALUE), ("url", MAX_BUTTON_URL)):
        if key in element and len(str(element[key])) > limit:
            errors.append(f"must be less than {limit + 1} characters [json-pointer:{at}/{key}]")
    return errors
