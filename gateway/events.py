"""An in-process event bus: the core announces what happened, channels and bridges react.

Handlers are plain functions that must not block (they enqueue work); the core never waits on them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.models import ConversationRef

log = logging.getLogger("gateway.events")


@dataclass(frozen=True, slots=True)
class MessageStored:
    conversation: dict[str, Any]
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Typing:
    conversation_id: str
    author: str
    active: bool
    # Where the customer is, so a channel with a typing indicator (Telegram's sendChatAction) can show it.
    ref: ConversationRef | None = None


@dataclass(frozen=True, slots=True)
class StatusChanged:
    conversation_id: str
    status: str


Event = MessageStored | Typing | StatusChanged
Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def publish(self, event: Event) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:  # one broken subscriber must not break ingest for the others
                log.exception("event_handler_failed", extra={"event_type": type(event).__name__})
