"""Email in from a real IMAP server (Dovecot, started by the tests): IDLE and polling, the mail marked
processed only once stored, the UIDVALIDITY/UID position across restarts, STARTTLS, and a server that goes
away. Replies go to the real SMTP server (aiosmtpd)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from channels.email.channel import EmailChannel
from channels.email.mailbox import Mailbox
from channels.email.settings import EmailSettings
from tests.conftest import GatewayFactory, RunningGateway
from tests.helpers import eventually
from tests.integration.email_desk import customer_mail, email_settings, imap_settings
from tests.mailservers.certs import MailCerts
from tests.mailservers.dovecot import Dovecot
from tests.mailservers.smtp import SmtpServer


async def _start(
    gateway_factory: GatewayFactory, smtp: SmtpServer, certs: MailCerts, server: Dovecot, **kw: Any
) -> RunningGateway:
    gateway = await gateway_factory(
        **email_settings(smtp, certs, email_inbound_secret="", **imap_settings(server, **kw))
    )
    channel = gateway.runtime.channels["email"]
    assert isinstance(channel, EmailChannel) and channel.mailbox is not None
    await eventually(channel.mailbox.connected.is_set, timeout=20)
    return gateway


async def _position(gateway: RunningGateway) -> dict[str, Any]:
    store = gateway.runtime.store
    assert store is not None
    return await store.db["channel_state"].find_one({"_id": {"$regex": "^email-imap:"}}) or {}


async def _customer_messages(gateway: RunningGateway) -> int:
    store = gateway.runtime.store
    assert store is not None
    return await store.messages.count_documents({"author": "customer"})


async def test_idle_picks_up_new_mail_answers_it_and_flags_it_read_once_stored(
    gateway_factory: GatewayFactory, smtp: SmtpServer, mail_certs: MailCerts, dovecot: Dovecot
) -> None:
    gateway = await _start(gateway_factory, smtp, mail_certs, dovecot)
    uid = await dovecot.deliver(customer_mail("How long does delivery take?", message_id="<imap1@customer.example>"))
    [reply] = await smtp.wait_for(1, timeout=20)
    assert reply.message["In-Reply-To"] == "<imap1@customer.example>"
    assert "\\Seen" in await dovecot.flags(uid)
    position = await _position(gateway)
    assert position["last_uid"] == uid and position["uidvalidity"] == await dovecot.uidvalidity()
    # The same mail delivered again (a server's double delivery) is a new UID but the same Message-ID.
    again = await dovecot.deliver(customer_mail("How long does delivery take?", message_id="<imap1@customer.example>"))
    await eventually(lambda: _last_uid_is(gateway, again), timeout=20)
    assert await _customer_messages(gateway) == 1 and len(smtp.mails) == 1


async def _last_uid_is(gateway: RunningGateway, uid: int) -> bool:
    return (await _position(gateway)).get("last_uid") == uid


async def test_polling_without_idle_moves_processed_mail_to_its_folder(
    gateway_factory: GatewayFactory, smtp: SmtpServer, mail_certs: MailCerts, tmp_path: Any
) -> None:
    server = Dovecot(tmp_path / "no-idle", mail_certs, idle=False)
    await server.start()
    try:
        await server.create_folder("Processed")
        gateway = await _start(
            gateway_factory, smtp, mail_certs, server, imap_poll_seconds=1, imap_processed_folder="Processed"
        )
        for n in range(3):
            await server.deliver(customer_mail(f"Question {n}: do you ship to Norway?", subject=f"Shipping {n}"))
        await smtp.wait_for(3, timeout=20)
        await eventually(lambda: _counts(server, inbox=0, processed=3), timeout=20)
        assert await _customer_messages(gateway) == 3
    finally:
        await server.stop()


async def _counts(server: Dovecot, *, inbox: int, processed: int) -> bool:
    return (await server.message_count("INBOX"), await server.message_count("Processed")) == (inbox, processed)


async def test_a_restart_resumes_from_the_position_and_a_new_uidvalidity_rereads_without_doubling(
    gateway_factory: GatewayFactory, smtp: SmtpServer, mail_certs: MailCerts, dovecot: Dovecot
) -> None:
    # Mail read by a person before the gateway ever ran is not the gateway's to answer; unread mail is.
    await dovecot.deliver(customer_mail("Old, already handled", subject="Old"), flags=["\\Seen"])
    await dovecot.deliver(customer_mail("Waiting since yesterday: where is my refund?", subject="Refund"))
    first = await _start(gateway_factory, smtp, mail_certs, dovecot)
    await smtp.wait_for(1, timeout=20)
    await eventually(lambda: _last_uid_is(first, 2), timeout=20)
    await first.close()
    # Mail that arrives while the gateway is down is read when it is back, once.
    for n in range(2):
        await dovecot.deliver(customer_mail(f"While you were down {n}", subject=f"Down {n}"))
    second = await _start(gateway_factory, smtp, mail_certs, dovecot)
    await smtp.wait_for(3, timeout=20)
    await eventually(lambda: _last_uid_is(second, 4), timeout=20)
    # The server rebuilds the folder: UIDs mean nothing now. Unread mail is read; nothing is answered twice.
    await dovecot.recreate_folder("INBOX")
    await dovecot.deliver(customer_mail("After the rebuild", subject="Rebuild"))
    await smtp.wait_for(4, timeout=30)
    position = await _position(second)
    assert position["uidvalidity"] == await dovecot.uidvalidity()
    assert await _customer_messages(second) == 4
    assert sorted(m.message["Subject"] for m in smtp.mails) == ["Re: Down 0", "Re: Down 1", "Re: Rebuild", "Re: Refund"]


async def test_starttls_on_the_plain_port_and_a_server_restart_under_the_gateway(
    gateway_factory: GatewayFactory, smtp: SmtpServer, mail_certs: MailCerts, dovecot: Dovecot
) -> None:
    gateway = await _start(gateway_factory, smtp, mail_certs, dovecot, tls="starttls")
    await dovecot.deliver(customer_mail("Over STARTTLS", subject="TLS"))
    await smtp.wait_for(1, timeout=20)
    await dovecot.restart()  # the IDLE connection drops; the gateway reconnects by itself
    await dovecot.deliver(customer_mail("After the server restart", subject="Restart"))
    await smtp.wait_for(2, timeout=30)
    assert await _customer_messages(gateway) == 2


async def test_a_wrong_password_is_retried_and_logged_never_a_crash(
    gateway_factory: GatewayFactory, smtp: SmtpServer, mail_certs: MailCerts, dovecot: Dovecot, caplog: Any
) -> None:
    gateway = await gateway_factory(
        **email_settings(smtp, mail_certs, email_inbound_secret="", **imap_settings(dovecot, imap_password="wrong"))
    )
    await eventually(lambda: any("imap_failed" in r.getMessage() for r in caplog.records), timeout=20)
    async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
        assert response.status == 200


async def test_a_mail_over_email_max_mb_is_stored_from_its_headers_with_a_note_and_kept_in_the_mailbox(
    gateway_factory: GatewayFactory, smtp: SmtpServer, mail_certs: MailCerts, dovecot: Dovecot
) -> None:
    gateway = await _start(gateway_factory, smtp, mail_certs, dovecot, email_max_mb=0.05)
    mail = EmailMessage()
    mail["From"] = "Dana <dana@customer.example>"
    mail["To"] = "support@shop.example"
    mail["Subject"] = "Scans of my invoice"
    mail["Message-ID"] = "<scans@customer.example>"
    mail.set_content("Please see the scans attached.")
    mail.add_attachment(b"%PDF-1.4\n" + b"0" * 200_000, maintype="application", subtype="pdf", filename="scan.pdf")
    uid = await dovecot.deliver(mail.as_bytes())
    await eventually(lambda: _last_uid_is(gateway, uid), timeout=20)
    store = gateway.runtime.store
    assert store is not None
    stored = await store.messages.find_one({"author": "customer"})
    assert stored["text"].startswith("Scans of my invoice")
    assert "over the 51 KB limit" in stored["text"] and "still in the mailbox" in stored["text"]
    assert "\\Seen" in await dovecot.flags(uid) and await dovecot.message_count() == 1


async def test_a_mail_that_cannot_be_stored_is_left_unread_after_three_tries_and_the_rest_goes_on(
    mongo: Any, db_name: str, mail_certs: MailCerts, dovecot: Dovecot, caplog: Any
) -> None:
    settings = EmailSettings(
        _env_file=None, email_from="support@shop.example", smtp_host="localhost",
        email_tls_ca_file=str(mail_certs.ca_file), **imap_settings(dovecot),
    )  # fmt: skip
    handled: list[bytes] = []

    async def handle(raw: bytes, **kw: Any) -> str:
        if b"Subject: Poison" in raw:
            raise ValueError("a mail this gateway cannot store")
        handled.append(raw)
        return "stored"

    poison = await dovecot.deliver(customer_mail("?", subject="Poison"))
    good = await dovecot.deliver(customer_mail("Where is my parcel?", subject="Parcel"))
    mailbox = Mailbox(settings, handle, mongo[db_name]["channel_state"])
    mailbox.start()
    try:
        await eventually(lambda: len(handled) == 1, timeout=30)
        assert "\\Seen" in await dovecot.flags(good) and "\\Seen" not in await dovecot.flags(poison)
        assert any("imap_mail_not_stored" in r.getMessage() for r in caplog.records)
    finally:
        await mailbox.stop()
