"""Customer messages mirrored into a handoff thread, coalesced: what to post, as a pure decision.

One chat.postMessage per customer message let a single customer flood a thread (381 posts in one
thread, each a notification for the agents following it). The desk lane delivers a conversation's
jobs one after another, so while one post is on its way the next messages queue up behind it; the
job that runs next posts everything not yet in the thread, a line per message, in as few posts as
Slack's text limit allows, and the jobs of the messages it took along find nothing left to do.

A message is never cut with `…`: one too long for a post is split across posts, and the parts
already posted are remembered (`parts`), so a retry posts only what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_bridge.slack.escaping import split_customer_text

# chat.postMessage truncates `text` past 4,000 characters ("Truncating really long messages"); the
# escaped text counts, so posts stay well under.
POST_LIMIT = 3500


@dataclass(frozen=True)
class MirrorPost:
    """One thread post. `text` is empty when the messages it completes carry only files. Once it is
    posted, the texts of `done` are in the thread, and `partial` (message id, parts posted) records
    a long message that continues in the next post."""

    text: str
    done: tuple[Any, ...]
    partial: tuple[Any, int] | None = None


def mirror_state(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """What of a message is in the thread already: {text: bool, parts: int, files: bool, ts: str}."""
    return message.get("slack_mirror") or {}


def mirror_posts(messages: Sequence[Mapping[str, Any]], name: str, limit: int = POST_LIMIT) -> list[MirrorPost]:
    """The posts for `messages` (in order), each ≤ `limit` characters; `name` is already escaped.
    Texts marked posted in `slack_mirror.text` are skipped (their files may still be due)."""
    label = f":speech_balloon: *{name}:* "
    more = f":speech_balloon: *{name} (continued):* "
    posts: list[MirrorPost] = []
    lines: list[str] = []
    done: list[Any] = []

    def flush(partial: tuple[Any, int] | None = None) -> None:
        posts.append(MirrorPost("\n".join(lines), tuple(done), partial))
        lines.clear()
        done.clear()

    for message in messages:
        state = mirror_state(message)
        text = "" if state.get("text") else str(message.get("text") or "").strip()
        pieces = split_customer_text(text, max(limit - len(more), 1)) if text else []
        last = len(pieces) - 1
        for index in range(int(state.get("parts") or 0), len(pieces)):
            line = (label if index == 0 else more) + pieces[index]
            if lines and sum(map(len, lines)) + len(lines) + len(line) > limit:
                flush()
            lines.append(line)
            if index < last:
                flush(partial=(message["_id"], index + 1))
        done.append(message["_id"])
    if lines or done:
        flush()
    return posts
