"""Jobs for the agent desk (Slack today): what the people side must be shown, as outbox jobs.

The core never calls Slack. It writes a desk job next to the change that caused it (in the same batch
where it can), and the outbox delivers it to the desk's adapter like any other message: retried,
ordered, never lost when Slack is down. Desk jobs of a conversation share one lane, `<desk>:<id>`,
so the handoff card always precedes the messages mirrored into its thread.

Kinds (`message.extra["kind"]`), each rendered by the desk adapter:
  handoff           post the card (or refresh it on a second handoff) and the transcript in its thread
  customer_message  mirror one customer message (text and files) into the thread
  card              re-render the card from the conversation's current state
  event             a line in the thread about something that happened (`data["event"]`:
                    claimed, resolved, returned, csat, sla_overdue, file_refused, note_kept,
                    unreachable, customer_edited, delivery_failed, channel_notice)
  receipt           delivery status of an agent's reply (`data`: desk_ref, ok, reason)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from gateway.models import Attachment, ConversationRef, OutboundMessage
from gateway.outbox import OutboxWorker
from gateway.store import utcnow

DeskKind = Literal["handoff", "customer_message", "card", "event", "receipt"]


class DeskJobs:
    """Makes desk jobs; `None` everywhere when no desk is configured, so callers need no branches."""

    def __init__(self, outbox: OutboxWorker, desk: str | None) -> None:
        self.outbox = outbox
        self.desk = desk

    @property
    def enabled(self) -> bool:
        return self.desk is not None

    def job(
        self,
        conversation_id: Any,
        kind: DeskKind,
        *,
        position: int,
        key: str,
        text: str = "",
        attachments: Sequence[Attachment] = (),
        data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        if self.desk is None:
            return None
        cid = str(conversation_id)
        message = OutboundMessage(
            conversation_id=cid,
            seq=position,
            author="system",
            text=text,
            created_at=utcnow(),
            attachments=tuple(attachments),
            extra={"kind": kind, **(data or {})},
        )
        return self.outbox.new_job(
            ConversationRef(channel=self.desk, chat_id=cid),
            message,
            # The key always names the conversation: callers' keys (a seq, an action) repeat across them.
            idempotency_key=f"{self.desk}:{kind}:{cid}:{key}",
            lane=f"{self.desk}:{cid}",
        )

    def customer_message(self, conversation: Mapping[str, Any], message: Mapping[str, Any]) -> dict[str, Any] | None:
        """Mirror a customer message into the thread (only while people own the conversation)."""
        return self.job(
            conversation["_id"],
            "customer_message",
            position=int(message["seq"]),
            key=str(message["_id"]),
            data={"message_id": str(message["_id"])},
        )

    def event(self, conversation_id: Any, event: str, *, position: int, key: str, **data: Any) -> dict[str, Any] | None:
        return self.job(conversation_id, "event", position=position, key=key, data={"event": event, **data})

    def card(self, conversation_id: Any, *, position: int, key: str) -> dict[str, Any] | None:
        return self.job(conversation_id, "card", position=position, key=key)


def present(*jobs: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [j for j in jobs if j is not None]
