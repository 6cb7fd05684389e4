"""Fitting an outbound message to its channel before it is written to the outbox.

Adapters send what they are given; the core makes sure it fits. Text longer than the channel's
`max_text` (counted the way the provider counts) is split on paragraph, sentence or word boundaries
(gateway/text_split.py), and files on a channel that cannot carry them become links to the gateway's
file store. Each part becomes its own outbox job in the same lane, so the parts arrive in order.
"""

from __future__ import annotations

import dataclasses

from gateway.channel import Capabilities
from gateway.models import Attachment, OutboundMessage
from gateway.text_split import split_text, text_length


def file_links(attachments: tuple[Attachment, ...]) -> str:
    """Files as lines of `name: link` (links the gateway signs, so the customer can open them)."""
    return "\n".join(f"{a.name}: {a.url}" if a.url else a.name for a in attachments)


def shape(message: OutboundMessage, capabilities: Capabilities | None) -> list[OutboundMessage]:
    """The parts `message` is sent as. One part when it fits; files ride on the last part.

    Every part but a lone one carries `extra["part"] = {"index": i, "count": n}`.
    """
    if capabilities is None or message.extra.get("op"):
        return [message]  # an unknown channel fails at delivery; edits and deletes are shaped by their caller
    text, attachments = message.text, message.attachments
    if attachments and not capabilities.attachments:
        text = "\n\n".join(t for t in (text, file_links(attachments)) if t)
        attachments = ()
    # Whitespace alone longer than the limit splits into nothing: it goes as it is, and the provider decides.
    pieces = split_text(text, capabilities.max_text, capabilities.text_units) or [text]  # type: ignore[arg-type]
    if len(pieces) == 1:
        return [dataclasses.replace(message, text=pieces[0], attachments=attachments)]
    count = len(pieces)
    return [
        dataclasses.replace(
            message,
            text=piece,
            attachments=attachments if index == count - 1 else (),
            extra={**message.extra, "part": {"index": index, "count": count}},
        )
        for index, piece in enumerate(pieces)
    ]


def fits(text: str, capabilities: Capabilities) -> bool:
    """Whether `text` goes in one message on this channel (an edit in place must)."""
    return text_length(text, capabilities.text_units) <= capabilities.max_text  # type: ignore[arg-type]
