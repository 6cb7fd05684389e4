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

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from tests.chaos.checks import Verdict, check_answers, is_handoff
from tests.chaos.twilio_customers import TwilioCustomer
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
class TwilioVerdict(Verdict):
    delivered: int = 0  # messages to the customers' numbers (Messages.json creates the fake accepted)
    not_acknowledged: int = 0  # never answered 200 and not stored: Twilio's error 11200, the customer's loss
    not_acknowledged_stored: int = 0  # never answered 200, yet stored (and so held to every check)


def twilio_verdict() -> TwilioVerdict:
    return TwilioVerdict(checks=TWILIO_CHECKS)


async def verify_twilio(db: AsyncDatabase, api: FakeTwilioApi, customers: list[TwilioCustomer]) -> TwilioVerdict:
    verdict = twilio_verdict()
    conversations = await db.conversations.find({"ref.channel": "sms"}).to_list()
    number_of = {c["_id"]: str(c["ref"]["chat_id"]) for c in conversations}
    messages = await db.messages.find({"conversation_id": {"$in": list(number_of)}}).to_list()
    messages.sort(key=lambda m: (str(m["conversation_id"]), m["seq"]))
    by_conversation: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        by_conversation[message["conversation_id"]].append(message)
    customer_messages = [m for m in messages if m["author"] == "customer"]
    stored_by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in customer_messages:
        stored_by_key[str(message.get("idempotency_key"))].append(message)
    replies: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        if message["author"] != "customer" and (message.get("meta") or {}).get("in_reply_to") is not None:
            replies[message["meta"]["in_reply_to"]].append(message)
    verdict.stored_customer_messages = len(customer_messages)
    verdict.stored_replies = sum(len(r) for r in replies.values())
    verdict.handoffs = sum(1 for m in messages if is_handoff(m))

    # What the customers texted: stored once each if the gateway said so, in their order.
    for customer in customers:
        who = f"number {customer.number}"
        order = {m.key: m.order for m in customer.sent}
        for sent in customer.sent:
            stored = stored_by_key.get(sent.key, [])
            refused = [s for s in sent.statuses if 400 <= s < 500]
            if refused:
                verdict.fail("refused", f"{who} {sent.message_sid}: statuses {sent.statuses}")
            if len(stored) > 1:
                verdict.fail("duplicated", f"{who} {sent.message_sid} at seqs {[m['seq'] for m in stored]}")
            if not sent.acked:
                if stored:
                    verdict.not_acknowledged_stored += 1
                else:
                    verdict.not_acknowledged += 1
            elif not stored:
                verdict.fail(
                    "lost",
                    f"{who} {sent.message_sid} (#{sent.order}, {sent.rounds} deliveries, {sent.posts} POSTs, "
                    f"statuses {sent.statuses}, errors {sent.errors})",
                )
        for conversation_id, number in number_of.items():
            if number != customer.number:
                continue
            stored = by_conversation.get(conversation_id, [])
            orders = [order.get(str(m.get("idempotency_key")), -1) for m in stored if m["author"] == "customer"]
            for earlier, later in pairwise(orders):
                if later < earlier:
                    verdict.fail("order", f"{who}: sent #{later} stored after #{earlier}")

    # Each stored customer message answered once (a handoff before it ends the AI's part).
    check_answers(
        verdict, by_conversation, replies, name=lambda cid: f"number {number_of[cid]}", key_field="idempotency_key"
    )

    # Every stored outgoing message went out once, through its outbox job(s), in order.
    jobs_by_message: dict[str, list[dict[str, Any]]] = defaultdict(list)
    async for job in db.outbox.find({"channel": "sms"}):
        jobs_by_message[str(job["message"].get("message_id"))].append(job)
    for number in sorted({c.number for c in customers} | set(number_of.values())):
        outgoing = [
            m
            for cid, n in number_of.items()
            if n == number
            for m in by_conversation.get(cid, [])
            if m["author"] != "customer"
        ]
        check_number(verdict, number, api.messages_to(number), outgoing, jobs_by_message)
    return verdict


def check_number(
    verdict: TwilioVerdict,
    number: str,
    shown: list[SentMessage],
    outgoing: list[dict[str, Any]],
    jobs_by_message: dict[str, list[dict[str, Any]]],
) -> None:
    """Match the messages Twilio accepted for `number` (in the order it accepted them) to the outbox jobs of
    the stored replies: first by the SID a sent job recorded, then by text (a send whose success the gateway
    never recorded: killed between Twilio's answer and the outbox write). Each job (one per SMS part) must
    show exactly once, in seq (then part) order."""
    verdict.delivered += len(shown)
    jobs: list[dict[str, Any]] = []
    for message in sorted(outgoing, key=lambda m: m["seq"]):
        found = sorted(jobs_by_message.get(str(message["_id"]), []), key=lambda j: j.get("part", 0))
        if not found:
            verdict.fail("not sent", f"number {number} seq {message['seq']} {message['author']}: no outbox job")
        for job in found:
            if job["state"] != "sent":
                verdict.fail(
                    "not sent",
                    f"number {number} seq {message['seq']} job {job['_id']}: {job['state']}, "
                    f"{job['attempts']} attempts, last error {job.get('last_error')!r}",
                )
        jobs += found
    position_of_sid = {m.sid: index for index, m in enumerate(shown)}
    by_sid = {str(j["provider_message_id"]): j for j in jobs if j.get("provider_message_id")}
    shows: dict[Any, list[int]] = defaultdict(list)  # job id -> positions in `shown` that show it
    unmatched: list[int] = []
    for index, sms in enumerate(shown):
        job = by_sid.get(sms.sid)
        if job is not None and job["message"]["text"] == sms.body:
            shows[job["_id"]].append(index)
        else:
            unmatched.append(index)
    for index in unmatched:
        same_text = [j for j in jobs if j["message"]["text"] == shown[index].body]
        # A job of that text not shown yet; else the one it repeats: an unrecorded send comes before the
        # recorded one, so the job whose recorded showing follows it most closely (answers repeat).
        job = next((j for j in same_text if not shows[j["_id"]]), None) or min(
            same_text,
            key=lambda j: _distance(index, position_of_sid.get(str(j.get("provider_message_id") or ""))),
            default=None,
        )
        if job is None:
            verdict.fail("stray message", f"number {number} message #{index} {shown[index].sid}: {shown[index].body!r}")
        else:
            shows[job["_id"]].append(index)
    for job in jobs:
        where = f"number {number} seq {job['message']['seq']} part {job.get('part', 0)} job {job['_id']}"
        positions = shows[job["_id"]]
        if not positions:
            verdict.fail("not delivered", f"{where} ({job['state']}, {job['attempts']} attempts)")
        elif len(positions) > 1:
            sids = [shown[p].sid for p in positions]
            verdict.fail("delivered twice", f"{where}: messages {sids} ({job['attempts']} attempts)")
    # Order: each job's first showing, in the order Twilio accepted them, must follow seq (then part) order.
    place = {j["_id"]: (j["message"]["seq"], j.get("part", 0)) for j in jobs}
    first_shown = sorted((positions[0], job_id) for job_id, positions in shows.items() if positions)
    for (_, earlier), (later_index, later) in pairwise(first_shown):
        if place[later] < place[earlier]:
            verdict.fail(
                "delivery order",
                f"number {number} message #{later_index} (seq {place[later][0]} part {place[later][1]}) "
                f"shown after seq {place[earlier][0]} part {place[earlier][1]}",
            )


def _distance(index: int, recorded: int | None) -> tuple[int, int]:
    """How far a repeat (at `index`) is from a job's recorded showing: recorded ones after it first."""
    if recorded is None:
        return (2, 0)
    return (0, recorded - index) if recorded > index else (1, index - recorded)
