"""A local fake OpenAI-compatible server, so the real `openai` SDK can be tested without a network.

It serves `POST /v1/chat/completions` in the documented Chat Completions response shape and
`GET /v1/models`. Each completion request consumes one scripted outcome (a completion, an HTTP
error in OpenAI's error format, or a delay) and every request body is recorded, so tests can assert
what the client actually sent: the model name, the tools, the messages with their tool results.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass(frozen=True)
class ScriptedToolCall:
    """A function call the fake model makes; a `str` for arguments is sent verbatim (may be bad JSON)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Completion:
    """A 200 answer: content and/or tool calls, or `raw` to send an arbitrary (malformed) body."""

    content: str | None = None
    tool_calls: Sequence[ScriptedToolCall] = ()
    finish_reason: str | None = None  # default: "tool_calls" when there are tool calls, else "stop"
    raw: Any = None


@dataclass(frozen=True)
class HttpError:
    """An error status with OpenAI's `{"error": {...}}` body; `retry_after` sets the header."""

    status: int
    message: str = "The server had an error while processing your request."
    type: str = "server_error"
    code: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Delay:
    """Wait before answering (to provoke client timeouts), then answer with `then`."""

    seconds: float
    then: Completion | HttpError | None = None


Outcome = Completion | HttpError | Delay


def tool_call(name: str, arguments: Mapping[str, Any] | str | None = None, id: str | None = None) -> Completion:
    """A completion whose only content is one tool call: the common scripted step."""
    return Completion(tool_calls=[ScriptedToolCall(name, arguments if arguments is not None else {}, id)])


@dataclass
class RecordedRequest:
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class FakeOpenAI:
    """Start with `await FakeOpenAI(...).start()`, point a client at `fake.url + "/v1"`, then `close()`."""

    script: list[Outcome] = field(default_factory=list)  # consumed one per completion request
    # When set, requests must carry `Authorization: Bearer <api_key>` or get a 401.
    api_key: str | None = None
    models: Sequence[str] = ("gpt-4o-mini",)
    requests: list[RecordedRequest] = field(default_factory=list)  # completion requests, in order
    server: TestServer | None = None
    _next_id: int = 0
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        self._closing.set()  # wake delayed handlers so shutdown does not wait for them
        if self.server is not None:
            await self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def add(self, *outcomes: Outcome) -> None:
        self.script.extend(outcomes)

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    async def _chat_completions(self, request: web.Request) -> web.Response:
        raw = await request.text()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        self.requests.append(RecordedRequest(request.path, body, dict(request.headers)))
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        if not isinstance(body, dict):
            return error_response(HttpError(400, "We could not parse the JSON body.", "invalid_request_error"))
        if not self.script:
            return error_response(HttpError(500, "fake OpenAI server: script exhausted"))
        outcome = self.script.pop(0)
        if isinstance(outcome, Delay):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=outcome.seconds)
            outcome = outcome.then or Completion(content="(late answer)")
        if isinstance(outcome, HttpError):
            return error_response(outcome)
        return web.json_response(self._completion_body(outcome, str(body.get("model", ""))))

    async def _models(self, request: web.Request) -> web.Response:
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    def _check_auth(self, request: web.Request) -> web.Response | None:
        if self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return error_response(HttpError(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))

    def _completion_body(self, outcome: Completion, model: str) -> Any:
        if outcome.raw is not None:
            return outcome.raw
        self._next_id += 1
        message: dict[str, Any] = {"role": "assistant", "content": outcome.content, "refusal": None}
        if outcome.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{self._next_id}_{index}",
                    "type": "function",
                    "function": {
                        "name": call.name,
                        # The API sends arguments as a JSON *string*, not an object.
                        "arguments": call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments),
                    },
                }
                for index, call in enumerate(outcome.tool_calls)
            ]
        finish_reason = outcome.finish_reason or ("tool_calls" if outcome.tool_calls else "stop")
        return {
            "id": f"chatcmpl-fake{self._next_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }


def error_response(error: HttpError) -> web.Response:
    headers = {"Retry-After": f"{error.retry_after:g}"} if error.retry_after is not None else {}
    body = {"error": {"message": error.message, "type": error.type, "param": None, "code": error.code}}
    return web.json_response(body, status=error.status, headers=headers)
