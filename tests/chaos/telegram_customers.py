"""Telegram customers for the crash test: people in private chats with the bot, through the fake Bot API.

The fake (tests/fakes/telegram_api.py) runs in the driver process, so it outlives every gateway and
database kill, as Telegram's servers would. Each customer writes in its own private chat: it queues an
update for getUpdates, waits until the bot's answer shows in the chat, and if none comes within the
answer wait, the same message is delivered again (same message_id, a new update_id, as Telegram does
after a failed delivery). The rest of the loop is tests/chaos/provider_customers.py's. When sending
stops, the fake keeps every update until the gateway confirms it, and the checks wait for the answers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.provider_customers import ProviderCustomer
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.telegram_updates import next_update_id, text_update

FIRST_CHAT_ID = 880_000_001  # a private chat's id is the user's id
# Telegram counts message ids per chat for both sides; the fake numbers the bot's messages from 1, so
# the customers' ids start far above them and never name a bot message.
FIRST_MESSAGE_ID = 1_000_001


class ChaosTelegramApi(FakeTelegramApi):
    """The fake Bot API, with an optional round trip for sendMessage. The real API takes tens to hundreds
    of milliseconds; the local fake answers in about one. The message is in the chat first and the
    answer comes `send_latency` later, as when Telegram delivered it but the answer is still on its way:
    a gateway killed in that time never hears that the send succeeded."""

    def __init__(self, token: str, *, send_latency: float = 0.0) -> None:
        super().__init__(token)
        self.send_latency = send_latency

    async def _method_send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        message = await super()._method_send_message(params)
        if self.send_latency > 0:
            await asyncio.sleep(self.send_latency)
        return message


@dataclass(slots=True)
class TelegramSent:
    """One message a customer wrote, and every update that carried it."""

    chat_id: int
    message_id: int
    text: str
    order: int  # position in this customer's send order
    update_ids: list[int] = field(default_factory=list)
    answered: bool = False  # the customer saw an answer before moving on

    @property
    def key(self) -> str:
        """The gateway's idempotency key for it (channels/telegram/channel.py)."""
        return f"telegram:{self.chat_id}:{self.message_id}"


class TelegramCustomer(ProviderCustomer[TelegramSent]):
    """One person in a private chat with the bot, asking questions one at a time."""

    question_offset = 1

    def __init__(
        self,
        index: int,
        api: FakeTelegramApi,
        questions: tuple[str, ...],
        rng: random.Random,
        *,
        answer_wait: float,
        think: tuple[float, float],
        max_deliveries: int = 3,
    ) -> None:
        super().__init__(index, questions, rng, answer_wait=answer_wait, think=think, max_deliveries=max_deliveries)
        self.chat_id = FIRST_CHAT_ID + index
        self.api = api
        self._update: dict[str, Any] = {}  # the update that first carries the message being asked

    @property
    def deliveries(self) -> int:
        return sum(len(m.update_ids) for m in self.sent)

    def _write(self, n: int, text: str) -> TelegramSent:
        self._update = text_update(
            self.chat_id,
            text,
            message_id=FIRST_MESSAGE_ID + n,
            first_name=f"Chaos{self.index}",
            username=f"chaos_{self.index}",
        )
        return TelegramSent(self.chat_id, FIRST_MESSAGE_ID + n, text, n)

    def _answer_shown(self, message: TelegramSent) -> Callable[[], bool]:
        # One answer per message: this one is answered once the chat holds as many bot messages as the
        # customer has written (a late answer to an earlier one counts, as a person reads it).
        count = len(self.sent)
        return lambda: len(self.api.sent_messages(self.chat_id)) >= count

    async def _deliver(self, message: TelegramSent, delivery: int) -> None:
        # A re-delivery: the same message in a new update.
        again = self._update if delivery == 0 else {**self._update, "update_id": next_update_id()}
        message.update_ids.append(self.api.add_update(again))
