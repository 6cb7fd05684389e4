"""Web chat customers for the crash test: real WebSocket clients that follow docs/webchat.md.

Each customer behaves like the bundled widget: it keeps unacknowledged messages in an outbox and
re-sends them (same `client_msg_id`) on every reconnect, re-sends one left unacknowledged for 10 s on
a live socket, waits 4-6 s after `rate_limited`, reconnects with `after_seq` = the highest seq seen,
and on close code 4401 starts a new session and carries its outbox over. It records every frame it
received, so the checks can hold what the clients saw against what the database kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

CLOSE_BAD_TOKEN = 4401
RESEND_AFTER_SECONDS = 10.0  # the widget's RESEND_AFTER_MS
MAX_RESENDS_PER_CONNECTION = 5  # the widget's MAX_RESENDS_PER_CONNECTION
RECONNECT_BASE_SECONDS, RECONNECT_MAX_SECONDS = 0.2, 2.0


@dataclass(frozen=True, slots=True)
class Ack:
    """The customer's own message as the server echoed it: where the server said it was stored."""

    conversation_id: str
    seq: int
    created_at: str
    text: str


@dataclass(slots=True)
class SentMessage:
    client_msg_id: str
    text: str
    order: int  # position in this customer's send order
    sends: int = 0
    last_sent: float = 0.0
    acks: list[Ack] = field(default_factory=list)


@dataclass(slots=True)
class ConversationView:
    """One conversation as a client saw it: every message frame by seq, and seqs that changed meaning."""

    conversation_id: str
    token: str
    frames: dict[int, dict[str, Any]] = field(default_factory=dict)
    seq_conflicts: list[str] = field(default_factory=list)
    reset: bool = False  # the server closed with 4401: the conversation or token was no longer valid

    @property
    def highest_seq(self) -> int:
        return max(self.frames, default=0)


def same_message(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("author", "client_msg_id", "created_at", "text"))


class Customer:
    """One visitor: a session, a WebSocket kept open across crashes, and questions asked one by one."""

    def __init__(
        self,
        index: int,
        base_url: str,
        http: aiohttp.ClientSession,
        questions: tuple[str, ...],
        rng: random.Random,
        *,
        answer_wait: float,
        think: tuple[float, float],
    ) -> None:
        self.index = index
        self.base_url = base_url
        self.http = http
        self.questions = questions
        self.rng = rng
        self.answer_wait = answer_wait
        self.think = think
        self.conversations: list[ConversationView] = []
        self.sent: list[SentMessage] = []
        self.pending: dict[str, SentMessage] = {}  # the outbox, in send order
        self.by_id: dict[str, SentMessage] = {}
        self.errors: Counter[str] = Counter()
        self.connects = 0
        self.status = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._resends = 0  # stale re-sends on the current connection
        self._changed = asyncio.Event()
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def current(self) -> ConversationView | None:
        return self.conversations[-1] if self.conversations and not self.conversations[-1].reset else None

    def start(self, stop_sending: asyncio.Event, max_messages: int) -> asyncio.Task[None]:
        """Connect and keep connected; returns the task that talks (ends when sending is over)."""
        self._tasks.append(asyncio.create_task(self._stay_connected()))
        self._tasks.append(asyncio.create_task(self._resend_stale()))
        talker = asyncio.create_task(self._talk(stop_sending, max_messages))
        self._tasks.append(talker)
        return talker

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # talking

    async def _talk(self, stop_sending: asyncio.Event, max_messages: int) -> None:
        for n in range(max_messages):
            if stop_sending.is_set():
                return
            # Each customer walks the list from its own offset: never the same question twice in a row,
            # which triage would rightly read as the AI failing (and hand off).
            text = self.questions[(self.index * 3 + n) % len(self.questions)]
            message = SentMessage(f"chaos-{self.index}-{n}-{secrets.token_hex(4)}", text, n)
            self.sent.append(message)
            self.pending[message.client_msg_id] = message
            self.by_id[message.client_msg_id] = message
            await self._send(message)
            await self._wait_for_answer(message)
            await asyncio.sleep(self.rng.uniform(*self.think))

    async def _wait_for_answer(self, message: SentMessage) -> None:
        """Until the message is acknowledged and something newer than it arrives, or answer_wait passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.answer_wait
        while (remaining := deadline - loop.time()) > 0:
            view = self.current
            if message.acks and view is not None and view.highest_seq > message.acks[-1].seq:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def _send(self, message: SentMessage) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            return  # kept in the outbox; the next connection sends it
        frame = {"type": "message", "text": message.text, "client_msg_id": message.client_msg_id}
        try:
            await ws.send_str(json.dumps(frame))
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            return  # the connection loop notices the close and reconnects
        message.sends += 1
        message.last_sent = asyncio.get_running_loop().time()

    async def _flush_outbox(self) -> None:
        for message in list(self.pending.values()):
            await self._send(message)

    async def _resend_stale(self) -> None:
        # The widget's safety net for a frame lost on a half-dead connection.
        while True:
            await asyncio.sleep(1.0)
            ws = self._ws
            if ws is None or ws.closed or self._resends >= MAX_RESENDS_PER_CONNECTION:
                continue
            now = asyncio.get_running_loop().time()
            stale = [m for m in self.pending.values() if now - m.last_sent > RESEND_AFTER_SECONDS]
            if stale:
                self._resends += 1
                for message in stale:
                    await self._send(message)

    # connection

    async def _new_session(self) -> ConversationView:
        async with self.http.post(f"{self.base_url}/webchat/sessions", json={"name": f"Chaos {self.index}"}) as r:
            if r.status != 201:
                raise ConnectionError(f"session: HTTP {r.status}")
            session = await r.json()
        view = ConversationView(session["conversation_id"], session["token"])
        self.conversations.append(view)
        return view

    async def _stay_connected(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                view = self.current or await self._new_session()
                url = f"{self.base_url}/webchat/ws?token={view.token}&after_seq={view.highest_seq}"
                ws = await self.http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
            except (aiohttp.ClientError, ConnectionError, OSError, TimeoutError, ValueError):
                await self._backoff(attempt)
                attempt += 1
                continue
            self.connects += 1
            self._ws, self._resends = ws, 0
            try:
                await self._flush_outbox()
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    attempt = 0
                    self._on_frame(view, json.loads(msg.data))
            except (aiohttp.ClientError, ConnectionError, json.JSONDecodeError):
                pass
            finally:
                self._ws = None
            if ws.close_code == CLOSE_BAD_TOKEN:
                # The server no longer knows this token's conversation: start over, keep the outbox.
                view.reset = True
                self.errors["closed_4401"] += 1
            if not self._closed:
                await self._backoff(attempt)
                attempt += 1

    async def _backoff(self, attempt: int) -> None:
        cap = min(RECONNECT_MAX_SECONDS, RECONNECT_BASE_SECONDS * 2**attempt)
        await asyncio.sleep(cap / 2 + self.rng.random() * cap / 2)

    def _on_frame(self, view: ConversationView, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "status":
            self.status = str(frame.get("status"))
        elif kind == "error":
            code = str(frame.get("code"))
            self.errors[code] += 1
            if code == "rate_limited":
                asyncio.get_running_loop().call_later(
                    self.rng.uniform(4.0, 6.0), lambda: asyncio.ensure_future(self._flush_outbox())
                )
        elif kind == "message":
            seq = int(frame["seq"])
            known = view.frames.get(seq)
            if known is None:
                view.frames[seq] = frame
            elif not same_message(known, frame):
                view.seq_conflicts.append(
                    f"seq {seq}: first {known.get('author')} {known.get('client_msg_id')!r}, "
                    f"then {frame.get('author')} {frame.get('client_msg_id')!r}"
                )
            message = self.by_id.get(str(frame.get("client_msg_id")))
            if frame.get("author") == "customer" and message is not None:
                message.acks.append(Ack(view.conversation_id, seq, str(frame.get("created_at")), str(frame["text"])))
                self.pending.pop(message.client_msg_id, None)
        self._changed.set()
