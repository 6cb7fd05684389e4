"""The channel adapter contract. Adapters live in `channels/`; the core only sees this protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.models import ConversationRef, OutboundMessage, SendResult


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_text: int
    attachments: bool = False
    edits: bool = False
    typing: bool = False


class ChannelAdapter(Protocol):
    """Each adapter verifies and parses its own webhooks (its HTTP routes) and sends through `send`.

    `send` returns the provider's message id or raises `DeliveryError`; the outbox owns retries.
    """

    name: str
    capabilities: Capabilities

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult: ...
