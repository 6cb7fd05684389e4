"""Email end to end through POST /email/inbound: a real SMTP server (aiosmtpd, STARTTLS and AUTH, its
certificate verified against the tests' CA) receives the replies; a real database; mail as clients and
forwarding providers send it."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from bson import ObjectId

from gateway.store import utcnow
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import eventually
from tests.integration.email_desk import (
    CUSTOMER,
    SUPPORT,
    conversations,
    customer_mail,
    post_mail,
    reply_to,
    start_email,
    start_email_desk,
)
from tests.integration.slack_desk import PNG, texts
from tests.mailservers.certs import MailCerts
from tests.mailservers.smtp import SmtpServer

DATA = Path(__file__).parent.parent / "data" / "email"
HANDOFF = "I want to talk to a human please"


def bounce_of(ours: EmailMessage) -> bytes:
    """A Postfix bounce (tests/data/email/dsn_bounce.eml) of one of our mails: 550 5.1.1, user unknown."""
    return (DATA / "dsn_bounce.eml").read_bytes().replace(b"<reply-1@support.example.com>", ours["Message-ID"].encode())


def _text(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return part.get_content()


async def test_a_mailed_question_is_answered_in_the_same_thread_and_the_reply_joins_it(
    email_gateway: RunningGateway, smtp: SmtpServer
) -> None:
    first = customer_mail("How long does delivery take?", message_id="<q1@customer.example>")
    assert await post_mail(email_gateway, first) == (200, '{"status": "stored"}')
    [sent] = await smtp.wait_for(1)
    mail = sent.message
    assert sent.tls and sent.authenticated_as == "gateway" and sent.rcpt_tos == [CUSTOMER]
    assert sent.mail_from == SUPPORT  # bounces come back to the support mailbox
    assert mail["Subject"] == "Re: Question about my order"
    assert mail["In-Reply-To"] == "<q1@customer.example>" and "<q1@customer.example>" in mail["References"]
    assert mail["Auto-Submitted"] == "auto-replied"  # an AI answer: autoresponders must not answer it
    assert str(mail["From"]) == f"Shop Support <{SUPPORT}>"
    assert "deliver" in _text(mail).lower()
    html = mail.get_body(("html",))
    assert html is not None and "<p>" in html.get_content()

    # The customer answers our mail: it joins the conversation, and our next reply names the whole chain.
    quote = "On Mon, 1 Dec 2026 at 10:00, Shop Support <support@shop.example> wrote:\n> old text"
    second = reply_to(mail, f"Thanks! And do you ship to Canada?\n\n{quote}")
    assert (await post_mail(email_gateway, second))[0] == 200
    mails = await smtp.wait_for(2)
    assert len(await conversations(email_gateway)) == 1
    latest = mails[1].message
    assert latest["In-Reply-To"] != mail["In-Reply-To"]
    refs = latest["References"].split()
    assert refs[0] == "<q1@customer.example>" and mail["Message-ID"] in refs
    store = email_gateway.runtime.store
    customer = await store.messages.find({"author": "customer"}).sort("seq", 1).to_list()
    # What the AI and the agents see has the quote cut; the whole mail is kept as received.
    assert customer[1]["text"] == "Thanks! And do you ship to Canada?"
    assert customer[0]["text"].startswith("Question about my order")  # a first mail's subject is read too
    original = customer[1]["origin"]["original_file_id"]
    _doc, raw = await email_gateway.runtime.files.read(original)
    assert raw == second


async def test_sendgrid_and_mailgun_forms_and_a_redelivery_store_the_mail_once(
    email_gateway: RunningGateway, smtp: SmtpServer
) -> None:
    raw = customer_mail("Où est ma commande ? Ça fait une semaine.", subject="Commande n° 4521")
    assert (await post_mail(email_gateway, raw, form="email"))[0] == 200  # SendGrid Inbound Parse, raw mode
    assert await post_mail(email_gateway, raw, form="body-mime") == (200, '{"status": "duplicate"}')  # Mailgun
    assert (await post_mail(email_gateway, raw))[0] == 200
    await smtp.wait_for(1)
    store = email_gateway.runtime.store
    assert await store.messages.count_documents({"author": "customer"}) == 1
    stored = await store.messages.find_one({"author": "customer"})
    assert "Où est ma commande" in stored["text"]
    assert len(smtp.mails) == 1


async def test_wrong_or_missing_credentials_and_garbage_get_a_clear_4xx_and_store_nothing(
    email_gateway: RunningGateway, smtp: SmtpServer
) -> None:
    raw = customer_mail("Hello")
    assert (await post_mail(email_gateway, raw, secret=None))[0] == 401
    assert (await post_mail(email_gateway, raw, secret="guessed"))[0] == 401
    url = f"{email_gateway.base_url}/email/inbound"
    auth = {"Authorization": "Basic " + __import__("base64").b64encode(b"x:inbound-test-secret").decode()}
    for data, ctype, status in (
        (b'{"mail": 1}', "application/json", 415),
        (b"   ", "message/rfc822", 400),
        (b"from=someone&subject=hi", "application/x-www-form-urlencoded", 400),
    ):
        async with email_gateway.http.post(url, data=data, headers={**auth, "Content-Type": ctype}) as response:
            assert response.status == status, (ctype, await response.text())
    assert await email_gateway.runtime.store.messages.count_documents({}) == 0
    assert smtp.mails == []


async def test_autoreplies_lists_our_own_mail_and_bounces_are_recorded_and_never_answered(
    email_gateway: RunningGateway, smtp: SmtpServer
) -> None:
    assert (await post_mail(email_gateway, customer_mail("Where is my parcel?")))[0] == 200
    [ours] = await smtp.wait_for(1)
    software = [
        customer_mail("I am away until Monday.", subject="Out of office", headers={"Auto-Submitted": "auto-replied"}),
        customer_mail("Weekly deals!", subject="Deals", headers={"Precedence": "bulk"}),
        customer_mail("I am on holiday", subject="Automatic reply: Re: Where is my parcel?"),
        customer_mail("Loop?", sender=f"Shop Support <{SUPPORT}>"),
        customer_mail("Vacation", headers={"X-Autoreply": "yes"}),
    ]
    for raw in software:
        status, body = await post_mail(email_gateway, raw)
        assert status == 200 and "stored" not in body, body
    bounce = bounce_of(ours.message)
    assert await post_mail(email_gateway, bounce) == (200, '{"status": "bounce"}')
    store = email_gateway.runtime.store
    kinds = sorted(d["kind"] for d in await store.db["email_received"].find({}).to_list())
    assert kinds == ["auto_reply", "auto_reply", "auto_reply", "bounce", "list", "own"]
    ai = await store.messages.find_one({"author": "ai"})

    async def failed() -> bool:
        found = await store.messages.find_one({"_id": ai["_id"]})
        return (found.get("delivery") or {}).get("0", {}).get("status") == "failed"

    await eventually(failed)
    assert "does not exist" in (await store.messages.find_one({"_id": ai["_id"]}))["delivery"]["0"]["problem"]
    assert len(smtp.mails) == 1 and await store.messages.count_documents({"author": "customer"}) == 1


async def test_an_email_handoff_round_trip_mail_in_slack_card_agent_reply_mail_out_in_the_thread(
    gateway_factory: GatewayFactory,
    smtp: SmtpServer,
    mail_certs: MailCerts,
    slack: FakeSlackApi,
    routing_file: Path,
) -> None:
    desk = await start_email_desk(
        gateway_factory, slack, routing_file, smtp, mail_certs, email_reply_to="Help desk <help@shop.example>"
    )
    raw = customer_mail(
        f"{HANDOFF}. My order 4521 arrived damaged.\n\n--\nDana Customer\nSent from my phone",
        subject="Damaged order",
        message_id="<damaged@customer.example>",
    )
    assert (await post_mail(desk.gateway, raw))[0] == 200
    [conversation] = await conversations(desk.gateway)
    channel, thread_ts = await desk.card(str(conversation["_id"]))
    card = str(slack.message(channel, thread_ts).blocks)
    assert "Email" in card and "Sent from my phone" not in card  # the signature is cut from what agents read
    [notice] = await smtp.wait_for(1)  # the customer is told what happens next, in the thread
    assert notice.message["In-Reply-To"] == "<damaged@customer.example>"
    file = slack.add_user_file("label.png", "image/png", PNG, user="U0DANA")
    agent = desk.agent_says(channel, thread_ts, "U0DANA", "So sorry! A replacement is on its way.", files=[file])
    assert await desk.event(agent) == 200
    mails = await smtp.wait_for(2)
    reply = mails[1].message
    assert "replacement is on its way" in _text(reply)
    assert reply["In-Reply-To"] == "<damaged@customer.example>" and reply["Subject"] == "Re: Damaged order"
    assert reply["Auto-Submitted"] is None  # a person wrote it
    assert reply["Reply-To"] == "Help desk <help@shop.example>"
    assert reply["From"].addresses[0].addr_spec == SUPPORT and "(Shop Support)" in str(reply["From"])
    assert [a.get_filename() for a in reply.iter_attachments()] == ["label.png"]
    # The customer answers the agent: it lands in the same Slack thread.
    assert (await post_mail(desk.gateway, reply_to(reply, "Thank you, that is great")))[0] == 200
    await eventually(lambda: "that is great" in texts(slack.thread(channel, thread_ts)))
    # The agent's mail bounces: the thread says so.
    bounce = bounce_of(reply)
    assert (await post_mail(desk.gateway, bounce))[0] == 200
    await eventually(lambda: "bounced" in texts(slack.thread(channel, thread_ts)))


async def test_smtp_4xx_is_retried_and_5xx_is_permanent_and_shown_in_the_thread(
    gateway_factory: GatewayFactory,
    smtp: SmtpServer,
    mail_certs: MailCerts,
    slack: FakeSlackApi,
    routing_file: Path,
) -> None:
    desk = await start_email_desk(
        gateway_factory, slack, routing_file, smtp, mail_certs, outbox_backoff_base_seconds=0.05
    )
    smtp.refuse_data(451, times=2)  # greylisting: "try again later", twice
    assert (await post_mail(desk.gateway, customer_mail(HANDOFF)))[0] == 200
    await smtp.wait_for(1)
    [conversation] = await conversations(desk.gateway)
    channel, thread_ts = await desk.card(str(conversation["_id"]))
    smtp.refuse(CUSTOMER, 550, "5.1.1 User unknown")
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "Could you send a photo?")) == 200
    await eventually(lambda: "5.1.1 User unknown" in texts(slack.thread(channel, thread_ts)))
    assert len(smtp.mails) == 1


async def test_a_mail_without_thread_headers_joins_by_sender_and_subject_else_starts_a_new_conversation(
    email_gateway: RunningGateway, smtp: SmtpServer
) -> None:
    assert (await post_mail(email_gateway, customer_mail("Where is my parcel?", subject="Parcel 77")))[0] == 200
    await smtp.wait_for(1)
    # Typed "Re:" by hand, no In-Reply-To: same sender, same subject once normalized.
    assert (await post_mail(email_gateway, customer_mail("Any news?", subject="RE: AW: Parcel 77")))[0] == 200
    assert (await post_mail(email_gateway, customer_mail("New topic: invoices", subject="Invoice copy")))[0] == 200
    other = customer_mail("Hi", subject="Parcel 77", sender="Eve <eve@elsewhere.example>")
    assert (await post_mail(email_gateway, other))[0] == 200
    await smtp.wait_for(4)
    found = await conversations(email_gateway)
    assert len(found) == 3
    counts = sorted(
        [await email_gateway.runtime.store.messages.count_documents({"conversation_id": c["_id"]}) for c in found]
    )
    assert counts == [2, 2, 4]


async def test_every_kind_of_broken_or_odd_mail_is_stored_with_what_could_be_read_never_a_crash(
    email_gateway: RunningGateway, smtp: SmtpServer
) -> None:
    outcomes = {}
    for path in sorted(DATA.glob("*.eml")):
        status, body = await post_mail(email_gateway, path.read_bytes())
        assert status == 200, (path.name, body)
        outcomes[path.name] = body
    assert "stored" in outcomes["no_from_no_message_id.eml"] and "stored" in outcomes["broken_boundary.eml"]
    assert "list" in outcomes["list_mail.eml"] and "auto_reply" in outcomes["out_of_office.eml"]
    store = email_gateway.runtime.store

    async def stored(subject: str) -> dict:
        found = await store.messages.find_one({"origin.subject": subject, "author": "customer"})
        assert found is not None, subject
        return found

    scan = await stored("Scan from MFP-3F")  # a mail that is only a PDF
    assert [a["content_type"] for a in scan["attachments"]] == ["application/pdf"]
    assert (await stored("Lieferung nach Zürich – Frage zum Zoll"))["origin"]["from"] == "zoe.mueller@example.ch"
    unknown = await stored("Commande 9012")  # charset="x-unknown": read anyway, and said so
    assert unknown["text"].strip() and any("x-unknown" in n for n in unknown["origin"]["notes"])
    no_from = await stored("help")  # no From, no Message-ID: stored under an id derived from its bytes
    assert no_from["origin"]["from"] == "" and no_from["origin"]["provider_message_id"].endswith("@missing")
    assert (await stored("Refund"))["text"] and (await stored("Refund (again)"))["text"]
    assert await store.messages.count_documents({"author": "customer"}) >= 14


async def test_a_20_mb_mail_is_stored_its_oversized_file_named_in_the_text(
    email_gateway: RunningGateway, smtp: SmtpServer
) -> None:
    mail = EmailMessage()
    mail["From"] = f"Dana <{CUSTOMER}>"
    mail["To"] = SUPPORT
    mail["Subject"] = "Video of the damage"
    mail["Message-ID"] = "<big@customer.example>"
    mail.set_content("Here is the video of the damaged box.")
    mail.add_attachment(bytes(range(256)) * (15 * 4096), maintype="video", subtype="mp4", filename="damage.mp4")
    raw = mail.as_bytes()
    assert len(raw) > 19 * 1024 * 1024
    started = utcnow()
    assert (await post_mail(email_gateway, raw))[0] == 200
    stored = await email_gateway.runtime.store.messages.find_one({"author": "customer"})
    assert "damage.mp4 not received" in stored["text"] and "Here is the video" in stored["text"]
    assert (utcnow() - started).total_seconds() < 30


async def test_a_huge_text_is_cut_with_a_note_and_the_original_kept_whole(
    email_gateway: RunningGateway, smtp: SmtpServer
) -> None:
    body = "\n".join(f"Line {n}: the log output of my router, pasted in full." for n in range(4000))
    raw = customer_mail(body, subject="Router log")
    assert (await post_mail(email_gateway, raw))[0] == 200
    stored = await email_gateway.runtime.store.messages.find_one({"author": "customer"})
    assert len(stored["text"]) < 101_000 and stored["text"].endswith("[The mail's text was cut at 100,000 characters]")
    _doc, original = await email_gateway.runtime.files.read(stored["origin"]["original_file_id"])
    assert original == raw


async def test_an_original_stored_again_is_one_file_even_after_an_upload_that_died_half_way(
    email_gateway: RunningGateway, smtp: SmtpServer
) -> None:
    files, store = email_gateway.runtime.files, email_gateway.runtime.store
    raw = customer_mail("Where is my parcel?", message_id="<orig@customer.example>")
    first = await files.keep_original(raw, name="a.eml", content_type="message/rfc822", source="customer", key="k1")
    again = await files.keep_original(raw, name="a.eml", content_type="message/rfc822", source="customer", key="k1")
    assert first == again and await store.db["files.files"].count_documents({"metadata.original": True}) == 1
    # Chunks without a files document (an upload that died, or one still running in another process) are
    # left alone: this copy is stored under an id of its own, and reads back whole.
    half = await files.keep_original(b"x", name="b.eml", content_type="message/rfc822", source="customer", key="k2")
    await store.db["files.files"].delete_one({"_id": ObjectId(half)})
    other = await files.keep_original(raw, name="b.eml", content_type="message/rfc822", source="customer", key="k2")
    assert other != half and (await files.read(other))[1] == raw
    assert await store.db["files.chunks"].count_documents({"files_id": ObjectId(half)}) == 1
    # Through the channel: a mail posted twice keeps one original.
    assert (await post_mail(email_gateway, raw))[0] == 200
    assert (await post_mail(email_gateway, raw))[0] == 200
    assert await store.db["files.files"].count_documents({"metadata.original": True}) == 3  # k1, k2's, the mail


async def test_an_smtp_outage_delays_the_reply_and_never_drops_it(
    gateway_factory: GatewayFactory, smtp: SmtpServer, mail_certs: MailCerts
) -> None:
    gateway = await start_email(
        gateway_factory, smtp, mail_certs, outbox_backoff_base_seconds=0.1, outbox_backoff_max_seconds=0.5
    )
    smtp.stop()  # the relay is down: connection refused
    assert (await post_mail(gateway, customer_mail("Do you ship to Iceland?", subject="Iceland")))[0] == 200
    store = gateway.runtime.store

    async def retried() -> bool:
        job = await store.outbox.find_one({"channel": "email"})
        return job is not None and job["attempts"] >= 2 and "unreachable" in (job["last_error"] or "")

    await eventually(retried)
    smtp.restart()
    [reply] = await smtp.wait_for(1, timeout=20)
    assert reply.message["Subject"] == "Re: Iceland"

    async def sent() -> bool:
        return (await store.outbox.find_one({"channel": "email"}))["state"] == "sent"

    await eventually(sent)  # the server's 250 comes before the outbox writes it down
    assert len(smtp.mails) == 1
