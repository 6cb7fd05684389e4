"""The transcript posted in the handoff card's thread: what was said before a person arrived.

A pure decision (what to post, as thread messages or as a file) so the caller only makes the Slack calls:
`chat.postMessage(thread_ts=…, text=post, unfurl_links=False, unfurl_media=False)` for each post, or
`files_upload_v2(filename=…, content=…, thread_ts=…)` plus the summary message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent_bridge.slack.escaping import escape_mrkdwn, quote_customer_text

DEFAULT_NAMES = {"customer": "Customer", "ai": "AI", "agent": "Agent", "system": "System"}
# chat.postMessage: `text` over 4,000 characters is truncated by Slack (hard limit 40,000), so posts stay under.
POST_LIMIT = 4000


@dataclass(frozen=True)
class TranscriptFile:
    filename: str
    title: str
    content: str  # plain text for a file: not escaped, Slack does not parse file content


@dataclass(frozen=True)
class TranscriptPlan:
    """Either `posts` (escaped mrkdwn thread messages, in order) or a `file` plus one `posts` line about it."""

    posts: tuple[str, ...]
    file: TranscriptFile | None = None


def _clock(value: object) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%H:%M")
    return "--:--"


def _lines(messages: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> list[str]:
    labels = {**DEFAULT_NAMES, **names}
    lines = []
    for message in messages:
        author = str(message.get("author") or "system")
        text = str(message.get("text") or "").strip()
        line = f"[{_clock(message.get('created_at'))}] {labels.get(author, author)}: {text}"
        for attachment in message.get("attachments") or []:
            label = attachment.get("name") or "attachment"
            url = attachment.get("url")
            line += f"\n    attachment: {label}" + (f" ({url})" if url else "")
        lines.append(line)
    return lines


def transcript_text(messages: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> str:
    """The conversation as plain text lines, one per message ("[14:02] Customer: …"), attachments listed.
    Times are UTC; `names` overrides the author labels (e.g. {"customer": "Dana Reyes"})."""
    return "\n".join(_lines(messages, names))


def transcript_posts(
    messages: Sequence[Mapping[str, Any]],
    limit_chars: int = 3500,
    max_posts: int = 5,
    *,
    names: Mapping[str, str] | None = None,
    conversation_id: str | None = None,
) -> TranscriptPlan:
    """Short transcripts go in the thread as a few escaped messages, each ≤ `limit_chars`; one that would
    need more than `max_posts` (or has a single message too long for a post) goes as a file instead."""
    limit = min(limit_chars, POST_LIMIT)
    names = names or {}
    # Each line escaped on its own: escape_mrkdwn handles `>` at every line start, and entities stay whole.
    escaped = [escape_mrkdwn(line) for line in _lines(messages, names)]
    posts: list[str] = []
    current = ""
    fits = all(len(line) <= limit for line in escaped)
    for line in escaped if fits else []:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= limit:
            current = candidate
        else:
            posts.append(current)
            current = line
    if current:
        posts.append(current)
    if fits and len(posts) <= max_posts:
        return TranscriptPlan(posts=tuple(posts))

    conversation = conversation_id or str(next((m.get("conversation_id") for m in messages), None) or "conversation")
    conversation = re.sub(r"[^A-Za-z0-9_-]", "_", conversation)[:100]  # a safe file name, whatever the id
    filename = f"transcript-{conversation}.txt"
    times = [m.get("created_at") for m in messages if isinstance(m.get("created_at"), datetime)]
    span = f" from {_clock(times[0])} to {_clock(times[-1])} UTC" if times else ""
    summary = quote_customer_text(f"Transcript: {len(messages)} messages{span}, attached as {filename}", limit)
    return TranscriptPlan(
        posts=(summary,),
        file=TranscriptFile(
            filename=filename, title=f"Transcript {conversation}", content=transcript_text(messages, names)
        ),
    )
