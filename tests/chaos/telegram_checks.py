"""What the crash test asserts for Telegram, read from the database, the outbox and the fake Bot API.

The promises (channels/telegram/channel.py, docs/telegram.md): a customer's message is stored once per
`telegram:<chat_id>:<message_id>`, however often Telegram delivers it; the polling offset is confirmed
only after its updates are stored; the AI answers each customer message once (`ai:<message id>`), and
the answer goes out through the durable outbox, in order. What the customer sees is the fake's chat:
a reply sent twice is a reply the customer reads twice, so deliveries are counted there, not in the
outbox's bookkeeping.
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
class TelegramVerdict(ProviderVerdict):
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
    channel = await load_channel(db, "telegram", address=int, noun="chat")
    channel.stored.tally(verdict)

    # What the customers wrote: stored once each, in their order.
    for customer in customers:
        _check_written(verdict, channel, customer)

    # Each stored customer message answered once (a handoff before it ends the AI's part).
    check_answers(verdict, channel.stored, name=channel.name)

    # Every stored outgoing message went out once, through its outbox job(s), in order.
    await check_deliveries(
        verdict, db, channel, [c.chat_id for c in customers], lambda chat: TelegramChat(chat, api.sent_messages(chat))
    )

    # Telegram's own promise: a restart repeats no update.
    await _check_offset(verdict, db, api, customers)
    return verdict


def _check_written(verdict: TelegramVerdict, channel: ChannelMessages, customer: TelegramCustomer) -> None:
    """Every message the customer wrote is stored (the fake holds an update until the gateway confirms it,
    and the gateway confirms only what it stored), once, in the customer's order."""
    who = channel.where(customer.chat_id)
    for sent in customer.sent:
        copies = channel.stored.copies_of(sent.key)
        if not copies:
            verdict.fail("lost", f"{who} message {sent.message_id} (updates {sent.update_ids})")
        check_stored_once(verdict, f"{who} message {sent.message_id}", copies)
    check_send_order(verdict, channel, customer.chat_id, customer.sent)


async def _check_offset(
    verdict: TelegramVerdict, db: AsyncDatabase, api: FakeTelegramApi, customers: list[TelegramCustomer]
) -> None:
    """The offset is past every update the customers added, so a restart repeats none of them."""
    state = await db.channel_state.find_one({"_id": offset_key(api.token)})
    verdict.offset = int(state["offset"]) if state else None
    last = max((u for c in customers for m in c.sent for u in m.update_ids), default=None)
    if last is not None and (verdict.offset is None or verdict.offset <= last):
        verdict.fail("offset behind", f"offset {verdict.offset}, last update_id added {last}")


class TelegramChat(Recipient):
    """A private chat as the fake Bot API shows it: its bot messages, by message_id."""

    def __init__(self, chat: int, bot_messages: list[dict]) -> None:
        # A chat's message ids count up, so they are the chat's order.
        shown = [Shown(m["message_id"], f"{chat}:{m['message_id']}", m.get("text")) for m in bot_messages]
        super().__init__(f"chat {chat}", shown)

    def recorded_position(self, provider_id: str) -> int | None:
        # The recorded id ("<chat>:<message_id>") says where it stood, even if it is no longer in the chat.
        return int(provider_id.rpartition(":")[2] or 0) if provider_id else None

    def stray(self, shown: Shown) -> str:
        return f"{self.where} message {shown.position}: {shown.text!r}"

    def repeats(self, shows: list[Shown]) -> str:
        return f"bot messages {[s.position for s in shows]}"

    def out_of_order(self, later: Shown, place: Place, after: Place) -> str:
        return f"{self.where} bot message {later.position} (seq {place[0]}) shown after seq {after[0]}"
