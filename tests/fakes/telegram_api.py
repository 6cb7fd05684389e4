"""A local fake of the Telegram Bot API, so channel tests drive the real python-telegram-bot ``Bot`` offline.

Point the bot at it: ``Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url)``.
It follows https://core.telegram.org/bots/api "Making requests": ``/bot<token>/<method>`` by GET or POST,
parameters as query string, urlencoded form, multipart form (uploads) or JSON; method names are
case-insensitive; answers are ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": "...", "parameters"?: ResponseParameters}`` with ``error_code`` as the HTTP status.
Files are served from ``/file/bot<token>/<file_path>`` ("getFile"). Every call is recorded (``calls``);
failures can be scripted per method (``fail_next``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

Params = dict[str, Any]

# sendMessage "text: 1-4096 characters after entities parsing", counted in UTF-16 code units
# (https://core.telegram.org/api/entities "Entity length"): an emoji outside the BMP counts twice.
MAX_TEXT = 4096
MAX_CAPTION = 1024  # sendPhoto / sendDocument "caption: 0-1024 characters after entities parsing"
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile: "bots can download files of up to 20MB in size"
MAX_UPLOAD = 50 * 1024 * 1024  # "Sending files": up to 50 MB by multipart/form-data

# Clients send non-string values JSON-serialised inside form fields (PTB's RequestParameter.json_value):
# objects/arrays (reply_markup, allowed_updates), numbers, booleans. Numbers are decoded only for integer
# parameters, and free text never, so a text or secret "123" or "[x]" stays a string.
_INT_PARAMS = frozenset({"chat_id", "message_id", "offset", "limit", "timeout", "max_connections", "cache_time"})
_FREE_TEXT = frozenset({"text", "caption", "secret_token", "url", "file_id", "callback_query_id"})


class UploadedFile(NamedTuple):
    """One multipart file part as the client sent it."""

    filename: str | None
    content_type: str
    data: bytes


class Call(NamedTuple):
    """One recorded request: canonical method name, decoded params, uploaded files by field name."""

    method: str
    params: Params
    files: dict[str, UploadedFile]


class _Stored(NamedTuple):
    data: bytes
    size: int
    path: str


class TelegramApiError(Exception):
    """Raised in handlers (or scripted) to answer with a Bot API error object."""

    def __init__(self, code: int, description: str, **parameters: int) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters

    def response(self) -> web.Response:
        body: Params = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:  # ResponseParameters: retry_after / migrate_to_chat_id
            body["parameters"] = self.parameters
        return web.json_response(body, status=self.code)


def _bad(description: str) -> TelegramApiError:
    return TelegramApiError(400, f"Bad Request: {description}")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode(key: str, value: str) -> Any:
    if key in _FREE_TEXT:
        return value
    if value.startswith(("{", "[")):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    if key in _INT_PARAMS and value.lstrip("-").isdigit():
        return int(value)
    return {"true": True, "false": False}.get(value, value)


class FakeTelegramApi:
    """The fake server: ``await start()``, point a Bot at ``base_url``/``base_file_url``, read ``calls``."""

    def __init__(self, token: str = "123456789:TEST-fake-token", *, username: str = "support_test_bot") -> None:
        self.token = token
        bot_id = int(token.split(":")[0])  # a token is "<bot id>:<secret>"
        self.me: Params = {"id": bot_id, "is_bot": True, "first_name": "Support", "username": username}
        self.calls: list[Call] = []
        self.webhook: Params | None = None  # as set: url, secret_token, allowed_updates, drop_pending_updates
        self.server: TestServer | None = None
        self._updates: list[Params] = []  # unconfirmed updates, ascending update_id
        self._next_update_id = 1
        self._wake = asyncio.Event()  # set and replaced on news; long polls wait on the current one
        self._poll_generation = 0
        self._closing = False
        self._blocked: set[int] = set()
        self._script: dict[str, list[TelegramApiError]] = {}
        self._messages: dict[int, dict[int, Params]] = {}  # chat → message_id → Message, in sending order
        self._last_message_id: dict[int, int] = {}
        self._files: dict[str, _Stored] = {}
        self._paths: dict[str, str] = {}  # file_path → file_id
        # The Bot API method sendMessage is served by _method_send_message, and so on (names are case-insensitive).
        self._handlers: dict[str, tuple[str, Callable[[Params], Awaitable[Any]]]] = {}
        for attr in dir(self):
            if attr.startswith("_method_"):
                first, *rest = attr.removeprefix("_method_").split("_")
                name = first + "".join(part.title() for part in rest)
                self._handlers[name.lower()] = (name, getattr(self, attr))

    async def start(self) -> FakeTelegramApi:
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)  # aiohttp's default cap is 1 MB
        app.router.add_get("/bot{token}/{method}", self._api)
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._download)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        self._closing = True  # pending long polls answer at once rather than hold the server open
        self._notify()
        if self.server is not None:
            await self.server.close()

    @property
    def base_url(self) -> str:
        assert self.server is not None, "start() first"
        return str(self.server.make_url("/bot"))

    @property
    def base_file_url(self) -> str:
        assert self.server is not None, "start() first"
        return str(self.server.make_url("/file/bot"))

    # --- test controls -----------------------------------------------------------------------------

    def add_update(self, update: Params) -> int:
        """Queue an update for getUpdates (the next update_id if it has none); wakes long polls."""
        update = self._stamp(update)
        self._updates.append(update)
        self._notify()
        return update["update_id"]

    def add_file(self, file_id: str, data: bytes, file_size: int | None = None) -> str:
        """Make ``file_id`` known to getFile and downloadable; ``file_size`` may claim a size (e.g. > 20 MB)."""
        path = f"documents/file_{len(self._paths)}"  # a fresh path per call, even for a re-added id
        self._files[file_id] = _Stored(data, len(data) if file_size is None else file_size, path)
        self._paths[path] = file_id
        return path

    def fail_next(
        self,
        method: str,
        error_code: int,
        description: str,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` answer this error instead of being handled."""
        extra = {"retry_after": retry_after, "migrate_to_chat_id": migrate_to_chat_id}
        error = TelegramApiError(error_code, description, **{k: v for k, v in extra.items() if v is not None})
        self._script.setdefault(method.lower(), []).extend([error] * times)

    def block(self, chat_id: int) -> None:
        """The user blocked the bot: sends and edits to this chat answer 403."""
        self._blocked.add(int(chat_id))

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method.lower() == method.lower()]

    def sent_messages(self, chat_id: int) -> list[Params]:
        """The chat as the user sees it now: edited texts, deleted messages gone."""
        return [dict(message) for message in self._messages.get(int(chat_id), {}).values()]

    async def deliver_webhook(self, update: Params, *, secret: str | None = None) -> int:
        """POST ``update`` to the setWebhook URL as Telegram does (setWebhook: the secret goes in the
        X-Telegram-Bot-Api-Secret-Token header) and return the HTTP status. ``secret=None`` sends the set
        secret, ``""`` omits the header. (Telegram insists on HTTPS; the fake allows http.)"""
        if self.webhook is None:
            raise RuntimeError("no webhook set: call setWebhook first")
        secret = self.webhook["secret_token"] if secret is None else secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.webhook["url"], json=self._stamp(update), headers=headers) as response,
        ):
            return response.status

    # --- HTTP plumbing -----------------------------------------------------------------------------

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def _stamp(self, update: Params) -> Params:
        update = {"update_id": self._next_update_id, **update}
        self._next_update_id = max(self._next_update_id, int(update["update_id"])) + 1
        return update

    async def _api(self, request: web.Request) -> web.Response:
        method, handler = self._handlers.get(request.match_info["method"].lower(), (request.match_info["method"], None))
        params: Params = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.content_type == "application/json":
            body = await request.json()
            params.update(body if isinstance(body, dict) else {})
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[key] = UploadedFile(value.filename, value.content_type, value.file.read())
                else:
                    params[key] = value
        params = {k: _decode(k, v) if isinstance(v, str) else v for k, v in params.items()}
        self.calls.append(Call(method, params, files))
        try:
            if request.match_info["token"] != self.token:
                raise TelegramApiError(401, "Unauthorized")
            if handler is None:
                raise TelegramApiError(404, "Not Found")
            if scripted := self._script.get(method.lower()):
                raise scripted.pop(0)
            return web.json_response({"ok": True, "result": await handler({**params, **files})})
        except TelegramApiError as exc:
            return exc.response()

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return TelegramApiError(401, "Unauthorized").response()
        if (file_id := self._paths.get(request.match_info["file_path"])) is None:
            return TelegramApiError(404, "Not Found").response()
        return web.Response(body=self._files[file_id].data, content_type="application/octet-stream")

    def _chat(self, params: Params, *, writing: bool = True) -> int:
        """The numeric chat id (the fake knows no @channel usernames); 403 if the user blocked the bot."""
        chat = params.get("chat_id")
        if not isinstance(chat, int):
            raise _bad("chat not found" if chat else "chat_id is empty")
        if writing and chat in self._blocked:
            raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _store(self, chat: int, params: Params, **content: Any) -> Params:
        """A Message (https://core.telegram.org/bots/api#message); message_id counts up per chat."""
        if (caption := params.get("caption")) and _utf16_len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        self._last_message_id[chat] = message_id = self._last_message_id.get(chat, 0) + 1
        kind = "private" if chat > 0 else "supergroup" if str(chat).startswith("-100") else "group"
        message = {"message_id": message_id, "from": self.me, "date": int(time.time()), **content}
        message["chat"] = {"id": chat, "type": kind}
        if caption:
            message["caption"] = caption
        if params.get("reply_markup") is not None:
            message["reply_markup"] = params["reply_markup"]
        self._messages.setdefault(chat, {})[message_id] = message
        return message

    def _input_file(self, field: str, params: Params) -> tuple[str, _Stored]:
        """An uploaded file (kept, so getFile and the download route serve it back) or a known file_id."""
        value = params.get(field)
        if isinstance(value, UploadedFile):
            file_id = f"F{len(self._paths) + 1:06d}-{field}"
            self.add_file(file_id, value.data)
        elif not value:
            raise _bad(f"there is no {field} in the request")
        elif (file_id := str(value)) not in self._files:
            raise _bad("wrong file identifier/HTTP URL specified")
        return file_id, self._files[file_id]

    # --- Bot API methods ---------------------------------------------------------------------------

    async def _method_get_me(self, params: Params) -> Params:
        return {**self.me, "can_join_groups": True, "can_read_all_group_messages": False}

    async def _method_set_webhook(self, params: Params) -> bool:
        # "Use an empty string to remove webhook integration"; allowed_updates "If not specified, the
        # previous setting will be used."
        previous = (self.webhook or {}).get("allowed_updates")
        await self._method_delete_webhook(params)
        if params.get("url"):
            self.webhook = {key: params.get(key) for key in ("url", "secret_token", "drop_pending_updates")}
            self.webhook["allowed_updates"] = params.get("allowed_updates", previous)
        return True

    async def _method_delete_webhook(self, params: Params) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = None
        return True

    async def _method_get_webhook_info(self, params: Params) -> Params:
        hook = self.webhook or {"url": "", "allowed_updates": None}
        info = {"url": hook["url"], "has_custom_certificate": False, "pending_update_count": len(self._updates)}
        return info | ({"allowed_updates": hook["allowed_updates"]} if hook["allowed_updates"] is not None else {})

    async def _method_get_updates(self, params: Params) -> list[Params]:
        if self.webhook is not None:
            raise TelegramApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        # offset: "An update is considered confirmed as soon as getUpdates is called with an offset higher
        # than its update_id"; "a negative offset can be specified to retrieve updates starting from
        # -offset update from the end of the updates queue. All previous updates will be forgotten."
        offset = int(params.get("offset") or 0)
        self._updates = self._updates[offset:] if offset < 0 else [u for u in self._updates if u["update_id"] >= offset]
        limit = min(max(int(params.get("limit") or 100), 1), 100)  # "Values between 1-100 are accepted."
        deadline = time.monotonic() + float(params.get("timeout") or 0)  # "Defaults to 0, i.e. short polling"
        # A newer getUpdates ends a pending older one with 409, as when two bot instances poll.
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        while generation == self._poll_generation:
            batch = [u for u in self._updates if u["update_id"] >= offset][:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closing:
                return batch
            wake = self._wake
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await wake.wait()
        msg = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
        raise TelegramApiError(409, msg)

    async def _method_send_message(self, params: Params) -> Params:
        chat, text = self._chat(params), str(params.get("text") or "")
        if not text:
            raise _bad("message text is empty")
        if _utf16_len(text) > MAX_TEXT:
            raise _bad("message is too long")
        return self._store(chat, params, text=text)

    async def _method_send_photo(self, params: Params) -> Params:
        # Telegram answers several PhotoSize renditions; the fake decodes no image, so it gives one, 0×0.
        chat = self._chat(params)
        file_id, stored = self._input_file("photo", params)
        size = {"file_id": file_id, "file_unique_id": f"U{file_id}", "width": 0, "height": 0, "file_size": stored.size}
        return self._store(chat, params, photo=[size])

    async def _method_send_document(self, params: Params) -> Params:
        chat = self._chat(params)
        file_id, stored = self._input_file("document", params)
        document: Params = {"file_id": file_id, "file_unique_id": f"U{file_id}", "file_size": stored.size}
        if isinstance(upload := params["document"], UploadedFile):
            document |= {"file_name": upload.filename, "mime_type": upload.content_type}
        return self._store(chat, params, document=document)

    async def _method_send_chat_action(self, params: Params) -> bool:
        self._chat(params)
        return True

    async def _method_edit_message_text(self, params: Params) -> Params:
        chat, text, markup = self._chat(params), str(params.get("text") or ""), params.get("reply_markup")
        message = self._messages.get(chat, {}).get(int(params.get("message_id") or 0))
        if message is None:
            raise _bad("message to edit not found")
        if not text:
            raise _bad("text must be non-empty")
        if _utf16_len(text) > MAX_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        if text == message.get("text") and markup == message.get("reply_markup"):
            raise _bad(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        message.update(text=text, edit_date=int(time.time()))
        message.pop("reply_markup", None)  # an edit without reply_markup removes the inline keyboard
        if markup is not None:
            message["reply_markup"] = markup
        return dict(message)

    async def _method_delete_message(self, params: Params) -> bool:
        chat = self._chat(params, writing=False)
        if self._messages.get(chat, {}).pop(int(params.get("message_id") or 0), None) is None:
            raise _bad("message to delete not found")
        return True

    async def _method_answer_callback_query(self, params: Params) -> bool:
        return True

    async def _method_get_file(self, params: Params) -> Params:
        file_id = str(params.get("file_id") or "")
        if (stored := self._files.get(file_id)) is None:
            raise _bad("invalid file_id")
        if stored.size > MAX_DOWNLOAD:
            raise _bad("file is too big")
        return {"file_id": file_id, "file_unique_id": f"U{file_id}", "file_size": stored.size, "file_path": stored.path}
