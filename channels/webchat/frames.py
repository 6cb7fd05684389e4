"""Server → client frames of the web chat protocol (docs/webchat.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_frame(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the client sees it, in its final state: replay shows edits and deletions."""
    deleted_at = message.get("deleted_at")
    frame: dict[str, Any] = {
        "type": "message",
        "seq": message["seq"],
        "author": message["author"],
        # The core blanks a deleted message's text; blanking here too keeps the original out of replay
        # even if a document was marked deleted some other way.
        "text": "" if deleted_at else message["text"],
        "created_at": iso(message["created_at"]),
    }
    if message.get("client_msg_id"):
        frame["client_msg_id"] = message["client_msg_id"]
    if message.get("agent_name"):
        frame["agent_name"] = message["agent_name"]
    if deleted_at:
        frame["deleted"] = True
        frame["deleted_at"] = iso(deleted_at)
        return frame  # a deleted message keeps no attachments and no "edited" mark
    if message.get("edited_at"):
        frame["edited"] = True
        frame["edited_at"] = iso(message["edited_at"])
    if message.get("attachments"):
        frame["attachments"] = [
            {"name": a["name"], "url": a.get("url", ""), "content_type": a.get("content_type", "")}
            for a in message["attachments"]
        ]
    return frame


def edited_frame(seq: int, text: str, edited_at: datetime) -> dict[str, Any]:
    """An already delivered message (by its `seq`) now reads `text`."""
    return {"type": "message_edited", "seq": seq, "text": text, "edited_at": iso(edited_at)}


def deleted_frame(seq: int, deleted_at: datetime) -> dict[str, Any]:
    """An already delivered message (by its `seq`) was withdrawn: the client drops its text and files."""
    return {"type": "message_deleted", "seq": seq, "deleted_at": iso(deleted_at)}


def revision_frame(message: dict[str, Any]) -> dict[str, Any] | None:
    """The edit or delete frame that brings a client holding an older copy of `message` up to date."""
    if message.get("deleted_at"):
        return deleted_frame(message["seq"], message["deleted_at"])
    if message.get("edited_at"):
        return edited_frame(message["seq"], message["text"], message["edited_at"])
    return None


def error_frame(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}
