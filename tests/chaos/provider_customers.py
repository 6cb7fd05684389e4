"""What the crash test's Telegram and SMS customers share: a person asking questions one at a time.

Each customer sends a question, waits until its answer shows (in the chat, at the phone number), and if
none comes within the answer wait, the same message is delivered again (to the gateway also what a
customer re-asking looks like). After a few deliveries without an answer it moves on to its next
question, like the web chat customers do. How a message is delivered, and what counts as its answer,
are each channel's own: tests/chaos/telegram_customers.py, tests/chaos/twilio_customers.py.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Generic, Protocol, TypeVar

POLL_SECONDS = 0.05


class Question(Protocol):
    """What the loop needs of a message a customer sent (TelegramSent, SmsSent)."""

    answered: bool  # the customer saw an answer before moving on


SentT = TypeVar("SentT", bound=Question)


class ProviderCustomer(ABC, Generic[SentT]):
    """One person writing to the business through a provider, asking questions one at a time."""

    # Where in the question list this channel's customers start, so that they are not in step with the
    # other channels' customers.
    question_offset: ClassVar[int]

    def __init__(
        self,
        index: int,
        questions: tuple[str, ...],
        rng: random.Random,
        *,
        answer_wait: float,
        think: tuple[float, float],
        max_deliveries: int,
    ) -> None:
        self.index = index
        self.questions = questions
        self.rng = rng
        self.answer_wait = answer_wait
        self.think = think
        self.max_deliveries = max_deliveries
        self.sent: list[SentT] = []
        self._task: asyncio.Task[None] | None = None

    def start(self, stop_sending: asyncio.Event, max_messages: int) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._talk(stop_sending, max_messages))
        return self._task

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @abstractmethod
    def _write(self, n: int, text: str) -> SentT:
        """The customer's `n`th message, not yet delivered."""

    @abstractmethod
    def _answer_shown(self, message: SentT) -> Callable[[], bool]:
        """Whether an answer to `message` shows yet; asked for as the message is written, before any
        delivery, so it can compare with what the customer had received by then."""

    @abstractmethod
    async def _deliver(self, message: SentT, delivery: int) -> None:
        """Deliver `message` to the gateway once more (`delivery` 0 is the first time)."""

    async def _talk(self, stop_sending: asyncio.Event, max_messages: int) -> None:
        for n in range(max_messages):
            if stop_sending.is_set():
                return
            # Its own offset into the list, never the same question twice in a row (triage would
            # rightly read a repeat as the AI failing).
            text = self.questions[(self.index * 5 + self.question_offset + n) % len(self.questions)]
            message = self._write(n, text)
            self.sent.append(message)
            answered = self._answer_shown(message)
            for delivery in range(self.max_deliveries):
                await self._deliver(message, delivery)
                if await self._wait_until(answered, stop_sending):
                    message.answered = True
                    break
                if stop_sending.is_set():
                    return
            await asyncio.sleep(self.rng.uniform(*self.think))

    async def _wait_until(self, answered: Callable[[], bool], stop_sending: asyncio.Event) -> bool:
        """Until `answered()`; False after answer_wait, or once sending stops (the checks then wait for
        the answer to every stored message)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.answer_wait
        while loop.time() < deadline and not stop_sending.is_set():
            if answered():
                return True
            await asyncio.sleep(POLL_SECONDS)
        return False
