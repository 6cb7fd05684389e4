"""The web chat channel's outbound side: a delivered message is pushed to the customer's open sockets.

Every web chat message is stored before it is pushed, so a customer who is offline gets it on the
next connection through `after_seq` replay: delivery here never fails for lack of a listener.
Edits and deletions follow the same rule: the core updates the stored message before the outbox job
runs, so a replay already shows the final state and the frames pushed here only update open sockets.
"""

from __future__ import annotations

from typing import Any

from channels.webchat.frames import deleted_frame, edited_frame, message_frame
from channels.webchat.hub import WebchatHub
from gateway.channel import Capabilities
from gateway.models import ConversationRef, DeliveryError, OutboundMessage, SendResult

CHANNEL = "webchat"


class WebchatAdapter:
    name = CHANNEL
    label = "Web chat"

    # The widget shows a message of any length, and a stored message is replayed whole, so outbound
    # text is never split here (WEBCHAT_MAX_TEXT limits what customers send). Slack's own cap is 40,000.
    capabilities = Capabilities(max_text=100_000, attachments=True, edits=True, typing=True)

    def __init__(self, hub: WebchatHub) -> None:
        self.hub = hub

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult:
        op = message.extra.get("op")
        if op is not None:
            return self._revise(message, op)
        frame = message_frame(
            {
                "seq": message.seq,
                "author": message.author,
                "text": message.text,
                "created_at": message.created_at,
                "agent_name": message.agent_name,
                "attachments": [a.to_doc() for a in message.attachments],
            }
        )
        self.hub.broadcast(message.conversation_id, frame)
        return SendResult(provider_message_id=message.message_id)

    def _revise(self, message: OutboundMessage, op: Any) -> SendResult:
        """An agent's edit or deletion of a message already delivered, addressed by its seq."""
        target_seq = message.extra.get("target_seq")
        # bool is an int; a malformed job can never become valid, so retrying it would only block the lane.
        if not isinstance(target_seq, int) or isinstance(target_seq, bool) or target_seq < 1:
            raise DeliveryError(f"{op} needs a positive integer target_seq, got {target_seq!r}", permanent=True)
        # The job is created when the agent edits, so its created_at is the edit's time.
        if op == "edit":
            frame = edited_frame(target_seq, message.text, message.created_at)
        elif op == "delete":
            frame = deleted_frame(target_seq, message.created_at)
        else:
            raise DeliveryError(f"unknown op {op!r}", permanent=True)
        self.hub.broadcast(message.conversation_id, frame)
        # The web chat addresses messages by seq: the edited message keeps the id it was sent with.
        targets = message.extra.get("target_provider_message_ids") or []
        return SendResult(provider_message_id=str(targets[0] if targets else message.message_id))
