"""A local fake messaging provider: accepts POST /messages, can be scripted to fail, records everything.

It stands in for any push-style provider (the shape Telegram, Twilio and Slack share: a JSON POST
that answers 200 with a message id, 429 with Retry-After when throttled, 5xx when down).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Outcome:
    status: int
    retry_after: float | None = None
    body: dict[str, Any] | None = None


@dataclass
class FakeProvider:
    script: list[Outcome] = field(default_factory=list)  # consumed one per request, then 200s
    received: list[dict[str, Any]] = field(default_factory=list)  # every request, failed or not
    delivered: list[dict[str, Any]] = field(default_factory=list)  # requests answered 200
    server: TestServer | None = None
    _next_id: int = 0

    async def start(self) -> FakeProvider:
        app = web.Application()
        app.router.add_post("/messages", self._messages)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/messages"))

    def fail_next(self, *outcomes: Outcome) -> None:
        self.script.extend(outcomes)

    async def _messages(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid JSON"}, status=400)
        entry = {"at": time.monotonic(), "payload": payload, "key": request.headers.get("Idempotency-Key")}
        self.received.append(entry)
        if self.script:
            outcome = self.script.pop(0)
            headers = {"Retry-After": str(outcome.retry_after)} if outcome.retry_after is not None else {}
            return web.json_response(outcome.body or {"ok": False}, status=outcome.status, headers=headers)
        self._next_id += 1
        self.delivered.append(entry)
        return web.json_response({"ok": True, "id": f"pm-{self._next_id}"})
