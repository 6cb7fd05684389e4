"""The normalized shapes every channel and the core share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["ai", "waiting_for_agent", "with_agent", "resolved"]
STATUSES: tuple[Status, ...] = ("ai", "waiting_for_agent", "with_agent", "resolved")
# The statuses in which people, not the AI, own the conversation.
HUMAN_STATUSES: tuple[Status, ...] = ("waiting_for_agent", "with_agent")
Author = Literal["customer", "ai", "agent", "system"]


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Everything needed to reach a customer later, from any process: serializable by design."""

    channel: str
    chat_id: str
    account: str = "default"
    thread_key: str = ""

    @property
    def key(self) -> str:
        # One string per customer thread; the unique index on conversations.ref_key hangs on it.
        return "|".join((self.channel, self.account, self.chat_id, self.thread_key))

    def to_doc(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ConversationRef:
        return cls(
            channel=doc["channel"],
            chat_id=doc["chat_id"],
            account=doc.get("account", "default"),
            thread_key=doc.get("thread_key", ""),
        )


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str
    url: str = ""
    size: int = 0
    # Set when the bytes are in the gateway's own file store (gateway/files.py); empty for a provider URL.
    file_id: str = ""

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Identity:
    """A customer's address on one channel, e.g. ("webchat", visitor id) or ("telegram", user id)."""

    channel: str
    address: str
    name: str = ""
    email: str = ""

    @property
    def key(self) -> str:
        return f"{self.channel}|{self.address}"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One customer message as a channel adapter parsed it."""

    ref: ConversationRef
    sender: Identity
    text: str
    # Stable per provider message, so a provider's retry maps to the same key (e.g. Telegram update_id).
    idempotency_key: str
    provider_message_id: str = ""
    attachments: tuple[Attachment, ...] = ()
    client_msg_id: str = ""
    received_at: datetime | None = None
    # The provider's id of an earlier message this one replies to (Telegram's reply_to_message).
    reply_to_provider_id: str = ""
    # What else the channel records about where the message came from (an email's subject, sender and
    # stored original), kept in the message's `origin` beside the channel and provider id.
    origin: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What the outbox hands an adapter's `send`: already stored, already numbered."""

    conversation_id: str
    seq: int
    author: Author
    text: str
    created_at: datetime
    attachments: tuple[Attachment, ...] = ()
    agent_name: str = ""
    message_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str = ""


class DeliveryError(Exception):
    """A typed send failure. `permanent` ends retries at once; `retry_after` is the provider's hint;
    `unreachable` says the customer cannot be reached on this channel at all (they blocked the bot,
    opted out): the conversation is marked so and the agents are told."""

    def __init__(
        self, reason: str, *, permanent: bool = False, retry_after: float | None = None, unreachable: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent or unreachable
        self.retry_after = retry_after
        self.unreachable = unreachable
