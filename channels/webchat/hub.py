"""Live web chat connections in this process, by conversation.

Each connection has its own queue and writer, so a slow phone on a bad network never delays others.
While a connection replays history, live frames are held back and merged by seq afterwards: a frame
is never sent twice on one socket, and never out of order across the replay/live boundary. A frame
numbered below one already sent (a late reply) is still sent; the client places it by its seq.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from aiohttp import web

QUEUE_LIMIT = 1000
_closing: set[asyncio.Task[Any]] = set()  # close tasks, referenced until done so they are not collected
# The socket closed to make room for a newer one on the same conversation (docs/webchat.md).
CLOSE_REPLACED = 4409


class Connection:
    def __init__(self, ws: web.WebSocketResponse, conversation_id: str, after_seq: int) -> None:
        self.ws = ws
        self.conversation_id = conversation_id
        self.after_seq = after_seq
        # Seqs already sent on this socket. Not a high-water mark: a reply's number is taken when the
        # customer's message is numbered, so a second quick message's echo (n+2) can go out before
        # reply n+1 is written, and reply n+1 must still be sent when it comes.
        self.sent: set[int] = set()
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)
        self._held: list[dict[str, Any]] | None = []  # live frames held during replay
        self.close_code = 1000
        self.close_message = b""
        self._closed = False

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

    def close_soon(self, code: int = 1000, message: bytes = b"") -> None:
        if code != 1000:
            self.close_code, self.close_message = code, message
        if self._closed:
            return
        self._closed = True
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            # A client that stopped reading: the writer never gets to the end of its queue, so close now.
            task = asyncio.get_running_loop().create_task(
                self.ws.close(code=self.close_code, message=self.close_message)
            )
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    async def write_forever(self) -> None:
        while (frame := await self.queue.get()) is not None:
            if frame.get("type") == "message" and not frame.pop("_ack", False):
                if frame["seq"] in self.sent:
                    continue  # already sent (replay overlap or a duplicate delivery)
                self.sent.add(frame["seq"])
            await self.ws.send_json(frame)
        await self.ws.close(code=self.close_code, message=self.close_message)


class WebchatHub:
    """Open connections by conversation, oldest first, at most `max_per_conversation` each (in this process)."""

    def __init__(self, max_per_conversation: int = 10) -> None:
        self.max_per_conversation = max_per_conversation
        # A dict as an ordered set: the oldest connection is the first key.
        self._by_conversation: dict[str, dict[Connection, None]] = defaultdict(dict)

    def add(self, connection: Connection) -> list[Connection]:
        """Registers `connection`; returns the oldest ones it replaced, already told to close with 4409."""
        conns = self._by_conversation[connection.conversation_id]
        conns[connection] = None
        replaced = list(conns)[: max(0, len(conns) - self.max_per_conversation)]
        for old in replaced:
            del conns[old]
            old.close_soon(CLOSE_REPLACED, b"replaced by a newer connection")
        return replaced

    def remove(self, connection: Connection) -> None:
        conns = self._by_conversation.get(connection.conversation_id)
        if conns is not None:
            conns.pop(connection, None)
            if not conns:
                del self._by_conversation[connection.conversation_id]

    def has(self, conversation_id: str) -> bool:
        return bool(self._by_conversation.get(conversation_id))

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
