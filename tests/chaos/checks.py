"""What the crash test asserts, read from the database and from the clients' records.

Every check counts violations and keeps a few examples; none is relaxed for a crash. The promises
come from the product: one stored customer message per `client_msg_id` (docs/webchat.md), one reply
per customer message (`ai:<message id>`, docs/data-model.md), seq strictly increasing and never
given twice, and the echo a client receives is the acknowledgement that the message is stored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from channels.webchat.frames import iso
from tests.chaos.customers import Customer

CHECKS: dict[str, str] = {
    "lost": "a message a client sent is not stored as a customer message",
    "lost after ack": "of those, the client had been told it was stored (it got the echo)",
    "duplicated": "one client_msg_id stored as two customer messages",
    "unanswered": "a customer message with no reply naming it (meta.in_reply_to) and no handoff before it",
    "answered twice": "two replies name the same customer message",
    "order": "a conversation's customer messages in seq order differ from the client's send order",
    "seq reused": "two stored messages of a conversation share a seq",
    "seq reused (client)": "a client received two different messages under one seq",
    "ack mismatch": "an echo's conversation/seq/created_at/text differs from the stored message",
    "not delivered": "a stored message of a client's conversation never reached that client",
    "unacknowledged": "a message still waiting in a client's outbox at the end",
    "conversation lost": "the server closed a client's socket with 4401: its conversation was gone",
}
EXAMPLES_KEPT = 5


@dataclass
class Verdict:
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    stored_customer_messages: int = 0
    stored_replies: int = 0
    handoffs: int = 0
    checks: dict[str, str] = field(default_factory=lambda: CHECKS)  # the table's rows, in order

    def fail(self, check: str, example: str) -> None:
        self.counts[check] += 1
        if len(self.examples[check]) < EXAMPLES_KEPT:
            self.examples[check].append(example)

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def table(self) -> str:
        width = max(map(len, self.checks))
        lines = [f"{'check':<{width}}  {'count':>5}  meaning", f"{'-' * width}  -----  -------"]
        for check, meaning in self.checks.items():
            mark = "" if not self.counts[check] else "  <-- FAIL"
            lines.append(f"{check:<{width}}  {self.counts[check]:>5}  {meaning}{mark}")
        for check, examples in self.examples.items():
            for example in examples:
                lines.append(f"  {check}: {example}")
        return "\n".join(lines)


def is_handoff(message: dict[str, Any]) -> bool:
    return ((message.get("meta") or {}).get("decision") or {}).get("action") == "handoff"


@dataclass
class StoredMessages:
    """One channel's stored messages (in conversation, then seq order), grouped the ways the checks look
    them up. The web chat, Telegram and SMS checks read them alike; only the field that names a customer
    message across re-sends differs."""

    messages: list[dict[str, Any]]
    key_field: str  # client_msg_id (web chat) or idempotency_key (Telegram, SMS)
    by_conversation: dict[Any, list[dict[str, Any]]]
    by_key: dict[str, list[dict[str, Any]]]  # customer messages by key: more than one is a duplicate
    replies: dict[Any, list[dict[str, Any]]]  # replies by the customer message they name (meta.in_reply_to)

    def copies_of(self, key: str) -> list[dict[str, Any]]:
        """The customer messages stored under one key: one if all is well, none if it was lost."""
        return self.by_key.get(key, [])

    def tally(self, verdict: Verdict) -> None:
        """The totals the summary reports beside the checks."""
        verdict.stored_customer_messages = sum(1 for m in self.messages if m["author"] == "customer")
        verdict.stored_replies = sum(len(r) for r in self.replies.values())
        verdict.handoffs = sum(1 for m in self.messages if is_handoff(m))


def group_stored(messages: list[dict[str, Any]], key_field: str) -> StoredMessages:
    """Group `messages` (already in conversation, then seq order, which each group keeps)."""
    by_conversation: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    replies: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        by_conversation[message["conversation_id"]].append(message)
        if message["author"] == "customer":
            by_key[str(message.get(key_field))].append(message)
        elif (message.get("meta") or {}).get("in_reply_to") is not None:
            replies[message["meta"]["in_reply_to"]].append(message)
    # Plain dicts: a lookup of a conversation or key that has nothing must not add it.
    return StoredMessages(messages, key_field, dict(by_conversation), dict(by_key), dict(replies))


async def verify(db: AsyncDatabase, customers: list[Customer]) -> Verdict:
    """Every check over the chaos database's web chat conversations (it holds only this run's; the
    Telegram and SMS ones are tests/chaos/telegram_checks.py's and twilio_checks.py's)."""
    verdict = Verdict()
    others = await db.conversations.distinct("_id", {"ref.channel": {"$ne": "webchat"}})
    web = {"conversation_id": {"$nin": others}}
    messages = await db.messages.find(web).sort([("conversation_id", 1), ("seq", 1)]).to_list()
    existing = {c["_id"] for c in await db.conversations.find({}, {"_id": 1}).to_list()}
    stored = group_stored(messages, "client_msg_id")
    stored.tally(verdict)

    for customer in customers:
        who = f"customer {customer.index}"
        for sent in customer.sent:
            copies = stored.copies_of(sent.client_msg_id)
            if not copies:
                verdict.fail("lost", f"{who} {sent.client_msg_id} (sent {sent.sends}x, {len(sent.acks)} acks)")
                if sent.acks:
                    verdict.fail("lost after ack", f"{who} {sent.client_msg_id} acked as {sent.acks[0]}")
            elif len(copies) > 1:
                verdict.fail("duplicated", f"{who} {sent.client_msg_id} at seqs {[m['seq'] for m in copies]}")
            for ack in sent.acks:
                match = [m for m in copies if str(m["conversation_id"]) == ack.conversation_id]
                if not match or not any(
                    m["seq"] == ack.seq and iso(m["created_at"]) == ack.created_at and m["text"] == ack.text
                    for m in match
                ):
                    got = [(str(m["conversation_id"]), m["seq"], iso(m["created_at"])) for m in copies]
                    verdict.fail("ack mismatch", f"{who} {sent.client_msg_id}: acked {ack}, stored {got}")
        for sent in customer.pending.values():
            verdict.fail("unacknowledged", f"{who} {sent.client_msg_id} (sent {sent.sends}x)")
        send_order = {m.client_msg_id: m.order for m in customer.sent}
        for view in customer.conversations:
            verdict.counts["seq reused (client)"] += len(view.seq_conflicts)
            for conflict in view.seq_conflicts[:EXAMPLES_KEPT]:
                verdict.examples["seq reused (client)"].append(f"{who} {view.conversation_id}: {conflict}")
            oid = ObjectId(view.conversation_id)
            if view.reset or oid not in existing:
                verdict.fail("conversation lost", f"{who} {view.conversation_id} (4401: {view.reset})")
                continue
            conversation = stored.by_conversation.get(oid, [])
            orders = [
                send_order.get(str(m.get("client_msg_id")), -1) for m in conversation if m["author"] == "customer"
            ]
            for earlier, later in pairwise(orders):
                if later < earlier:
                    verdict.fail("order", f"{who} {view.conversation_id}: sent #{later} stored after #{earlier}")
            for message in conversation:
                frame = view.frames.get(message["seq"])
                if frame is None or frame.get("author") != message["author"]:
                    verdict.fail(
                        "not delivered",
                        f"{who} {view.conversation_id} seq {message['seq']} {message['author']} "
                        f"(client's highest seq {view.highest_seq})",
                    )

    check_answers(verdict, stored, name=str)
    return verdict


def check_answers(verdict: Verdict, stored: StoredMessages, *, name: Callable[[Any], str]) -> None:
    """No seq used twice in a conversation, and every customer message answered exactly once (a
    handoff before it ends the AI's part). Shared by the web chat, Telegram and SMS checks; `name`
    says how a failure names a conversation."""
    for conversation_id, conversation in stored.by_conversation.items():
        for seq, n in Counter(m["seq"] for m in conversation).items():
            if n > 1:
                verdict.fail("seq reused", f"{name(conversation_id)} seq {seq} x{n}")
        handed_off_at = min((m["seq"] for m in conversation if is_handoff(m)), default=None)
        for message in conversation:
            if message["author"] != "customer":
                continue
            answers = stored.replies.get(message["_id"], [])
            where = f"{name(conversation_id)} seq {message['seq']} {message.get(stored.key_field)}"
            if len(answers) > 1:
                verdict.fail("answered twice", f"{where}: {len(answers)} replies")
            if not answers and (handed_off_at is None or handed_off_at > message["seq"]):
                verdict.fail("unanswered", where)
