"""What the crash test asserts for Telegram, read from the database, the outbox and the fake Bot API.

The promises (channels/telegram/channel.py, docs/telegram.md): a customer's message is stored once per
`telegram:<chat_id>:<message_id>`, however often Telegram delivers it; the polling offset is confirmed
only after its updates are stored; the AI answers each customer message once (`ai:<message id>`), and
the answer goes out through the durable outbox, in order. What the customer sees is the fake's chat:
a reply sent twice is a reply the customer reads twice, so deliveries are counted there, not in the
outbox's bookkeeping.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from tests.chaos.checks import Verdict, check_answers, is_handoff
from tests.chaos.telegram_customers import TelegramCustomer
from tests.fakes.telegram_api import FakeTelegramApi

TELEGRAM_CHECKS: dict[str, str] = {
    "lost": "a message added to getUpdates is not stored as a customer message (by idempotency key)",
    "duplicated": "one telegram:<chat>:<message_id> key stored as two customer messages",
    "unanswered": "a customer message with no AI reply naming it and no handoff before it",
    "answered twice": "two replies name the same customer message",
    "order": "a chat's customer messages in seq order differ from the customer's send order",
    "seq reused": "two stored messages of a Telegram conversation share a seq",
    "not sent": "a reply's outbox job is not in state sent at the end (pending or failed)",
    "not delivered": "a stored reply never reached the chat (no sendMessage that shows it)",
    "delivered twice": "a reply shows more than once in the chat (sendMessage repeated for one outbox job)",
    "stray message": "a bot message in the chat that is no stored reply",
    "delivery order": "the chat shows the replies in a different order than their seqs",
    "offset behind": "the polling offset in channel_state is not past the last update added",
}


@dataclass
class TelegramVerdict(Verdict):
    delivered: int = 0  # bot messages in the customers' chats
    offset: int | None = None


def telegram_verdict() -> TelegramVerdict:
    return TelegramVerdict(checks=TELEGRAM_CHECKS)


def offset_key(token: str) -> str:
    """Where the gateway keeps its polling offset (TelegramChannel._offset_key)."""
    return f"telegram:{token.partition(':')[0]}:offset"


async def verify_telegram(
    db: AsyncDatabase, api: FakeTelegramApi, customers: list[TelegramCustomer]
) -> TelegramVerdict:
    verdict = telegram_verdict()
    conversations = await db.conversations.find({"ref.channel": "telegram"}).to_list()
    chat_of = {c["_id"]: int(c["ref"]["chat_id"]) for c in conversations}
    messages = await db.messages.find({"conversation_id": {"$in": list(chat_of)}}).to_list()
    messages.sort(key=lambda m: (str(m["conversation_id"]), m["seq"]))
    by_conversation: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        by_conversation[message["conversation_id"]].append(message)
    customer_messages = [m for m in messages if m["author"] == "customer"]
    stored_by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in customer_messages:
        stored_by_key[str(message.get("idempotency_key"))].append(message)
    replies: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    outgoing = [m for m in messages if m["author"] != "customer"]
    for message in outgoing:
        if (message.get("meta") or {}).get("in_reply_to") is not None:
            replies[message["meta"]["in_reply_to"]].append(message)
    verdict.stored_customer_messages = len(customer_messages)
    verdict.stored_replies = sum(len(r) for r in replies.values())
    verdict.handoffs = sum(1 for m in messages if is_handoff(m))

    # What the customers wrote: stored once each, in their order.
    for customer in customers:
        who = f"chat {customer.chat_id}"
        order = {m.key: m.order for m in customer.sent}
        for sent in customer.sent:
            stored = stored_by_key.get(sent.key, [])
            if not stored:
                verdict.fail("lost", f"{who} message {sent.message_id} (updates {sent.update_ids})")
            elif len(stored) > 1:
                verdict.fail("duplicated", f"{who} message {sent.message_id} at seqs {[m['seq'] for m in stored]}")
        for conversation_id, chat in chat_of.items():
            if chat != customer.chat_id:
                continue
            stored = by_conversation.get(conversation_id, [])
            orders = [order.get(str(m.get("idempotency_key")), -1) for m in stored if m["author"] == "customer"]
            for earlier, later in pairwise(orders):
                if later < earlier:
                    verdict.fail("order", f"{who}: sent #{later} stored after #{earlier}")

    # Each stored customer message answered once (a handoff before it ends the AI's part).
    check_answers(
        verdict, by_conversation, replies, name=lambda cid: f"chat {chat_of[cid]}", key_field="idempotency_key"
    )

    # Every stored outgoing message went out once, through its outbox job(s), in order.
    jobs_by_message: dict[str, list[dict[str, Any]]] = defaultdict(list)
    async for job in db.outbox.find({"channel": "telegram"}):
        jobs_by_message[str(job["message"].get("message_id"))].append(job)
    for chat in sorted({c.chat_id for c in customers} | set(chat_of.values())):
        chat_conversations = [cid for cid, c in chat_of.items() if c == chat]
        sent_here = [m for cid in chat_conversations for m in by_conversation.get(cid, []) if m["author"] != "customer"]
        _check_chat(verdict, chat, api.sent_messages(chat), sent_here, jobs_by_message)

    # The offset is past every update the customers added, so a restart repeats none of them.
    state = await db.channel_state.find_one({"_id": offset_key(api.token)})
    verdict.offset = int(state["offset"]) if state else None
    last = max((u for c in customers for m in c.sent for u in m.update_ids), default=None)
    if last is not None and (verdict.offset is None or verdict.offset <= last):
        verdict.fail("offset behind", f"offset {verdict.offset}, last update_id added {last}")
    return verdict


def _check_chat(
    verdict: TelegramVerdict,
    chat: int,
    shown: list[dict[str, Any]],
    outgoing: list[dict[str, Any]],
    jobs_by_message: dict[str, list[dict[str, Any]]],
) -> None:
    """Match the chat's bot messages to the outbox jobs of the stored replies: first by the provider id
    a sent job recorded, then by text (a send whose success the gateway never recorded: killed between
    Telegram's answer and the outbox write). Each job must show exactly once, in seq order."""
    verdict.delivered += len(shown)
    jobs: list[dict[str, Any]] = []
    for message in sorted(outgoing, key=lambda m: m["seq"]):
        found = sorted(jobs_by_message.get(str(message["_id"]), []), key=lambda j: j.get("part", 0))
        if not found:
            verdict.fail("not sent", f"chat {chat} seq {message['seq']} {message['author']}: no outbox job")
        for job in found:
            if job["state"] != "sent":
                verdict.fail(
                    "not sent",
                    f"chat {chat} seq {message['seq']} job {job['_id']}: {job['state']}, "
                    f"{job['attempts']} attempts, last error {job.get('last_error')!r}",
                )
        jobs += found
    by_provider_id = {str(j.get("provider_message_id")): j for j in jobs if j.get("provider_message_id")}
    shows: dict[Any, list[int]] = defaultdict(list)  # job id -> the bot message ids that show it
    unmatched = []
    for bot_message in shown:
        job = by_provider_id.get(f"{chat}:{bot_message['message_id']}")
        if job is not None and job["message"]["text"] == bot_message.get("text"):
            shows[job["_id"]].append(bot_message["message_id"])
        else:
            unmatched.append(bot_message)
    for bot_message in unmatched:
        same_text = [j for j in jobs if j["message"]["text"] == bot_message.get("text")]
        # A job of that text not shown yet; else the one it repeats: an unrecorded send comes before the
        # recorded one, so the job whose recorded showing follows it most closely (answers repeat).
        job = next((j for j in same_text if not shows[j["_id"]]), None) or min(
            same_text,
            key=lambda j: _distance(bot_message["message_id"], str(j.get("provider_message_id") or "")),
            default=None,
        )
        if job is None:
            verdict.fail(
                "stray message", f"chat {chat} message {bot_message['message_id']}: {bot_message.get('text')!r}"
            )
        else:
            shows[job["_id"]].append(bot_message["message_id"])
    for job in jobs:
        where = f"chat {chat} seq {job['message']['seq']} part {job.get('part', 0)} job {job['_id']}"
        ids = shows[job["_id"]]
        if not ids:
            verdict.fail("not delivered", f"{where} ({job['state']}, {job['attempts']} attempts)")
        elif len(ids) > 1:
            verdict.fail("delivered twice", f"{where}: bot messages {ids} ({job['attempts']} attempts)")
    # Order: each job's first showing, in the chat's order, must follow seq (then part) order.
    position = {j["_id"]: (j["message"]["seq"], j.get("part", 0)) for j in jobs}
    first_shown = sorted((ids[0], job_id) for job_id, ids in shows.items() if ids)
    for (_, earlier), (later_id, later) in pairwise(first_shown):
        if position[later] < position[earlier]:
            verdict.fail(
                "delivery order",
                f"chat {chat} bot message {later_id} (seq {position[later][0]}) shown after seq {position[earlier][0]}",
            )


def _distance(message_id: int, provider_message_id: str) -> tuple[int, int]:
    """How far a repeat (`message_id`) is from a job's recorded showing: recorded ones after it first."""
    recorded = int(provider_message_id.rpartition(":")[2] or 0) if provider_message_id else 0
    return (0, recorded - message_id) if recorded > message_id else (1, message_id - recorded)
