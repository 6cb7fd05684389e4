"""Telegram customers for the crash test: people in private chats with the bot, through the fake Bot API.

The fake (tests/fakes/telegram_api.py) runs in the driver process, so it outlives every gateway and
database kill, as Telegram's servers would. Each customer writes in its own private chat: it queues an
update for getUpdates, waits until the bot's answer shows in the chat, and if none comes within the
answer wait, the same message is delivered again (same message_id, a new update_id, as Telegram does
after a failed delivery; to the gateway also what a customer re-asking looks like). After a few
deliveries without an answer it moves on to its next question, like the web chat customers do.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.telegram_updates import next_update_id, text_update

FIRST_CHAT_ID = 880_000_001  # a private chat's id is the user's id
# Telegram counts message ids per chat for both sides; the fake numbers the bot's messages from 1, so
# the customers' ids start far above them and never name a bot message.
FIRST_MESSAGE_ID = 1_000_001
POLL_SECONDS = 0.05


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


class TelegramCustomer:
    """One person in a private chat with the bot, asking questions one at a time."""

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
        self.index = index
        self.chat_id = FIRST_CHAT_ID + index
        self.api = api
        self.questions = questions
        self.rng = rng
        self.answer_wait = answer_wait
        self.think = think
        self.max_deliveries = max_deliveries
        self.sent: list[TelegramSent] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def deliveries(self) -> int:
        return sum(len(m.update_ids) for m in self.sent)

    def start(self, stop_sending: asyncio.Event, max_messages: int) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._talk(stop_sending, max_messages))
        return self._task

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _talk(self, stop_sending: asyncio.Event, max_messages: int) -> None:
        for n in range(max_messages):
            if stop_sending.is_set():
                return
            # Its own offset into the list, never the same question twice in a row (triage would
            # rightly read a repeat as the AI failing), and not in step with the web chat customers.
            text = self.questions[(self.index * 5 + 1 + n) % len(self.questions)]
            update = text_update(
                self.chat_id,
                text,
                message_id=FIRST_MESSAGE_ID + n,
                first_name=f"Chaos{self.index}",
                username=f"chaos_{self.index}",
            )
            message = TelegramSent(self.chat_id, FIRST_MESSAGE_ID + n, text, n)
            self.sent.append(message)
            for delivery in range(self.max_deliveries):
                # A re-delivery: the same message in a new update.
                again = update if delivery == 0 else {**update, "update_id": next_update_id()}
                message.update_ids.append(self.api.add_update(again))
                # One answer per message: this one is answered once the chat holds as many bot messages
                # as the customer has written (a late answer to an earlier one counts, as a person reads it).
                if await self._wait_for_answers(len(self.sent), stop_sending):
                    message.answered = True
                    break
                if stop_sending.is_set():
                    return
            await asyncio.sleep(self.rng.uniform(*self.think))

    async def _wait_for_answers(self, count: int, stop_sending: asyncio.Event) -> bool:
        """Until the chat shows `count` bot messages; False after answer_wait, or once sending stops (the
        checks then wait for the answer, and the fake keeps the update until the gateway confirms it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.answer_wait
        while loop.time() < deadline and not stop_sending.is_set():
            if len(self.api.sent_messages(self.chat_id)) >= count:
                return True
            await asyncio.sleep(POLL_SECONDS)
        return False
