"""Email customers for the crash test: people writing to the support mailbox, which the gateway reads over IMAP.

The mailbox is a real Dovecot (tests/mailservers/dovecot.py) and our replies go through a real SMTP server
(aiosmtpd, tests/mailservers/smtp.py), both run by the driver process, so they outlive every gateway and
database kill, as a mail provider would. Each customer writes from its own address, in one thread: the
first mail's subject is its first question; every later mail answers the latest reply it got (In-Reply-To,
References, "Re:" subject), or continues its own last mail when no reply came, as a mail client does.

Mail "arrives" by APPEND into the INBOX (`Dovecot.deliver`), as a delivery agent files it. Unlike a webhook,
that never depends on the gateway: a delivered mail is in the mailbox whether the gateway is up or not, so
every delivered mail counts as acknowledged (by the mailbox) and must be stored and answered. A customer
writes its next mail once it sees our answer to this one (a mail the SMTP server accepted for its address
whose In-Reply-To names it), or after the answer wait. A person never sends the same mail twice: with no
answer, it writes its next one (the loop is tests/chaos/provider_customers.py's, with one delivery).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aioimaplib

from gateway.store import utcnow
from tests.chaos.provider_customers import ProviderCustomer
from tests.mailservers.dovecot import Dovecot, DovecotError
from tests.mailservers.smtp import ReceivedMail, SmtpServer

SUPPORT = "support@shop.example"
SUPPORT_FROM = f"Shop Support <{SUPPORT}>"  # EMAIL_FROM
CUSTOMER_DOMAIN = "customer.example"
DELIVERY_ATTEMPTS = 3  # a delivery agent retries a failed APPEND (Dovecot busy), with the same Message-ID
DELIVERY_PAUSE_SECONDS = 1.0
MAX_REFERENCES = 10  # the thread's root and the latest ids, as clients cut References


def email_address(index: int) -> str:
    """Email customer `index`'s own address: chaos0@customer.example, ..."""
    return f"chaos{index}@{CUSTOMER_DOMAIN}"


def bare(message_id: str) -> str:
    """A Message-ID without its angle brackets (and spaces): how the gateway keys it."""
    return message_id.strip().strip("<>").strip()


def in_reply_to(mail: ReceivedMail) -> str:
    return bare(str(mail.message.get("In-Reply-To") or ""))


@dataclass(slots=True)
class MailSent:
    """One mail a customer wrote, and how its delivery into the mailbox went."""

    address: str
    message_id: str  # without angle brackets
    text: str
    order: int  # position in this customer's send order
    uids: list[int] = field(default_factory=list)  # UIDs the mailbox gave it (one; more if an APPEND was retried)
    errors: list[str] = field(default_factory=list)  # APPENDs that failed: why
    answered: bool = False  # the customer saw an answer before moving on

    @property
    def delivered(self) -> bool:
        """In the mailbox: from here on it is the gateway's to store and answer."""
        return bool(self.uids)

    @property
    def key(self) -> str:
        """The gateway's idempotency key for it (channels/email/channel.py)."""
        return f"email:{self.message_id}"


class EmailCustomer(ProviderCustomer[MailSent]):
    """One person mailing the support address, asking questions one at a time in one thread."""

    question_offset = 2

    def __init__(
        self,
        index: int,
        mailbox: Dovecot,
        smtp: SmtpServer,
        questions: tuple[str, ...],
        rng: random.Random,
        *,
        answer_wait: float,
        think: tuple[float, float],
    ) -> None:
        super().__init__(index, questions, rng, answer_wait=answer_wait, think=think, max_deliveries=1)
        self.address = email_address(index)
        self.name = f"Chaos Customer {index}"
        self.mailbox = mailbox
        self.smtp = smtp
        self.failures: Counter[str] = Counter()  # failed APPENDs by exception name
        self._subject = ""
        self._raw = b""  # the mail being asked, as delivered

    def received(self) -> list[ReceivedMail]:
        """What reached the customer's address, in the order the SMTP server accepted it."""
        return self.smtp.mails_to(self.address)

    def _write(self, n: int, text: str) -> MailSent:
        mail = EmailMessage()
        mail["From"] = f"{self.name} <{self.address}>"
        mail["To"] = SUPPORT_FROM
        mail["Date"] = format_datetime(utcnow())
        message_id = make_msgid(idstring=f"chaos{self.index}.{n}", domain=CUSTOMER_DOMAIN)
        mail["Message-ID"] = message_id
        if not self._subject:
            self._subject = text  # a first mail's subject is often the question itself
            mail["Subject"] = text
        else:
            mail["Subject"] = f"Re: {self._subject}"
            parent, chain = self._thread()
            mail["In-Reply-To"] = f"<{parent}>"
            mail["References"] = " ".join(f"<{ref}>" for ref in chain)
        mail.set_content(text)
        self._raw = mail.as_bytes()
        return MailSent(self.address, bare(message_id), text, n)

    def _thread(self) -> tuple[str, list[str]]:
        """What the next mail answers (the latest reply received, else the customer's own last mail) and
        its References: the thread's root, then the latest ids."""
        replies = self.received()
        if replies:
            latest = replies[-1].message
            parent = bare(str(latest["Message-ID"]))
            chain = [bare(r) for r in str(latest.get("References") or "").split()]
        else:
            parent = self.sent[-1].message_id
            chain = [m.message_id for m in self.sent[:-1]]
        chain = list(dict.fromkeys([*chain, parent]))
        if len(chain) > MAX_REFERENCES:
            chain = chain[:1] + chain[-(MAX_REFERENCES - 1) :]
        return parent, chain

    def _answer_shown(self, message: MailSent) -> Callable[[], bool]:
        # Replies answer the customer's latest mail in the thread at the time they are sent, so a mail
        # naming this one is its answer (or a late answer to an earlier one, sent after this one was
        # stored: as a person reads it, the thread has moved on either way).
        return lambda: any(in_reply_to(mail) == message.message_id for mail in self.received())

    async def _deliver(self, message: MailSent, delivery: int) -> None:
        """APPEND the mail to the INBOX, retried as a delivery agent does should the server not take it."""
        for attempt in range(DELIVERY_ATTEMPTS):
            if attempt:
                await asyncio.sleep(DELIVERY_PAUSE_SECONDS)
            try:
                message.uids.append(await self.mailbox.deliver(self._raw))
                return
            except (DovecotError, aioimaplib.AioImapException, OSError, TimeoutError) as exc:
                message.errors.append(type(exc).__name__)
                self.failures[type(exc).__name__] += 1
