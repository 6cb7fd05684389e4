"""Live web chat connections in this process, by conversation.

Each connection has its own queue and writer, so a slow phone on a bad network never delays others.
While a connection replays history, live frames are held back and merged by seq afterwards: a frame
is never sent twice or out of order across the replay/live boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

from aiohttp import web

QUEUE_LIMIT = 1000


class Connection:
    def __init__(self, ws: web.WebSocketResponse, conversation_id: str, after_seq: int) -> None:
        self.ws = ws
        self.conversation_id = conversation_id
        self.last_seq = after_seq
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)
        self._held: list[dict[str, Any]] | None = []  # live frames held during replay

    def offer(self, frame: dict[str, Any]) -> None:
        if self._held is not None and frame.get("type") == "message":
            self._held.append(frame)
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            # The client stopped reading; closing makes it reconnect and replay with after_seq.
            self.close_soon()

    def replay(self, frames: list[dict[str, Any]]) -> None:
        held, self._held = self._held or [], None
        merged = {f["seq"]: f for f in (*frames, *held)}
        for seq in sorted(merged):
            self.offer(merged[seq])

    def close_soon(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)

    async def write_forever(self) -> None:
        while (frame := await self.queue.get()) is not None:
            if frame.get("type") == "message" and not frame.pop("_ack", False):
                if frame["seq"] <= self.last_seq:
                    continue  # already sent (replay overlap or a duplicate delivery)
                self.last_seq = frame["seq"]
            await self.ws.send_json(frame)
        await self.ws.close()


class WebchatHub:
    def __init__(self) -> None:
        self._by_conversation: dict[str, set[Connection]] = defaultdict(set)

    def add(self, connection: Connection) -> None:
        self._by_conversation[connection.conversation_id].add(connection)

    def remove(self, connection: Connection) -> None:
        conns = self._by_conversation.get(connection.conversation_id)
        if conns is not None:
            conns.discard(connection)
            if not conns:
                del self._by_conversation[connection.conversation_id]

    def broadcast(self, conversation_id: str, frame: dict[str, Any]) -> int:
        conns = self._by_conversation.get(conversation_id, ())
        for connection in conns:
            connection.offer(frame)
        return len(conns)

    def close_all(self) -> None:
        for conns in self._by_conversation.values():
            for connection in conns:
                connection.close_soon()

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._by_conversation.values())
