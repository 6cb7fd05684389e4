"""The contract every AI responder fulfils, offline or model-backed.

The gateway hands a responder one customer turn with the recent history and gets back a reply it
stores and sends through the outbox; the responder never talks to a channel or the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Author = Literal["customer", "ai", "agent", "system"]


@dataclass(frozen=True, slots=True)
class HistoryItem:
    author: Author
    text: str


@dataclass(frozen=True, slots=True)
class ArticleRef:
    """A knowledge-base article the reply drew on, so agents and metrics can see the source."""

    article_id: str  # file stem, e.g. "shipping"
    title: str
    score: float


@dataclass(frozen=True, slots=True)
class Turn:
    conversation_id: str
    text: str
    history: Sequence[HistoryItem] = ()
    # Queue names from the routing file: the only places a model may hand a conversation to.
    queues: Sequence[str] = ()
    # Details already collected in this conversation (name, email, order_number, ...).
    details: Mapping[str, str] = field(default_factory=dict)
    # The triage's reading of this message ("delivery_period", 0.93): an article that declares the
    # intent answers it even when the customer's words are not the article's (agent_bridge/ai/offline.py).
    intent: str | None = None
    intent_confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class HandoffRequest:
    """The responder's own judgement that a person should take over (a model's tool call)."""

    reason: str
    queue: str | None = None
    summary: str = ""
    urgency: str = "normal"  # low | normal | high


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool the responder called, recorded so the agent and metrics see what the AI did."""

    name: str
    arguments: Mapping[str, Any]
    result: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    # False when the responder could not answer from the knowledge base: the text then says so
    # instead of guessing, and triage (issue 3) treats it as a low-confidence signal.
    answered: bool
    confidence: float
    articles: tuple[ArticleRef, ...] = field(default_factory=tuple)
    responder: str = ""
    handoff: HandoffRequest | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    tool_calls: tuple[ToolCall, ...] = field(default_factory=tuple)
    # Set when this reply came from a fallback because the primary responder failed.
    fallback_reason: str = ""


class Responder(Protocol):
    name: str
    # How many earlier messages the responder wants in `Turn.history`; 0 spares the gateway a read.
    history_turns: int

    async def respond(self, turn: Turn) -> Reply: ...
