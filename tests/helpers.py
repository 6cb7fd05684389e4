"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.models import Attachment, ConversationRef, Identity, InboundMessage


def inbound(
    text: str,
    key: str,
    chat: str = "chat-1",
    channel: str = "testchan",
    *,
    name: str = "Dana Customer",
    attachments: tuple[Attachment, ...] = (),
) -> InboundMessage:
    return InboundMessage(
        ref=ConversationRef(channel, chat),
        sender=Identity(channel, f"user-{chat}", name=name),
        text=text,
        idempotency_key=f"{channel}:{key}",
        provider_message_id=key,
        attachments=attachments,
    )


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, every: float = 0.02) -> None:
    """Wait until `check` holds; fail with a timeout otherwise (no fixed sleeps in tests)."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return
            await asyncio.sleep(every)
