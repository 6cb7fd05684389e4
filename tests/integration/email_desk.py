"""Fixtures for gateways that serve email: a real SMTP server (aiosmtpd, STARTTLS and AUTH) receives our
replies, mail comes in through POST /email/inbound (as SendGrid or Mailgun post it) or from a real IMAP
server (Dovecot, tests/mailservers/dovecot.py) the gateway reads.

Registered for tests/integration and tests/contract by their conftest files.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator, Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.store import utcnow
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.slack_api import FakeSlackApi
from tests.integration.slack_desk import Desk, start_desk
from tests.mailservers.certs import MailCerts, make_certs
from tests.mailservers.dovecot import Dovecot
from tests.mailservers.smtp import SmtpServer

SUPPORT = "support@shop.example"
SUPPORT_FROM = f"Shop Support <{SUPPORT}>"
INBOUND_SECRET = "inbound-test-secret"
CUSTOMER = "dana@customer.example"


@pytest.fixture(scope="session")
def mail_certs(tmp_path_factory: pytest.TempPathFactory) -> MailCerts:
    return make_certs(tmp_path_factory.mktemp("mail-certs"))


@pytest.fixture
def smtp(mail_certs: MailCerts) -> Iterator[SmtpServer]:
    server = SmtpServer(mail_certs, mode="starttls").start()
    yield server
    server.stop()


@pytest.fixture
async def dovecot(tmp_path: Path, mail_certs: MailCerts) -> AsyncIterator[Dovecot]:
    server = Dovecot(tmp_path / "dovecot", mail_certs)
    await server.start()
    yield server
    await server.stop()


def imap_settings(server: Dovecot, *, tls: str = "tls", **overrides: Any) -> dict[str, Any]:
    """Read `server`'s INBOX: over implicit TLS by default, or STARTTLS on the plain port."""
    return {
        "imap_host": "localhost",  # the name on the tests' certificate
        "imap_port": server.tls_port if tls == "tls" else server.port,
        "imap_tls": tls,
        "imap_username": server.user,
        "imap_password": server.password,
        **overrides,
    }


def email_settings(smtp: SmtpServer, certs: MailCerts, **overrides: Any) -> dict[str, Any]:
    return {
        "email_from": SUPPORT_FROM,
        "email_inbound_secret": INBOUND_SECRET,
        "email_tls_ca_file": str(certs.ca_file),
        "smtp_host": smtp.server_hostname,
        "smtp_port": smtp.port,
        "smtp_username": "gateway",
        "smtp_password": "smtp-test-password",
        "smtp_tls": "starttls",
        **overrides,
    }


async def start_email(gateway_factory: GatewayFactory, smtp: SmtpServer, certs: MailCerts, **kw: Any) -> RunningGateway:
    return await gateway_factory(**email_settings(smtp, certs, **kw))


async def start_email_desk(
    gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path, smtp: SmtpServer, certs: MailCerts, **kw
) -> Desk:
    return await start_desk(gateway_factory, slack, routing_file, **email_settings(smtp, certs, **kw))


def customer_mail(
    text: str,
    *,
    subject: str = "Question about my order",
    sender: str = f"Dana Customer <{CUSTOMER}>",
    message_id: str | None = None,
    in_reply_to: str = "",
    references: Sequence[str] = (),
    html: str = "",
    headers: dict[str, str] | None = None,
) -> bytes:
    """A mail as a customer's client writes it."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = SUPPORT_FROM
    mail["Subject"] = subject
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = message_id or make_msgid(domain="customer.example")
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(text)
    if html:
        mail.add_alternative(html, subtype="html")
    return mail.as_bytes()


def reply_to(ours: EmailMessage, text: str, **kw: Any) -> bytes:
    """The customer answering one of our mails, as their client threads it."""
    refs = [*str(ours.get("References", "")).split(), str(ours["Message-ID"])]
    return customer_mail(
        text, subject=f"Re: {ours['Subject'].removeprefix('Re: ')}", in_reply_to=str(ours["Message-ID"]),
        references=refs, **kw,
    )  # fmt: skip


async def post_mail(
    gateway: RunningGateway,
    raw: bytes,
    *,
    form: str = "",
    secret: str | None = INBOUND_SECRET,
    user: str = "sendgrid",
) -> tuple[int, str]:
    """POST /email/inbound: the raw body, or the form field `form` ("email": SendGrid, "body-mime": Mailgun)."""
    headers = {}
    if secret is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
    url = f"{gateway.base_url}/email/inbound" + ("/mime" if form == "body-mime" else "")
    if form:
        data = aiohttp.FormData()
        data.add_field("from", "someone")  # the providers' parsed fields come along; only the raw mail counts
        data.add_field(form, raw.decode("utf-8", "surrogateescape"))
        body: Any = data
    else:
        body, headers["Content-Type"] = raw, "message/rfc822"
    async with gateway.http.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


@pytest.fixture
async def email_gateway(gateway_factory: GatewayFactory, smtp: SmtpServer, mail_certs: MailCerts) -> RunningGateway:
    return await start_email(gateway_factory, smtp, mail_certs)


async def conversations(gateway: RunningGateway) -> list[dict[str, Any]]:
    store = gateway.runtime.store
    assert store is not None
    return await store.conversations.find({}).to_list()
