"""What the crash test asserts for SMS, read from the database, the outbox and the fake Twilio API.

The promises (channels/twilio/channel.py, docs/twilio.md): the gateway answers Twilio's webhook 200 only
once the message is stored, once per `twilio:<MessageSid>` however often Twilio posts it; the AI answers
each customer message once (`ai:<message id>`), and the answer goes out through the durable outbox, in
order. What the customer sees is what reached the fake's Messages.json for the customer's number: a reply
sent twice is a reply the customer reads twice, so deliveries are counted there, not in the outbox's
bookkeeping.

A message the gateway never answered 200 (every POST of every delivery failed) is one Twilio gave up on:
its debugger would show error 11200. It is counted ("not acknowledged"), not failed as lost; if it was
stored anyway (the gateway stored it and died before answering), it must be answered like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from tests.chaos.checks import check_answers
from tests.chaos.provider_checks import (
    ChannelMessages,
    Place,
    ProviderVerdict,
    Recipient,
    Shown,
    check_deliveries,
    check_send_order,
    check_stored_once,
    load_channel,
)
from tests.chaos.twilio_customers import SmsSent, TwilioCustomer
from tests.fakes.twilio_api import FakeTwilioApi, SentMessage

TWILIO_CHECKS: dict[str, str] = {
    "lost": "a message the gateway answered 200 is not stored as a customer message (by idempotency key)",
    "duplicated": "one twilio:<MessageSid> key stored as two customer messages",
    "refused": "the gateway answered a signed, well-formed SMS webhook with a 4xx",
    "unanswered": "a customer message with no AI reply naming it and no handoff before it",
    "answered twice": "two replies name the same customer message",
    "order": "a number's customer messages in seq order differ from the customer's send order",
    "seq reused": "two stored messages of an SMS conversation share a seq",
    "not sent": "a reply's outbox job is not in state sent at the end (pending or failed)",
    "not delivered": "a stored reply never reached the number (no Messages.json create that shows it)",
    "delivered twice": "a reply reached the number more than once (Messages.json repeated for one outbox job)",
    "stray message": "a message to the customer's number that is no stored reply",
    "delivery order": "the number received the replies in a different order than their seqs",
}


@dataclass
class TwilioVerdict(ProviderVerdict):
    not_acknowledged: int = 0  # never answered 200 and not stored: Twilio's error 11200, the customer's loss
    not_acknowledged_stored: int = 0  # never answered 200, yet stored (and so held to every check)


def twilio_verdict() -> TwilioVerdict:
    return TwilioVerdict(checks=TWILIO_CHECKS)


async def verify_twilio(db: AsyncDatabase, api: FakeTwilioApi, customers: list[TwilioCustomer]) -> TwilioVerdict:
    verdict = twilio_verdict()
    channel = await load_channel(db, "sms", address=str, noun="number")
    channel.stored.tally(verdict)

    # What the customers texted: stored once each if the gateway said so, in their order.
    for customer in customers:
        _check_texted(verdict, channel, customer)

    # Each stored customer message answered once (a handoff before it ends the AI's part).
    check_answers(verdict, channel.stored, name=channel.name)

    # Every stored outgoing message went out once, through its outbox job(s), in order.
    await check_deliveries(
        verdict, db, channel, [c.number for c in customers], lambda number: SmsNumber(number, api.messages_to(number))
    )
    return verdict


def _check_texted(verdict: TwilioVerdict, channel: ChannelMessages, customer: TwilioCustomer) -> None:
    """Every message the customer texted was taken (no 4xx), stored once, and stored at all if the gateway
    answered 200; in the customer's order."""
    who = channel.where(customer.number)
    for sent in customer.sent:
        copies = channel.stored.copies_of(sent.key)
        if any(400 <= s < 500 for s in sent.statuses):
            verdict.fail("refused", f"{who} {sent.message_sid}: statuses {sent.statuses}")
        check_stored_once(verdict, f"{who} {sent.message_sid}", copies)
        _check_kept_if_acknowledged(verdict, who, sent, copies)
    check_send_order(verdict, channel, customer.number, customer.sent)


def _check_kept_if_acknowledged(verdict: TwilioVerdict, who: str, sent: SmsSent, copies: list[dict]) -> None:
    """A 200 says the message is stored, so a 200 without a stored copy is a loss. A message never
    answered 200 is one Twilio gave up on: counted apart, whether or not the gateway stored it."""
    if not sent.acked:
        if copies:
            verdict.not_acknowledged_stored += 1
        else:
            verdict.not_acknowledged += 1
    elif not copies:
        verdict.fail(
            "lost",
            f"{who} {sent.message_sid} (#{sent.order}, {sent.rounds} deliveries, {sent.posts} POSTs, "
            f"statuses {sent.statuses}, errors {sent.errors})",
        )


class SmsNumber(Recipient):
    """A customer's phone number as the fake Twilio API shows it: the messages it accepted for it, in the
    order it accepted them (an SMS has no number of its own, so its place in that list stands in)."""

    def __init__(self, number: str, received: list[SentMessage]) -> None:
        super().__init__(f"number {number}", [Shown(index, m.sid, m.body) for index, m in enumerate(received)])

    def stray(self, shown: Shown) -> str:
        return f"{self.where} message #{shown.position} {shown.provider_id}: {shown.text!r}"

    def repeats(self, shows: list[Shown]) -> str:
        return f"messages {[s.provider_id for s in shows]}"

    def out_of_order(self, later: Shown, place: Place, after: Place) -> str:
        return (
            f"{self.where} message #{later.position} (seq {place[0]} part {place[1]}) "
            f"shown after seq {after[0]} part {after[1]}"
        )
