"""What the crash test asserts for email, read from the database, the outbox, the SMTP server's captures and
the IMAP mailbox.

The promises (channels/email/channel.py, channels/email/mailbox.py, channels/email/adapter.py): a mail in the
mailbox is stored once under `email:<Message-ID>` (its origin.provider_message_id is the Message-ID), however
often it is fetched, and only then flagged \\Seen and the IMAP position (UIDVALIDITY, last UID, in
`channel_state`) moved past it; the AI answers each customer mail once (`ai:<message id>`), and the answer
goes out through the durable outbox by SMTP, as a mail whose In-Reply-To is the customer's latest mail in
the thread when it is sent. What the customer receives is what the SMTP server accepted for the customer's
address, so deliveries are counted there, not in the outbox's bookkeeping.

Two kinds of repeat are told apart. The adapter derives a reply's Message-ID from the outbox job's content,
so a send the outbox repeats after a crash (the gateway killed between the server's 250 and the outbox's
"sent") carries the same Message-ID, and the customer's client shows it once: it is counted ("resent after a
crash"), not failed. The same reply under another Message-ID is a mail the customer reads twice: failed.

"Answered", as the customer sees it: replies name the latest customer mail of the thread at send time, so a
customer mail is answered when some reply's In-Reply-To names it or a later mail of the same customer (the
analogue of the SMS rule: any answer after the question counts). That each mail has its own reply is the
database's check (`meta.in_reply_to`), and that each reply reached the customer once is the delivery check.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aioimaplib
from pymongo.asynchronous.database import AsyncDatabase

from tests.chaos.checks import EXAMPLES_KEPT, check_answers, group_stored, is_handoff
from tests.chaos.email_customers import MailSent, bare
from tests.chaos.provider_checks import (
    ChannelMessages,
    Job,
    Place,
    ProviderVerdict,
    Recipient,
    Shown,
    check_delivered,
    check_send_order,
    check_stored_once,
    outbox_jobs_by_message,
)
from tests.mailservers.dovecot import OP_TIMEOUT, Dovecot
from tests.mailservers.smtp import ReceivedMail, SmtpServer

CHANNEL = "email"
POSITION_PREFIX = "email-imap:"  # channels/email/mailbox.py: Mailbox.key

EMAIL_CHECKS: dict[str, str] = {
    "lost": "a mail delivered to the mailbox is not stored as a customer message (by Message-ID)",
    "duplicated": "one Message-ID stored as two customer messages",
    "unanswered": "a customer mail with no AI reply naming it (meta.in_reply_to) and no handoff before it",
    "answered twice": "two replies name the same customer mail",
    "no reply mail": "a delivered mail no reply mail answers: none has In-Reply-To naming it or a later mail "
    "of its customer (mail after a handoff excepted)",
    "threading": "a reply mail's In-Reply-To names no mail of its customer, or one older than the mail it answers",
    "order": "a customer's mails in seq order differ from the customer's send order",
    "seq reused": "two stored messages of an email conversation share a seq",
    "not sent": "a reply's outbox job is not in state sent at the end (pending or failed)",
    "not delivered": "a stored reply never reached the address (the SMTP server accepted no mail with its id)",
    "delivered twice": "a reply mailed again under another Message-ID (the customer reads it twice)",
    "stray message": "a mail to the customer's address that is no stored reply",
    "delivery order": "the address received the replies in a different order than their seqs",
    "not marked read": "a mail in the INBOX is not flagged \\Seen at the end",
    "position": "the IMAP position in channel_state is not the INBOX's UIDVALIDITY and highest UID",
}


@dataclass
class EmailVerdict(ProviderVerdict):
    resent: int = 0  # reply mails accepted again under the same Message-ID: the outbox's retry after a crash
    resent_examples: list[str] = field(default_factory=list)
    answered_by_mail: int = 0  # delivered customer mails a reply mail answers (the In-Reply-To rule)
    mailbox_mails: int = 0  # mails in the INBOX
    position: tuple[int, int] | None = None  # (UIDVALIDITY, last UID) the gateway keeps

    def resend(self, example: str) -> None:
        self.resent += 1
        if len(self.resent_examples) < EXAMPLES_KEPT:
            self.resent_examples.append(example)

    def table(self) -> str:
        lines = [super().table()]
        lines.append(f"resent after a crash (same Message-ID, client shows once): {self.resent}, not a failure")
        lines += [f"  resent: {example}" for example in self.resent_examples]
        return "\n".join(lines)


def email_verdict() -> EmailVerdict:
    return EmailVerdict(checks=EMAIL_CHECKS)


class Writer(Protocol):
    """What the checks need of an email customer (EmailCustomer)."""

    @property
    def address(self) -> str: ...

    @property
    def sent(self) -> Sequence[MailSent]: ...


@dataclass(frozen=True)
class Captured:
    """One mail the SMTP server accepted, as the checks read it."""

    message_id: str  # without angle brackets
    to: tuple[str, ...]  # envelope recipients, lower-cased
    in_reply_to: str  # without angle brackets; "" if none
    text: str  # the plain-text body, whitespace runs as one space


@dataclass(frozen=True)
class MailboxState:
    """The INBOX at the end: its UIDVALIDITY and each mail's flags by UID."""

    uidvalidity: int
    flags: Mapping[int, frozenset[str]]


def normalized(text: str) -> str:
    """Text compared across the wire: the mail's encoding rewraps line ends and adds a final newline."""
    return " ".join(text.split())


def captured(mail: ReceivedMail) -> Captured:
    body = mail.message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return Captured(
        message_id=bare(str(mail.message.get("Message-ID") or "")),
        to=tuple(r.lower() for r in mail.rcpt_tos),
        in_reply_to=bare(str(mail.message.get("In-Reply-To") or "")),
        text=normalized(text),
    )


def email_channel(conversations: Iterable[dict[str, Any]], messages: Iterable[dict[str, Any]]) -> ChannelMessages:
    """The email conversations (each with the customer's address: its ref.chat_id) and their messages, as
    provider_checks.load_channel reads them."""
    address_of = {c["_id"]: str(c["ref"]["chat_id"]).lower() for c in conversations}
    ours = [m for m in messages if m["conversation_id"] in address_of]
    ours.sort(key=lambda m: (str(m["conversation_id"]), m["seq"]))
    return ChannelMessages(CHANNEL, "address", address_of, group_stored(ours, "idempotency_key"))


async def read_mailbox(server: Dovecot, folder: str = "INBOX") -> MailboxState:
    """UIDVALIDITY and every mail's flags over one IMAPS session (EXAMINE: read-only, so looking takes
    nothing from the gateway's session)."""
    context = server.certs.client_context()
    imap = aioimaplib.IMAP4_SSL(server.host, server.tls_port, ssl_context=context, timeout=OP_TIMEOUT)
    try:
        async with asyncio.timeout(OP_TIMEOUT):
            await imap.wait_hello_from_server()
            _ok(await imap.login(server.user, server.password), "LOGIN")
            examined = _ok(await imap.examine(f'"{folder}"'), f"EXAMINE {folder}")
            found = re.search(rb"\[UIDVALIDITY (\d+)\]", b" ".join(bytes(line) for line in examined.lines))
            # aioimaplib moves to SELECTED after SELECT only, and refuses FETCH before it.
            imap.protocol.state = aioimaplib.SELECTED
            fetched = _ok(await imap.uid("fetch", "1:*", "(FLAGS)"), "UID FETCH FLAGS")
            with contextlib.suppress(Exception):
                await imap.logout()
    finally:
        # Dropped whatever state it is in (aioimaplib closes only through LOGOUT).
        if not imap._client_task.done():
            imap._client_task.cancel()
        transport = getattr(imap.protocol, "transport", None)
        if transport is not None:
            transport.close()
    flags: dict[int, frozenset[str]] = {}
    for line in fetched.lines:
        uid = re.search(rb"\bUID (\d+)", bytes(line))
        listed = re.search(rb"\bFLAGS \(([^)]*)\)", bytes(line))
        if uid and listed:
            flags[int(uid.group(1))] = frozenset(f for f in listed.group(1).decode().split() if f != "\\Recent")
    return MailboxState(int(found.group(1)) if found else 0, flags)


def _ok(response: Any, what: str) -> Any:
    if response.result != "OK":
        raise RuntimeError(f"{what}: {response.result} {response.lines!r}")
    return response


async def verify_email(
    db: AsyncDatabase, mailbox: Dovecot, smtp: SmtpServer, customers: Sequence[Writer]
) -> EmailVerdict:
    conversations = await db.conversations.find({"ref.channel": CHANNEL}).to_list()
    ids = [c["_id"] for c in conversations]
    messages = await db.messages.find({"conversation_id": {"$in": ids}}).to_list()
    jobs = await outbox_jobs_by_message(db, CHANNEL)
    position = await db.channel_state.find_one({"_id": {"$regex": f"^{POSITION_PREFIX}"}})
    state = await read_mailbox(mailbox)
    mails = [captured(m) for m in smtp.mails]
    return judge(customers, email_channel(conversations, messages), jobs, mails, state, position)


def judge(
    customers: Sequence[Writer],
    channel: ChannelMessages,
    jobs_by_message: Mapping[str, list[Job]],
    mails: Sequence[Captured],
    mailbox: MailboxState,
    position: Mapping[str, Any] | None,
) -> EmailVerdict:
    """Every email check over one snapshot: what the customers delivered, the stored messages and their
    outbox jobs, the mails the SMTP server accepted (in order) and the mailbox."""
    verdict = email_verdict()
    channel.stored.tally(verdict)
    stored = _StoredMails(channel)

    # What the customers mailed: each delivered mail stored once, in their order.
    for customer in customers:
        who = channel.where(customer.address)
        for sent in customer.sent:
            copies = stored.copies_of(sent)
            if sent.delivered and not copies:
                verdict.fail("lost", f"{who} <{sent.message_id}> (#{sent.order}): {_in_mailbox(sent, mailbox)}")
            check_stored_once(verdict, f"{who} <{sent.message_id}>", copies)
        check_send_order(verdict, channel, customer.address, customer.sent)

    # Each stored customer mail answered once (a handoff before it ends the AI's part).
    check_answers(verdict, channel.stored, name=channel.name)

    # Every stored reply mailed once (a resend under its own Message-ID aside), through its job, in order.
    jobs = {key: [_comparable(job) for job in found] for key, found in jobs_by_message.items()}
    by_address: dict[str, list[Captured]] = defaultdict(list)
    for mail in mails:
        for address in mail.to:
            by_address[address].append(mail)
    addresses = {c.address for c in customers} | set(channel.address_of.values())
    for address in sorted(addresses):
        shown = _shown_once(verdict, address, by_address.get(address, []))
        check_delivered(verdict, MailAddress(address, shown), channel.outgoing_to(address), jobs)

    # As the customer reads the thread: every delivered mail answered by a reply mail, threaded right.
    for customer in customers:
        _check_answered_by_mail(verdict, channel, stored, customer, by_address.get(customer.address, []))
    _check_threading(verdict, channel, stored, customers, jobs, by_address)

    # The mailbox: everything handled is marked, and the position is past it.
    _check_mailbox(verdict, mailbox, position)
    return verdict


def _in_mailbox(sent: MailSent, mailbox: MailboxState) -> str:
    """Where a mail that was not stored is: still waiting unread (the gateway never took it), or flagged
    \\Seen (the gateway marked it processed without storing it), or gone from the INBOX."""
    flags = {uid: mailbox.flags.get(uid) for uid in sent.uids}
    if all(f is None for f in flags.values()):
        return f"UIDs {sent.uids} no longer in the INBOX"
    if any(f is not None and "\\Seen" in f for f in flags.values()):
        return f"UIDs {sent.uids} flagged \\Seen, yet not stored"
    return f"UIDs {sent.uids} still unread in the INBOX: the gateway never took it"


class _StoredMails:
    """The stored customer mails, found by idempotency key or by origin.provider_message_id."""

    def __init__(self, channel: ChannelMessages) -> None:
        self.channel = channel
        self.by_provider_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.by_id: dict[Any, dict[str, Any]] = {}
        for message in channel.stored.messages:
            self.by_id[message["_id"]] = message
            if message["author"] == "customer":
                provider_id = (message.get("origin") or {}).get("provider_message_id")
                if provider_id:
                    self.by_provider_id[str(provider_id)].append(message)

    def copies_of(self, sent: MailSent) -> list[dict[str, Any]]:
        copies = {m["_id"]: m for m in self.channel.stored.copies_of(sent.key)}
        copies |= {m["_id"]: m for m in self.by_provider_id.get(sent.message_id, [])}
        return list(copies.values())


def _comparable(job: Job) -> Job:
    """The job with its text as the mail's plain-text body reads."""
    return {**job, "message": {**job["message"], "text": normalized(str(job["message"].get("text") or ""))}}


def _shown_once(verdict: EmailVerdict, address: str, mails: list[Captured]) -> list[Shown]:
    """The mails an address received, each Message-ID once (where it first came): a repeat under the same
    Message-ID is the outbox resending after a crash, which a mail client shows once."""
    shown: list[Shown] = []
    seen: dict[str, int] = {}
    for mail in mails:
        if mail.message_id in seen:
            verdict.resend(f"address {address} mail <{mail.message_id}> (first as mail #{seen[mail.message_id]})")
            continue
        seen[mail.message_id] = len(shown)
        shown.append(Shown(len(shown), mail.message_id, mail.text))
    return shown


def _check_answered_by_mail(
    verdict: EmailVerdict, channel: ChannelMessages, stored: _StoredMails, customer: Writer, mails: list[Captured]
) -> None:
    """A delivered mail is answered when a reply mail's In-Reply-To names it or a later mail of the
    customer's; a mail stored after a handoff in its conversation is the people's to answer."""
    order = {m.message_id: m.order for m in customer.sent}
    latest = max((order[m.in_reply_to] for m in mails if m.in_reply_to in order), default=-1)
    for sent in customer.sent:
        if not sent.delivered:
            continue
        if sent.order <= latest:
            verdict.answered_by_mail += 1
            continue
        copies = stored.copies_of(sent)
        if copies and all(_after_handoff(channel, m) for m in copies):
            continue
        verdict.fail(
            "no reply mail",
            f"{channel.where(customer.address)} <{sent.message_id}> (#{sent.order}; latest mail answered: "
            f"#{latest if latest >= 0 else 'none'})",
        )


def _after_handoff(channel: ChannelMessages, message: dict[str, Any]) -> bool:
    conversation = channel.stored.by_conversation.get(message["conversation_id"], [])
    handed_off_at = min((m["seq"] for m in conversation if is_handoff(m)), default=None)
    return handed_off_at is not None and handed_off_at < message["seq"]


def _check_threading(
    verdict: EmailVerdict,
    channel: ChannelMessages,
    stored: _StoredMails,
    customers: Sequence[Writer],
    jobs_by_message: Mapping[str, list[Job]],
    by_address: Mapping[str, list[Captured]],
) -> None:
    """Each reply mail (found by the Message-ID its job recorded) names, in In-Reply-To, a mail of its own
    customer no older than the mail the reply answers: the thread only moves forward."""
    sent_by = {c.address: {m.message_id: m.order for m in c.sent} for c in customers}
    for address, mails in by_address.items():
        order = sent_by.get(address)
        if order is None:
            continue  # not a customer of this run: the delivery check names it
        by_id = {m.message_id: m for m in mails}
        for message in channel.outgoing_to(address):
            answered = stored.by_id.get((message.get("meta") or {}).get("in_reply_to"))
            if answered is None:
                continue
            answers = order.get(bare(str((answered.get("origin") or {}).get("provider_message_id") or "")), -1)
            for job in jobs_by_message.get(str(message["_id"]), []):
                mail = by_id.get(str(job.get("provider_message_id") or ""))
                if mail is None:
                    continue  # not delivered: the delivery check says so
                names = order.get(mail.in_reply_to)
                if names is None or names < answers:
                    verdict.fail(
                        "threading",
                        f"{channel.where(address)} seq {message['seq']} mail <{mail.message_id}>: In-Reply-To "
                        f"<{mail.in_reply_to}> (#{names if names is not None else '?'}), answers #{answers}",
                    )


def _check_mailbox(verdict: EmailVerdict, mailbox: MailboxState, position: Mapping[str, Any] | None) -> None:
    verdict.mailbox_mails = len(mailbox.flags)
    for uid, flags in sorted(mailbox.flags.items()):
        if "\\Seen" not in flags:
            verdict.fail("not marked read", f"UID {uid} flags {sorted(flags) or 'none'}")
    if position is not None:
        verdict.position = (int(position.get("uidvalidity") or 0), int(position.get("last_uid") or 0))
    if not mailbox.flags:
        return
    wanted = (mailbox.uidvalidity, max(mailbox.flags))
    if verdict.position != wanted:
        verdict.fail("position", f"channel_state (UIDVALIDITY, last UID) {verdict.position}, INBOX {wanted}")


class MailAddress(Recipient):
    """A customer's address as the SMTP server shows it: the mails accepted for it, each Message-ID once, in
    the order accepted."""

    def __init__(self, address: str, shown: list[Shown]) -> None:
        super().__init__(f"address {address}", shown)

    def stray(self, shown: Shown) -> str:
        return f"{self.where} mail #{shown.position} <{shown.provider_id}>: {(shown.text or '')[:80]!r}"

    def repeats(self, shows: list[Shown]) -> str:
        return f"mails {[f'<{s.provider_id}>' for s in shows]}"

    def out_of_order(self, later: Shown, place: Place, after: Place) -> str:
        return f"{self.where} mail #{later.position} (seq {place[0]}) received after seq {after[0]}"
