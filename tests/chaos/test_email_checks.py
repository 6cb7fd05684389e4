"""The crash test's email checks hold for a clean exchange and classify each kind of fault they name.

A check that cannot fail proves nothing. The verdict (tests/chaos/email_checks.py `judge`) is pure: it reads
one snapshot of what the customers mailed, the stored messages and outbox jobs, the mails the SMTP server
accepted and the mailbox. So the snapshot is made by hand here, as a clean exchange, and then faults are
planted the way a crash would leave them: a lost mail, a doubled answer, an unanswered mail, a resend under
the same Message-ID (the outbox's retry: counted, not failed).
"""

from __future__ import annotations

import email
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from typing import Any

from bson import ObjectId

from channels.email.compose import compose
from tests.chaos.email_checks import Captured, MailboxState, captured, email_channel, judge, normalized
from tests.chaos.email_customers import MailSent, bare, email_address
from tests.mailservers.smtp import ReceivedMail

UIDVALIDITY = 1_700_000_000
ANSWERS = (
    "Orders ship within 2 business days; you get a tracking link by mail.",
    "Returns are free within 30 days: use the label in your parcel.",
    "We ship to every EU country; shipping is free over 50 EUR.",
)


@dataclass
class Writer:
    address: str
    sent: list[MailSent] = field(default_factory=list)


@dataclass
class Exchange:
    """A hand-made snapshot of one email customer's thread, consistent until a test breaks it."""

    writer: Writer
    conversation: dict[str, Any]
    messages: list[dict[str, Any]]
    jobs: dict[str, list[dict[str, Any]]]
    mails: list[Captured]
    flags: dict[int, frozenset[str]]
    position: dict[str, Any] | None

    def judge(self) -> Any:
        channel = email_channel([self.conversation], self.messages)
        mailbox = MailboxState(UIDVALIDITY, self.flags)
        return judge([self.writer], channel, self.jobs, self.mails, mailbox, self.position)

    def customer_message(self, n: int) -> dict[str, Any]:
        key = self.writer.sent[n].key
        return next(m for m in self.messages if m.get("idempotency_key") == key)

    def reply(self, n: int) -> dict[str, Any]:
        answered = self.customer_message(n)["_id"]
        return next(m for m in self.messages if (m.get("meta") or {}).get("in_reply_to") == answered)

    def mail_of(self, n: int) -> Captured:
        reply_id = str(self.reply(n)["_id"])
        sent_as = self.jobs[reply_id][0]["provider_message_id"]
        return next(m for m in self.mails if m.message_id == sent_as)

    def deliver(self, text: str) -> MailSent:
        """A further mail the customer delivered: in the mailbox, seen, the position past it."""
        n = len(self.writer.sent)
        sent = MailSent(self.writer.address, f"mail{n}@customer.example", text, n, uids=[n + 1])
        self.writer.sent.append(sent)
        self.flags[n + 1] = frozenset({"\\Seen"})
        self.position = {"uidvalidity": UIDVALIDITY, "last_uid": n + 1}
        return sent

    def store(self, sent: MailSent) -> dict[str, Any]:
        seq = max(m["seq"] for m in self.messages) + 1
        message = {
            "_id": ObjectId(),
            "conversation_id": self.conversation["_id"],
            "seq": seq,
            "author": "customer",
            "text": sent.text,
            "idempotency_key": sent.key,
            "origin": {"channel": "email", "provider_message_id": sent.message_id},
        }
        self.messages.append(message)
        return message

    def answer(self, message: dict[str, Any], text: str, *, in_reply_to: str, mail_id: str = "") -> Captured:
        """A stored AI reply to `message`, its sent outbox job and the mail the SMTP server accepted."""
        seq = max(m["seq"] for m in self.messages) + 1
        reply = {
            "_id": ObjectId(),
            "conversation_id": self.conversation["_id"],
            "seq": seq,
            "author": "ai",
            "text": text,
            "idempotency_key": f"ai:{message['_id']}",
            "meta": {"in_reply_to": message["_id"]},
        }
        self.messages.append(reply)
        mail_id = mail_id or f"reply{seq}@shop.example"
        self.jobs[str(reply["_id"])] = [
            {
                "_id": ObjectId(),
                "part": 0,
                "state": "sent",
                "attempts": 1,
                "provider_message_id": mail_id,
                "message": {"message_id": str(reply["_id"]), "seq": seq, "author": "ai", "text": text},
            }
        ]
        mail = Captured(mail_id, (self.writer.address,), in_reply_to, normalized(text))
        self.mails.append(mail)
        return mail


def clean_exchange() -> Exchange:
    """Three mails, each stored once, answered once, its answer mailed once in reply to it; the mailbox
    all seen, the position at the last UID."""
    address = email_address(0)
    conversation = {"_id": ObjectId(), "ref": {"channel": "email", "chat_id": address, "thread_key": "mail0"}}
    exchange = Exchange(Writer(address), conversation, [], {}, [], {}, None)
    for n, answer in enumerate(ANSWERS):
        sent = exchange.deliver(f"Question {n}?")
        sent.answered = True
        if not exchange.messages:
            exchange.messages.append(
                {
                    "_id": ObjectId(),
                    "conversation_id": conversation["_id"],
                    "seq": 1,
                    "author": "customer",
                    "text": sent.text,
                    "idempotency_key": sent.key,
                    "origin": {"channel": "email", "provider_message_id": sent.message_id},
                }
            )
            stored = exchange.messages[0]
        else:
            stored = exchange.store(sent)
        exchange.answer(stored, answer, in_reply_to=sent.message_id)
    return exchange


def test_a_clean_exchange_passes() -> None:
    verdict = clean_exchange().judge()
    assert verdict.ok, verdict.table()
    assert (verdict.stored_customer_messages, verdict.stored_replies, verdict.delivered) == (3, 3, 3)
    assert (verdict.answered_by_mail, verdict.resent, verdict.mailbox_mails) == (3, 0, 3)
    assert verdict.position == (UIDVALIDITY, 3)


def test_a_reply_naming_a_later_mail_answers_the_earlier_one_too() -> None:
    # Mail 1 and 2 came close together: the answer to 1 went out after 2 was stored, so its In-Reply-To
    # names 2 (the thread's latest), as does the answer to 2. Both are answered.
    exchange = clean_exchange()
    later = exchange.writer.sent[2].message_id
    exchange.mails[1] = replace(exchange.mails[1], in_reply_to=later)
    verdict = exchange.judge()
    assert verdict.ok, verdict.table()
    assert verdict.answered_by_mail == 3


def test_a_lost_mail() -> None:
    # The mailbox took the mail and the gateway flagged it and moved past it, but stored nothing: no reply.
    exchange = clean_exchange()
    exchange.deliver("Where is my parcel?")
    verdict = exchange.judge()
    assert verdict.counts == Counter({"lost": 1, "no reply mail": 1}), verdict.table()
    assert "flagged \\Seen, yet not stored" in verdict.examples["lost"][0]


def test_a_mail_left_unread_in_the_mailbox_behind_the_position() -> None:
    # The gateway never took it: not stored by the end, so lost to the customer all the same.
    exchange = clean_exchange()
    sent = exchange.deliver("Where is my parcel?")
    exchange.flags[sent.uids[0]] = frozenset()
    exchange.position = {"uidvalidity": UIDVALIDITY, "last_uid": 3}
    verdict = exchange.judge()
    assert verdict.counts == Counter({"lost": 1, "no reply mail": 1, "not marked read": 1, "position": 1})
    assert "still unread in the INBOX" in verdict.examples["lost"][0]


def test_a_mail_delivered_to_the_mailbox_twice_is_stored_once() -> None:
    # A delivery agent's retried APPEND: two UIDs, one Message-ID, one stored message.
    exchange = clean_exchange()
    exchange.writer.sent[2].uids.append(4)
    exchange.flags[4] = frozenset({"\\Seen"})
    exchange.position = {"uidvalidity": UIDVALIDITY, "last_uid": 4}
    assert exchange.judge().ok


def test_a_mail_stored_twice() -> None:
    exchange = clean_exchange()
    exchange.store(exchange.writer.sent[2])
    verdict = exchange.judge()
    # The second copy is a customer message too, and no reply names it.
    assert verdict.counts == Counter({"duplicated": 1, "unanswered": 1}), verdict.table()


def test_an_unanswered_mail() -> None:
    # Stored, but the AI's reply was never written: no reply names it, and no mail answers it.
    exchange = clean_exchange()
    exchange.store(exchange.deliver("Can I change my address?"))
    verdict = exchange.judge()
    assert verdict.counts == Counter({"unanswered": 1, "no reply mail": 1}), verdict.table()


def test_an_answer_that_never_reached_the_customer() -> None:
    # The reply to mail 1 is stored and its job says sent, but the SMTP server never accepted it. Mail 1
    # still reads as answered (the reply to mail 2 names a later mail), so only delivery fails.
    exchange = clean_exchange()
    exchange.mails.remove(exchange.mail_of(1))
    verdict = exchange.judge()
    assert verdict.counts == Counter({"not delivered": 1}), verdict.table()


def test_a_reply_still_in_the_outbox() -> None:
    exchange = clean_exchange()
    job = exchange.jobs[str(exchange.reply(2)["_id"])][0]
    job |= {"state": "pending", "provider_message_id": None}
    exchange.mails.remove(next(m for m in exchange.mails if m.message_id.startswith("reply6")))
    verdict = exchange.judge()
    assert verdict.counts == Counter({"not sent": 1, "not delivered": 1, "no reply mail": 1}), verdict.table()


def test_a_resend_under_the_same_message_id_is_counted_not_failed() -> None:
    # The gateway was killed after the SMTP server's 250 and before the outbox's "sent": the retry carries
    # the same Message-ID (derived from the job), so the customer's client shows the mail once.
    exchange = clean_exchange()
    exchange.mails.insert(2, exchange.mail_of(0))
    verdict = exchange.judge()
    assert verdict.ok, verdict.table()
    assert (verdict.resent, verdict.delivered) == (1, 3)
    assert "resent after a crash (same Message-ID, client shows once): 1" in verdict.table()


def test_a_doubled_answer_under_another_message_id() -> None:
    # The same answer to mail 0 mailed twice under two Message-IDs: the customer reads it twice.
    exchange = clean_exchange()
    first = exchange.mail_of(0)
    exchange.mails.insert(1, replace(first, message_id="other@shop.example"))
    verdict = exchange.judge()
    assert verdict.counts == Counter({"delivered twice": 1}), verdict.table()
    assert verdict.resent == 0


def test_two_replies_to_one_mail() -> None:
    # The AI answered mail 2 twice (two stored replies, each mailed): the database's double.
    exchange = clean_exchange()
    exchange.answer(exchange.customer_message(2), "And one more thing.", in_reply_to=exchange.writer.sent[2].message_id)
    verdict = exchange.judge()
    assert verdict.counts == Counter({"answered twice": 1}), verdict.table()


def test_a_stray_mail_and_a_reply_threaded_backwards() -> None:
    exchange = clean_exchange()
    exchange.mails.append(Captured("spam@shop.example", (exchange.writer.address,), "", "Unrelated"))
    # The answer to mail 2 names mail 1: the thread went back.
    index = exchange.mails.index(exchange.mail_of(2))
    exchange.mails[index] = replace(exchange.mails[index], in_reply_to=exchange.writer.sent[1].message_id)
    verdict = exchange.judge()
    assert verdict.counts == Counter({"stray message": 1, "threading": 1, "no reply mail": 1}), verdict.table()


def test_mail_after_a_handoff_is_the_peoples_to_answer() -> None:
    exchange = clean_exchange()
    exchange.reply(2)["meta"]["decision"] = {"action": "handoff"}
    exchange.store(exchange.deliver("Hello? Anyone there?"))
    verdict = exchange.judge()
    assert verdict.ok, verdict.table()


def test_a_mail_the_mailbox_never_took_is_not_lost() -> None:
    exchange = clean_exchange()
    n = len(exchange.writer.sent)
    exchange.writer.sent.append(
        MailSent(exchange.writer.address, "refused@customer.example", "Hi", n, errors=["DovecotError"] * 3)
    )
    assert exchange.judge().ok


def test_a_reply_as_the_adapter_mails_it_reads_as_its_job() -> None:
    # The plain-text part of a composed reply (quoted-printable for long and non-ASCII lines, CRLF line ends)
    # compares equal to the job's text once whitespace is normalized.
    text = "Grüße! " + "Our returns policy, in full: " * 8 + "\n\nSecond paragraph.\n- a list\n- of items "
    mail = compose(
        sender=Address("Shop Support", "support", "shop.example"),
        to="chaos0@customer.example",
        subject="Where is my order?",
        text=text,
        msg_id="<abc123@shop.example>",
        in_reply_to="mail0@customer.example",
        automatic=True,
        date=datetime(2026, 12, 3, tzinfo=UTC),
    )
    raw = mail.as_bytes().replace(b"\n", b"\r\n")
    parsed = email.message_from_bytes(raw, policy=policy.default)
    seen = captured(ReceivedMail("support@shop.example", ["Chaos0@customer.example"], raw, parsed, "gateway", True))  # type: ignore[arg-type]
    assert seen == Captured(
        "abc123@shop.example", ("chaos0@customer.example",), "mail0@customer.example", normalized(text)
    )
    assert bare(" <x@y> ") == "x@y"
