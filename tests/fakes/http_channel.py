"""A channel adapter that delivers over HTTP to `FakeProvider`, mapping statuses as real adapters do.

429/5xx are transient (with the provider's Retry-After); other 4xx are permanent; network errors are
transient. The outbox, not the adapter, decides when to try again.
"""

from __future__ import annotations

import aiohttp

from gateway.channel import Capabilities
from gateway.models import ConversationRef, DeliveryError, OutboundMessage, SendResult


class HttpTestChannel:
    name = "testchan"
    capabilities = Capabilities(max_text=4096)

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        payload = {"chat_id": ref.chat_id, "seq": message.seq, "text": message.text}
        try:
            async with self._session.post(
                self.url, json=payload, headers={"Idempotency-Key": message.message_id}
            ) as response:
                body = await response.json(content_type=None)
                if response.status == 200:
                    return SendResult(provider_message_id=body["id"])
                retry_after = response.headers.get("Retry-After")
                reason = f"HTTP {response.status}"
                if response.status == 429 or response.status >= 500:
                    raise DeliveryError(reason, retry_after=float(retry_after) if retry_after else None)
                raise DeliveryError(reason, permanent=True)
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"network: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
