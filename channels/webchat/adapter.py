"""The web chat channel's outbound side: a delivered message is pushed to the customer's open sockets.

Every web chat message is stored before it is pushed, so a customer who is offline gets it on the
next connection through `after_seq` replay: delivery here never fails for lack of a listener.
"""

from __future__ import annotations

from channels.webchat.frames import message_frame
from channels.webchat.hub import WebchatHub
from gateway.channel import Capabilities
from gateway.models import ConversationRef, OutboundMessage, SendResult

CHANNEL = "webchat"


class WebchatAdapter:
    name = CHANNEL

    def __init__(self, hub: WebchatHub, max_text: int = 4000) -> None:
        self.hub = hub
        self.capabilities = Capabilities(max_text=max_text, attachments=False, edits=False, typing=True)

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult:
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
