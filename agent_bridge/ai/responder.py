"""The contract every AI responder fulfils, offline or model-backed.

The gateway hands a responder one customer turn with the recent history and gets back a reply it
stores and sends through the outbox; the responder never talks to a channel or the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

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


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    # False when the responder could not answer from the knowledge base: the text then says so
    # instead of guessing, and triage (issue 3) treats it as a low-confidence signal.
    answered: bool
    confidence: float
    articles: tuple[ArticleRef, ...] = field(default_factory=tuple)
    responder: str = ""


class Responder(Protocol):
    name: str

    async def respond(self, turn: Turn) -> Reply: ...
