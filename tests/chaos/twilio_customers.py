"""SMS customers for the crash test: people texting the business number, through the fake Twilio API.

The fake (tests/fakes/twilio_api.py) runs in the driver process, so it outlives every gateway and database
kill, as Twilio would. Each customer has its own phone number. Twilio posts the customer's message to the
gateway's messaging webhook (signed, `POST /twilio/messages`), configured as docs/twilio.md tells operators
to ("Retries": `#rc=3&rp=all`): a POST that fails (connection refused or reset, no answer within Twilio's
15 s read timeout, any status but 200) is retried 3 times, 1 s apart, with the same MessageSid. A message
that never got a 200 is one Twilio gave up on (its debugger shows error 11200): "not acknowledged", never
"lost". Like the Telegram customers, a customer who sees no answer within the answer wait sends the same
message again (a new webhook delivery, same MessageSid), and after a few deliveries moves on to its next
question: the loop is tests/chaos/provider_customers.py's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from tests.chaos.provider_customers import ProviderCustomer
from tests.fakes.twilio_api import FakeTwilioApi, new_sid

SMS_FROM = "+15550001111"  # the business number (TWILIO_SMS_FROM)
MESSAGES_PATH = "/twilio/messages"
WEBHOOK_RETRIES = 3  # rc=3: retries after the first POST
RETRY_PAUSE_SECONDS = 1.0
WEBHOOK_TIMEOUT_SECONDS = 15.0  # Twilio's default read timeout (rt=15000)


def phone_number(index: int) -> str:
    """SMS customer `index`'s own number: +15559000000, +15559000001, ..."""
    return f"+1555900{index:04d}"


@dataclass(slots=True)
class SmsSent:
    """One message a customer texted, and every webhook POST that carried it."""

    number: str
    message_sid: str
    text: str
    order: int  # position in this customer's send order
    rounds: int = 0  # webhook deliveries (the first, and one per re-send), each with Twilio's retries
    posts: int = 0  # POSTs, retries included
    statuses: list[int] = field(default_factory=list)  # HTTP statuses the gateway answered
    errors: list[str] = field(default_factory=list)  # POSTs that got no answer: why
    posted_at: list[float] = field(default_factory=list)  # wall-clock time of each POST, for the transcript
    answered: bool = False  # the customer saw an answer before moving on

    @property
    def acked(self) -> bool:
        """The gateway answered 200: it said the message is stored."""
        return 200 in self.statuses

    @property
    def key(self) -> str:
        """The gateway's idempotency key for it (channels/twilio/channel.py)."""
        return f"twilio:{self.message_sid}"


class TwilioCustomer(ProviderCustomer[SmsSent]):
    """One person texting the business number, asking questions one at a time."""

    question_offset = 3

    def __init__(
        self,
        index: int,
        api: FakeTwilioApi,
        gateway_url: str,
        questions: tuple[str, ...],
        rng: random.Random,
        *,
        answer_wait: float,
        think: tuple[float, float],
        max_rounds: int = 3,
    ) -> None:
        super().__init__(index, questions, rng, answer_wait=answer_wait, think=think, max_deliveries=max_rounds)
        self.number = phone_number(index)
        self.api = api
        self.url = f"{gateway_url}{MESSAGES_PATH}"  # PUBLIC_BASE_URL + path: what the signature covers
        self.failures: Counter[str] = Counter()  # failed POSTs by kind: an HTTP status or an exception name

    @property
    def rounds(self) -> int:
        return sum(m.rounds for m in self.sent)

    @property
    def posts(self) -> int:
        return sum(m.posts for m in self.sent)

    def _write(self, n: int, text: str) -> SmsSent:
        return SmsSent(self.number, new_sid("SM"), text, n)

    def _answer_shown(self, message: SmsSent) -> Callable[[], bool]:
        # A long answer comes as several SMS, so the customer does not count answers: any SMS arriving after
        # its question is one (a late answer to an earlier one counts, as a person reads it), once the gateway
        # has acknowledged the question. Until then an SMS can only be the rest of an earlier answer.
        seen = len(self.api.messages_to(self.number))
        return lambda: message.acked and len(self.api.messages_to(self.number)) > seen

    async def _deliver(self, message: SmsSent, delivery: int) -> None:
        await self.deliver(message)

    async def deliver(self, message: SmsSent) -> bool:
        """One webhook delivery as Twilio makes it: POST, and on any failure retry, same MessageSid. True on a
        200. The retries run to the end even when sending stops: they are Twilio's, not the customer's."""
        params = self.api.sms_params(self.number, SMS_FROM, message.text, message.message_sid)
        message.rounds += 1
        for attempt in range(1 + WEBHOOK_RETRIES):
            if attempt:
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
            message.posts += 1
            message.posted_at.append(time.time())
            try:
                async with asyncio.timeout(WEBHOOK_TIMEOUT_SECONDS):
                    status, _body, _headers = await self.api.send_inbound(self.url, params)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                message.errors.append(type(exc).__name__)
                self.failures[type(exc).__name__] += 1
                continue
            message.statuses.append(status)
            if status == 200:
                return True
            self.failures[str(status)] += 1
        return False
