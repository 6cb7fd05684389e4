"""What the crash test's Telegram and SMS checks share: both channels reach customers through a provider.

Telegram and SMS keep the same promises in the same way (channels/telegram/channel.py,
channels/twilio/channel.py): a customer's message is stored once under an idempotency key made from the
provider's id for it (`telegram:<chat>:<message_id>`, `twilio:<MessageSid>`), each chat or phone number
has its conversation, and replies go out through the durable outbox, one job per part, each job recording
the provider's id of what it sent. What the customer sees is the fake provider's record for the chat or
number, so deliveries are counted there. The checks of those promises live here; each channel's module
keeps what only it promises (Telegram's polling offset, SMS's webhook answers) and how its failures name
the messages the provider shows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from tests.chaos.checks import StoredMessages, Verdict, group_stored

Job = dict[str, Any]  # an outbox job as stored
Place = tuple[int, int]  # where a job's text belongs: its message's seq, then its part


@dataclass
class ProviderVerdict(Verdict):
    delivered: int = 0  # messages the fake provider shows the customers' chats or numbers


class SentByCustomer(Protocol):
    """What the checks need of a message a customer sent (TelegramSent, SmsSent)."""

    @property
    def key(self) -> str: ...  # the gateway's idempotency key for it

    @property
    def order(self) -> int: ...  # its position in the customer's send order


@dataclass
class ChannelMessages:
    """A provider channel's stored messages, and the chat or phone number each conversation is with."""

    channel: str  # ref.channel of its conversations, and the outbox jobs' channel
    noun: str  # how failures name an address: "chat", "number"
    address_of: dict[Any, Any]  # conversation id -> chat id or phone number
    stored: StoredMessages

    def where(self, address: Any) -> str:
        return f"{self.noun} {address}"

    def name(self, conversation_id: Any) -> str:
        return self.where(self.address_of[conversation_id])

    def conversations_with(self, address: Any) -> list[list[dict[str, Any]]]:
        """Each conversation with `address`, in seq order (a customer has one, unless it was replaced)."""
        return [self.stored.by_conversation.get(cid, []) for cid, a in self.address_of.items() if a == address]

    def outgoing_to(self, address: Any) -> list[dict[str, Any]]:
        """The stored messages that should have reached `address`: every one its customer did not write."""
        return [m for messages in self.conversations_with(address) for m in messages if m["author"] != "customer"]


async def load_channel(db: AsyncDatabase, channel: str, *, address: Callable[[Any], Any], noun: str) -> ChannelMessages:
    """The channel's conversations (`address` reads a conversation's ref.chat_id) and their messages."""
    conversations = await db.conversations.find({"ref.channel": channel}).to_list()
    address_of = {c["_id"]: address(c["ref"]["chat_id"]) for c in conversations}
    messages = await db.messages.find({"conversation_id": {"$in": list(address_of)}}).to_list()
    messages.sort(key=lambda m: (str(m["conversation_id"]), m["seq"]))
    return ChannelMessages(channel, noun, address_of, group_stored(messages, "idempotency_key"))


# What the customers sent: each stored once, in their order.


def check_stored_once(verdict: Verdict, label: str, copies: list[dict[str, Any]]) -> None:
    """A key stored twice: the gateway stored a re-delivery of one message as a new message."""
    if len(copies) > 1:
        verdict.fail("duplicated", f"{label} at seqs {[m['seq'] for m in copies]}")


def check_send_order(verdict: Verdict, channel: ChannelMessages, address: Any, sent: Sequence[SentByCustomer]) -> None:
    """In each conversation with `address`, the customer messages in seq order keep the customer's send
    order (a message the customer did not send ranks first)."""
    order = {m.key: m.order for m in sent}
    for messages in channel.conversations_with(address):
        orders = [order.get(str(m.get("idempotency_key")), -1) for m in messages if m["author"] == "customer"]
        for earlier, later in pairwise(orders):
            if later < earlier:
                verdict.fail("order", f"{channel.where(address)}: sent #{later} stored after #{earlier}")


# What the customers received: every stored reply once, through its outbox jobs, in order.


@dataclass(frozen=True)
class Shown:
    """One message the fake provider shows a chat or number: a bot message, an SMS."""

    position: int  # increasing in the order the customer received them
    provider_id: str  # the provider's id for it, as a sent outbox job records it
    text: str | None


class Recipient(ABC):
    """One chat or phone number as the fake provider shows it, and how failures name what it shows."""

    def __init__(self, where: str, shown: list[Shown]) -> None:
        self.where = where  # "chat 880000001", "number +15559000000"
        self.shown = shown  # in the order the customer received them
        self._position_of = {s.provider_id: s.position for s in shown}

    def recorded_position(self, provider_id: str) -> int | None:
        """Where the message a job recorded (by the provider's id; "" if none) stands; None: not shown."""
        return self._position_of.get(provider_id)

    @abstractmethod
    def stray(self, shown: Shown) -> str:
        """The failure's text for a shown message that is no stored reply."""

    @abstractmethod
    def repeats(self, shows: list[Shown]) -> str:
        """How the failure names the messages that show one job more than once."""

    @abstractmethod
    def out_of_order(self, later: Shown, place: Place, after: Place) -> str:
        """The failure's text for a job first shown (`later`) after a job of a later seq (or part)."""


async def outbox_jobs_by_message(db: AsyncDatabase, channel: str) -> dict[str, list[Job]]:
    """The channel's outbox jobs, by the id of the stored message they send (one per part)."""
    jobs_by_message: dict[str, list[Job]] = defaultdict(list)
    async for job in db.outbox.find({"channel": channel}):
        jobs_by_message[str(job["message"].get("message_id"))].append(job)
    return jobs_by_message


async def check_deliveries(
    verdict: ProviderVerdict,
    db: AsyncDatabase,
    channel: ChannelMessages,
    customer_addresses: Iterable[Any],
    recipient: Callable[[Any], Recipient],
) -> None:
    """Every address a customer or a conversation has, checked against what the provider shows it."""
    jobs_by_message = await outbox_jobs_by_message(db, channel.channel)
    for address in sorted(set(customer_addresses) | set(channel.address_of.values())):
        check_delivered(verdict, recipient(address), channel.outgoing_to(address), jobs_by_message)


def check_delivered(
    verdict: ProviderVerdict,
    recipient: Recipient,
    outgoing: list[dict[str, Any]],
    jobs_by_message: dict[str, list[Job]],
) -> None:
    """Match what the provider shows `recipient` to the outbox jobs of the stored replies: first by the
    provider id a sent job recorded, then by text (a send whose success the gateway never recorded: killed
    between the provider's answer and the outbox write). Each job (one per part) must show exactly once,
    in seq (then part) order."""
    verdict.delivered += len(recipient.shown)
    jobs = _jobs_of(verdict, recipient.where, outgoing, jobs_by_message)
    shows = _match_shown(verdict, recipient, jobs)
    _check_each_shown_once(verdict, recipient, jobs, shows)
    _check_delivery_order(verdict, recipient, jobs, shows)


def _jobs_of(
    verdict: Verdict, where: str, outgoing: list[dict[str, Any]], jobs_by_message: dict[str, list[Job]]
) -> list[Job]:
    """The outbox jobs of the outgoing messages, in seq then part order; a message without one, or a
    job not sent by the end, fails "not sent"."""
    jobs: list[Job] = []
    for message in sorted(outgoing, key=lambda m: m["seq"]):
        found = sorted(jobs_by_message.get(str(message["_id"]), []), key=lambda j: j.get("part", 0))
        if not found:
            verdict.fail("not sent", f"{where} seq {message['seq']} {message['author']}: no outbox job")
        for job in found:
            if job["state"] != "sent":
                verdict.fail(
                    "not sent",
                    f"{where} seq {message['seq']} job {job['_id']}: {job['state']}, "
                    f"{job['attempts']} attempts, last error {job.get('last_error')!r}",
                )
        jobs += found
    return jobs


def _match_shown(verdict: Verdict, recipient: Recipient, jobs: list[Job]) -> dict[Any, list[Shown]]:
    """Which shown messages show each job (job id -> them, in the order shown); a shown message that
    matches no job fails "stray message"."""
    by_provider_id = {str(j["provider_message_id"]): j for j in jobs if j.get("provider_message_id")}
    shows: dict[Any, list[Shown]] = defaultdict(list)
    unmatched: list[Shown] = []
    for shown in recipient.shown:
        job = by_provider_id.get(shown.provider_id)
        if job is not None and job["message"]["text"] == shown.text:
            shows[job["_id"]].append(shown)
        else:
            unmatched.append(shown)
    for shown in unmatched:
        same_text = [j for j in jobs if j["message"]["text"] == shown.text]
        # A job of that text not shown yet; else the one it repeats: an unrecorded send comes before the
        # recorded one, so the job whose recorded showing follows it most closely (answers repeat).
        job = next((j for j in same_text if not shows[j["_id"]]), None) or min(
            same_text,
            key=lambda j: _distance(shown.position, recipient.recorded_position(_recorded_id(j))),
            default=None,
        )
        if job is None:
            verdict.fail("stray message", recipient.stray(shown))
        else:
            shows[job["_id"]].append(shown)
    return shows


def _recorded_id(job: Job) -> str:
    """The provider's id a sent job recorded for what it sent; "" if it recorded none."""
    return str(job.get("provider_message_id") or "")


def _distance(position: int, recorded: int | None) -> tuple[int, int]:
    """How far a repeat (at `position`) is from a job's recorded showing: recorded ones after it first,
    then recorded ones before it, then jobs with none."""
    if recorded is None:
        return (2, 0)
    return (0, recorded - position) if recorded > position else (1, position - recorded)


def _check_each_shown_once(
    verdict: Verdict, recipient: Recipient, jobs: list[Job], shows: dict[Any, list[Shown]]
) -> None:
    """A job never shown is a reply the customer never got; one shown twice, a reply they read twice."""
    for job in jobs:
        where = f"{recipient.where} seq {job['message']['seq']} part {job.get('part', 0)} job {job['_id']}"
        shown = shows[job["_id"]]
        if not shown:
            verdict.fail("not delivered", f"{where} ({job['state']}, {job['attempts']} attempts)")
        elif len(shown) > 1:
            verdict.fail("delivered twice", f"{where}: {recipient.repeats(shown)} ({job['attempts']} attempts)")


def _check_delivery_order(
    verdict: Verdict, recipient: Recipient, jobs: list[Job], shows: dict[Any, list[Shown]]
) -> None:
    """Each job's first showing, in the order the customer received them, follows seq (then part) order."""
    place: dict[Any, Place] = {j["_id"]: (j["message"]["seq"], j.get("part", 0)) for j in jobs}
    first_shown = sorted(((s[0], job_id) for job_id, s in shows.items() if s), key=lambda pair: pair[0].position)
    for (_, earlier), (later_shown, later) in pairwise(first_shown):
        if place[later] < place[earlier]:
            verdict.fail("delivery order", recipient.out_of_order(later_shown, place[later], place[earlier]))
