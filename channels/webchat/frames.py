"""Server → client frames of the web chat protocol (docs/webchat.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_frame(message: dict[str, Any]) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "message",
        "seq": message["seq"],
        "author": message["author"],
        "text": message["text"],
        "created_at": iso(message["created_at"]),
    }
    if message.get("client_msg_id"):
        frame["client_msg_id"] = message["client_msg_id"]
    if message.get("agent_name"):
        frame["agent_name"] = message["agent_name"]
    if message.get("attachments"):
        frame["attachments"] = [
            {"name": a["name"], "url": a.get("url", ""), "content_type": a.get("content_type", "")}
            for a in message["attachments"]
        ]
    return frame


def error_frame(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}
