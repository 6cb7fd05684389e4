"""Inbound mail as clients really send it (tests/data/email/*.eml) through parse_mail, html_to_text and
strip_quotes: text, the customer's own words, names, charsets, attachments, notes and auto-reply kinds."""

from __future__ import annotations

import base64
import email
import os
import time
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest

from channels.email.html_text import html_to_text, html_to_visible_text
from channels.email.parsing import MailAttachment, ParsedMail, normalize_subject, parse_mail, synthetic_message_id
from channels.email.quotes import strip_quotes

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "email"


def raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def load(name: str) -> ParsedMail:
    return parse_mail(raw(name))


def mail(*headers: str, body: str = "Hello", content_type: str = "text/plain; charset=utf-8") -> bytes:
    lines = [*headers, "MIME-Version: 1.0", f"Content-Type: {content_type}", "", body, ""]
    return "\r\n".join(lines).encode("utf-8")


CLEAN = [
    "gmail_reply.eml",
    "outlook_reply.eml",
    "apple_mail_reply.eml",
    "html_only_marketing.eml",
    "attachment_rfc2231.eml",
    "attachment_rfc2047.eml",
    "inline_image.eml",
    "iso_8859_1.eml",
    "shift_jis.eml",
    "raw_utf8_subject.eml",
    "attachment_only.eml",
    "out_of_office.eml",
    "list_mail.eml",
    "dsn_bounce.eml",
    "outlook_reply_de.eml",
]


def test_every_sample_is_covered() -> None:
    broken = {"unknown_charset.eml", "broken_boundary.eml", "unclosed_boundary.eml", "no_from_no_message_id.eml"}
    assert {p.name for p in SAMPLES.glob("*.eml")} == set(CLEAN) | broken


@pytest.mark.parametrize("name", CLEAN)
def test_clean_samples_parse_without_notes(name: str) -> None:
    parsed = load(name)
    assert parsed.notes == ()
    assert parsed.message_id and "<" not in parsed.message_id and not parsed.message_id.endswith("@missing")
    assert parsed.from_address == parsed.from_address.lower() and "@" in parsed.from_address
    assert parsed.date is not None and parsed.date.tzinfo is not None
    assert parsed.to == ("support@example.com",) or name in ("list_mail.eml", "html_only_marketing.eml")
    if parsed.text:
        assert parsed.visible_text and parsed.visible_text in parsed.text


# -- the customer's own words -------------------------------------------------------------------------

VISIBLE = {
    "gmail_reply.eml": (
        'Hi,\n\nThe parcel still hasn\'t arrived. The tracking page says "label created"\nsince Friday.\n\n'
        "Could you check with the carrier?\n\nThanks,\nJane"
    ),
    "outlook_reply.eml": (
        "Hi,\n\nThe invoice still shows the wrong address – it should be Rue de l’Église 4, not 14.\n"
        "The amount (€ 249.00) is fine.\n\nRegards,\nPierre Martin"
    ),
    "apple_mail_reply.eml": "Yes, please send the replacement to my office address.\n\nThanks!\nMarie-Hélène",
    "outlook_reply_de.eml": (
        "Hallo,\n\nvielen Dank, die Ware ist heute angekommen. Allerdings fehlt das Netzteil.\n\n"
        "Mit freundlichen Grüßen\nKlaus Becker"
    ),
    "iso_8859_1.eml": (
        "Guten Tag,\n\ndie Lieferung ist beschädigt angekommen. Bitte um Rückruf.\n\nGrüße aus München\nJürgen Weiß"
    ),
    "shift_jis.eml": (
        "サポートご担当者様\n\n注文番号①２３４の商品がまだ届いていません。\n確認をお願いします。\n\n山田 太郎"
    ),
    "unknown_charset.eml": "Bonjour,\n\nle café est arrivé, mais la crème manque.\n\nLuc",
    "raw_utf8_subject.eml": "Grüezi,\n\nmuss ich für die Lieferung nach Zürich Zoll bezahlen?\n\nZoë",
    "attachment_rfc2231.eml": (
        # format=flowed: the soft line break after "bereits" is joined.
        "Guten Tag,\n\nanbei die Rechnung, um die Sie gebeten haben. Der Betrag wurde bereits überwiesen.\n\n"
        "Viele Grüße\nKlaus Becker"
    ),
    "inline_image.eml": "The error looks like this:\n\n[image: screenshot.png]\n\nAnna",
    "broken_boundary.eml": "I returned the kettle two weeks ago and still have no refund.\n\nTom",
}


@pytest.mark.parametrize(("name", "expected"), VISIBLE.items())
def test_visible_text_is_only_the_new_message(name: str, expected: str) -> None:
    assert load(name).visible_text == expected


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("gmail_reply.eml", "> Your order 1234 has shipped"),
        ("outlook_reply.eml", "Thanks for your message. We have updated the invoice."),
        ("apple_mail_reply.eml", "> Shall we send the replacement"),
        ("outlook_reply_de.eml", "Ihre Lieferung ist unterwegs."),
    ],
)
def test_text_keeps_the_quoted_message(name: str, quoted: str) -> None:
    parsed = load(name)
    assert quoted in parsed.text
    assert quoted not in parsed.visible_text


@pytest.mark.parametrize(
    "name", ["gmail_reply.eml", "outlook_reply.eml", "apple_mail_reply.eml", "outlook_reply_de.eml"]
)
def test_html_alternative_gives_the_same_visible_text(name: str) -> None:
    # parse_mail prefers text/plain; the HTML alternative, with its client's quote markup, agrees.
    message = email.message_from_bytes(raw(name), policy=policy.default)
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_content()
    assert " ".join(strip_quotes(html_to_visible_text(html)).split()) == " ".join(VISIBLE[name].split())
    assert "Support" in html_to_text(html).rsplit("\n", 1)[-1]  # the quote is in the full text


def test_gmail_reply_threading_headers() -> None:
    parsed = load("gmail_reply.eml")
    assert parsed.message_id == "CAF3xq7J2k9Lw+Yb8Qz0rT5uVw1XyZ@mail.gmail.com"
    assert parsed.in_reply_to == ("reply-1@support.example.com",)
    assert parsed.references == ("reply-1@support.example.com",)
    assert (parsed.from_name, parsed.from_address) == ("Jane Doe", "jane.doe@example.org")
    assert parsed.date == datetime(2026, 12, 2, 8, 15, 42, tzinfo=UTC)
    # text/plain is preferred over the HTML alternative: the quote keeps its "> " markers.
    assert "On Mon, 1 Dec 2026 at 10:00, Support <support@example.com>\nwrote:" in parsed.text


def test_outlook_reply_folded_message_id_and_references_in_order() -> None:
    parsed = load("outlook_reply.eml")
    assert parsed.message_id == "AM9PR01MB1234ABCD5678EF90A1B2C3D4E5F6A@AM9PR01MB1234.eurprd01.prod.exchangelabs.com"
    assert parsed.references == ("invoice-118@support.example.com", "reply-7@support.example.com")


def test_a_forward_keeps_the_forwarded_mail_visible() -> None:
    body = "See below, this never arrived.\n\n---------- Forwarded message ---------\nFrom: Shop <s@example.com>\n"
    parsed = parse_mail(mail("From: a@example.org", "Subject: Fwd: Your order", "Message-ID: <f@x>", body=body))
    assert parsed.visible_text == parsed.text
    assert "Forwarded message" in parsed.visible_text
    reply = parse_mail(mail("From: a@example.org", "Subject: Re: Your order", "Message-ID: <r@x>", body=body))
    assert reply.visible_text == "See below, this never arrived."


def test_format_flowed_is_unwrapped() -> None:
    body = "This line is \r\nsoft-wrapped.\r\n> a quoted \r\n> line\r\n-- \r\nJane"
    parsed = parse_mail(mail("From: a@example.org", body=body, content_type="text/plain; format=flowed"))
    assert parsed.text == "This line is soft-wrapped.\n> a quoted line\n--\nJane"
    assert parsed.visible_text == "This line is soft-wrapped.\n> a quoted line"


# -- headers, names and charsets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "subject", "normalized"),
    [
        ("gmail_reply.eml", "Re: Your order 1234 has shipped", "your order 1234 has shipped"),
        ("outlook_reply.eml", "RE: Re: Invoice 2026-118", "invoice 2026-118"),
        ("outlook_reply_de.eml", "AW: AW: Lieferung 7788", "lieferung 7788"),
        # Two encoded words, the en dash split between them (its bytes E2 80 | 93).
        ("attachment_rfc2047.eml", "Frage zur Lieferung – Bestellung 5678", "frage zur lieferung – bestellung 5678"),
        ("iso_8859_1.eml", "Beschädigte Lieferung", "beschädigte lieferung"),
        ("shift_jis.eml", "商品が届きません", "商品が届きません"),
        ("raw_utf8_subject.eml", "Lieferung nach Zürich – Frage zum Zoll", "lieferung nach zürich – frage zum zoll"),
        ("html_only_marketing.eml", "❄️ Winter sale: up to 40% off", "❄️ winter sale: up to 40% off"),
        ("list_mail.eml", "[announce] Maintenance window on Saturday", "[announce] maintenance window on saturday"),
    ],
)
def test_subjects_are_decoded_and_normalized(name: str, subject: str, normalized: str) -> None:
    parsed = load(name)
    assert (parsed.subject, parsed.normalized_subject) == (subject, normalized)


@pytest.mark.parametrize(
    ("subject", "normalized"),
    [
        ("Re: Fwd: RE: Order  42", "order 42"),
        ("AW: WG: Lieferung", "lieferung"),
        ("SV: Antw: Réf : Commande", "commande"),
        ("RV: Enc: FW: Pedido", "pedido"),
        ("Re[2]: Re(3): re:Hello", "hello"),
        ("RE： 注文", "注文"),
        ("Regarding: the refund", "regarding: the refund"),
        ("Re:", ""),
        ("   ", ""),
    ],
)
def test_normalize_subject(subject: str, normalized: str) -> None:
    assert normalize_subject(subject) == normalized


@pytest.mark.parametrize(
    ("name", "from_name", "from_address"),
    [
        ("apple_mail_reply.eml", "Marie-Hélène Dubois", "mh.dubois@example.fr"),
        ("attachment_rfc2047.eml", "Becker, Klaus", "k.becker@example.de"),
        ("iso_8859_1.eml", "Jürgen Weiß", "juergen.weiss@example.de"),
        ("shift_jis.eml", "山田 太郎", "taro.yamada@example.jp"),
        ("raw_utf8_subject.eml", "Zoë Müller", "zoe.mueller@example.ch"),
        ("dsn_bounce.eml", "Mail Delivery System", "mailer-daemon@mx.example.net"),
        ("attachment_only.eml", "", "scanner@office.example.com"),
    ],
)
def test_sender_names_are_decoded(name: str, from_name: str, from_address: str) -> None:
    parsed = load(name)
    assert (parsed.from_name, parsed.from_address) == (from_name, from_address)


def test_encoded_display_name_with_a_comma_is_one_address() -> None:
    parsed = parse_mail(mail("From: =?utf-8?q?Doe=2C_J=C3=B6rg?= <Jorg@Example.org>", "To: a@x.org, B <b@x.org>"))
    assert (parsed.from_name, parsed.from_address) == ("Doe, Jörg", "jorg@example.org")
    assert parsed.to == ("a@x.org", "b@x.org")


def test_reply_to_and_list_headers() -> None:
    parsed = load("list_mail.eml")
    assert parsed.reply_to == "announce@lists.example.org"


def test_unknown_charset_is_read_as_utf8_with_a_note() -> None:
    parsed = load("unknown_charset.eml")
    assert parsed.text == VISIBLE["unknown_charset.eml"]
    assert parsed.notes == ("message: unknown charset 'x-unknown'; read as UTF-8",)


@pytest.mark.parametrize(
    ("charset", "body", "text", "note"),
    [
        ("x-unknown", "Café déjà vu".encode("latin-1"), "Café déjà vu", "unknown charset 'x-unknown'; read as Latin-1"),
        ("utf-8", "Café crème".encode("cp1252"), "Café crème", "not valid utf-8; read as Latin-1"),
        ("utf-8", "Grüße aus Köln, ".encode() * 5 + b"\xff!", "Grüße aus Köln", "read as UTF-8, undecodable bytes"),
        ("us-ascii", "naïve".encode(), "naïve", None),  # mislabelled UTF-8 is simply read as UTF-8
        ("utf8", "naïve".encode(), "naïve", None),
        ("base64", b"SGVsbG8=", "SGVsbG8=", "unknown charset 'base64'; read as UTF-8"),  # never a bytes codec
    ],
)
def test_wrong_charsets_fall_back(charset: str, body: bytes, text: str, note: str | None) -> None:
    head = f"From: a@example.org\r\nMessage-ID: <c@x>\r\nContent-Type: text/plain; charset={charset}\r\n\r\n"
    parsed = parse_mail(head.encode() + body)
    assert parsed.text.startswith(text)
    if note is None:
        assert parsed.notes == ()
    else:
        assert len(parsed.notes) == 1 and note in parsed.notes[0]


def test_shift_jis_is_read_as_the_windows_superset() -> None:
    # ① is a cp932 (NEC) character outside strict Shift_JIS; Japanese clients label it Shift_JIS anyway.
    assert "注文番号①２３４" in load("shift_jis.eml").text


def test_outlook_windows_1252_quoted_printable() -> None:
    text = load("outlook_reply.eml").text
    assert "wrong address – it should be Rue de l’Église 4" in text and "(€ 249.00)" in text


# -- attachments --------------------------------------------------------------------------------------


def test_rfc2231_filename() -> None:
    (pdf,) = load("attachment_rfc2231.eml").attachments
    assert pdf == MailAttachment("Rechnung März.pdf", "application/pdf", pdf.data, inline=False, content_id="")
    assert pdf.data.startswith(b"%PDF-1.4") and pdf.size == len(pdf.data)


def test_rfc2047_filename() -> None:
    (photo,) = load("attachment_rfc2047.eml").attachments
    assert (photo.name, photo.content_type, photo.inline) == ("Foto Schäden.jpg", "image/jpeg", False)
    assert photo.data.startswith(b"\xff\xd8\xff")


def test_inline_image_with_content_id() -> None:
    parsed = load("inline_image.eml")
    (image,) = parsed.attachments
    assert (image.name, image.content_type, image.inline, image.content_id) == (
        "screenshot.png",
        "image/png",
        True,
        "ii_m4x1y2z30",
    )
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")


def test_only_an_attachment_gets_a_fallback_name() -> None:
    parsed = load("attachment_only.eml")
    assert (parsed.text, parsed.visible_text) == ("", "")
    (pdf,) = parsed.attachments
    assert (pdf.name, pdf.content_type, pdf.inline) == ("attachment-1.pdf", "application/pdf", False)
    assert pdf.data.startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("disposition", "content_type", "name"),
    [
        ("attachment", "application/x-unknown-thing", "attachment-1.bin"),
        ("attachment", "image/png", "attachment-1.png"),
        ('attachment; filename="../../etc/passwd"', "application/octet-stream", "passwd"),
        ('attachment; filename="photo\u202egnp.exe"', "image/png", "photognp.exe"),
        ("attachment; filename==?UTF-8?B?w5xiZXJzaWNodC5wZGY=?=", "application/pdf", "Übersicht.pdf"),
    ],
)
def test_attachment_names_are_safe(disposition: str, content_type: str, name: str) -> None:
    body = (
        "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        f"Content-Type: {content_type}\r\nContent-Disposition: {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--"
    )
    parsed = parse_mail(mail("From: a@example.org", body=body, content_type='multipart/mixed; boundary="b"'))
    (attachment,) = parsed.attachments
    assert (attachment.name, attachment.data) == (name, b"\x00\x01\x02")
    assert parsed.text == "see attached"


def test_an_attached_mail_is_kept_as_eml() -> None:
    inner = "From: shop@example.com\r\nSubject: Order 77 confirmed\r\nMessage-ID: <o77@example.com>\r\n\r\nThanks!\r\n"
    body = (
        "--b\r\nContent-Type: text/plain\r\n\r\nThis is the confirmation.\r\n--b\r\n"
        f"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n{inner}--b--"
    )
    parsed = parse_mail(mail("From: a@example.org", body=body, content_type='multipart/mixed; boundary="b"'))
    assert parsed.text == "This is the confirmation."
    (eml,) = parsed.attachments
    assert (eml.name, eml.content_type) == ("Order 77 confirmed.eml", "message/rfc822")
    assert b"Message-ID: <o77@example.com>" in eml.data and b"Thanks!" in eml.data
    assert parsed.auto is None and parsed.bounced_message_ids == ()


def test_a_20_mb_attachment(tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024)
    head = (
        "From: Big Sender <big@example.org>\r\nMessage-ID: <big@example.org>\r\nSubject: scans\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        "--XX\r\nContent-Type: text/plain\r\n\r\nAll pages attached.\r\n--XX\r\n"
        "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=scans.zip\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    raw_mail = head.encode() + base64.encodebytes(data).replace(b"\n", b"\r\n") + b"--XX--\r\n"
    started = time.monotonic()
    parsed = parse_mail(raw_mail)
    assert time.monotonic() - started < 30
    assert (parsed.text, parsed.notes) == ("All pages attached.", ())
    (archive,) = parsed.attachments
    assert (archive.name, archive.size) == ("scans.zip", len(data))
    assert archive.data == data


# -- broken mail --------------------------------------------------------------------------------------


def test_wrong_boundary_is_recovered_with_a_note() -> None:
    parsed = load("broken_boundary.eml")
    assert [(a.name, a.data) for a in parsed.attachments] == [("receipt.txt", b"Return receipt 4471, 24 Nov 2026")]
    assert any("declared boundary not found" in n for n in parsed.notes)
    assert any("start boundary was never found" in n for n in parsed.notes)


def test_unclosed_boundary_keeps_the_parts_with_a_note() -> None:
    parsed = load("unclosed_boundary.eml")
    assert parsed.text == "Sorry, the last mail was cut off. Here is the receipt again."
    (pdf,) = parsed.attachments
    assert pdf.name == "receipt.pdf" and pdf.data.startswith(b"%PDF-")
    assert parsed.notes == (
        "MIME defect in message: A start boundary was found, but not the corresponding close boundary",
    )


def test_no_boundary_at_all_is_read_as_text() -> None:
    parsed = parse_mail(mail("From: a@example.org", body="just text", content_type="multipart/mixed"))
    assert parsed.text == "just text"
    assert any("no usable boundary" in n for n in parsed.notes)


def test_missing_from_and_message_id() -> None:
    data = raw("no_from_no_message_id.eml")
    parsed = parse_mail(data)
    assert parsed.message_id == synthetic_message_id(data)
    assert parsed.message_id.startswith("sha256-") and parsed.message_id.endswith("@missing")
    assert (parsed.from_name, parsed.from_address) == ("", "")
    assert parsed.text == "My account is locked, please help."
    assert parsed.notes[0].startswith("Message-ID: missing") and "From: missing" in parsed.notes
    # Redelivery of the same bytes is recognisable; any other mail gets another id.
    assert parse_mail(data).message_id == parsed.message_id
    assert parse_mail(data + b"\r\n").message_id != parsed.message_id


def test_unreadable_from_is_a_note() -> None:
    parsed = parse_mail(mail("From: Jane", "Message-ID: <j@x>"))
    assert (parsed.from_name, parsed.from_address) == ("Jane", "")
    assert parsed.notes == ("From: no readable address in 'Jane'",)


def test_bad_base64_is_a_note_not_an_error() -> None:
    body = "--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\nAAE*C\r\n--b--"
    parsed = parse_mail(
        mail("From: a@example.org", "Message-ID: <b@x>", body=body, content_type="multipart/mixed; boundary=b")
    )
    assert parsed.attachments[0].data == b"\x00\x01\x02"
    assert any("base64" in n for n in parsed.notes)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff\xfe\x80 not a mail at all",
        b"Subject: headers only",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a",
        b'From: <<>>@@\r\nDate: yesterday\r\nMessage-ID: <>\r\nContent-Type: text/plain; charset="\r\n\r\nx',
        b"Content-Type: text/html\r\n\r\n<scr<script>ipt><![CDATA[ <b>x</b> ]]><!-- unterminated",
        b"Subject: =?utf-8?B?!!!?= =?no-such?Q?=FF?=\r\nContent-Type: message/rfc822\r\n\r\nnot: really\r\n",
        "".join(f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(200)).encode(),
    ],
)
def test_never_raises(data: bytes) -> None:
    parsed = parse_mail(data)
    assert parsed.message_id
    assert isinstance(parsed.notes, tuple)


# -- auto-replies, lists, bounces ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("out_of_office.eml", "auto_reply"),
        ("list_mail.eml", "list"),
        ("html_only_marketing.eml", "list"),  # List-Unsubscribe
        ("dsn_bounce.eml", "bounce"),
        ("gmail_reply.eml", None),
        ("outlook_reply_de.eml", None),  # carries X-Auto-Response-Suppress: All, as Outlook's own mail does
    ],
)
def test_auto_kind_of_samples(name: str, kind: str | None) -> None:
    assert load(name).auto == kind


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("Auto-Submitted: auto-replied", "auto_reply"),
        ("Auto-Submitted: auto-generated; owner-email=x@y", "auto_reply"),
        ("Auto-Submitted: no", None),
        ("Auto-Submitted: No", None),
        ("X-Autoreply: yes", "auto_reply"),
        ("X-Autorespond: Vacation", "auto_reply"),
        ("Precedence: auto_reply", "auto_reply"),
        ("Precedence: bulk", "list"),
        ("Precedence: junk", "list"),
        ("Precedence: list", "list"),
        ("Precedence: first-class", None),
        ("List-Id: <news.example.org>", "list"),
        ("List-Unsubscribe: <mailto:leave@example.org>", "list"),
        ("X-Auto-Response-Suppress: All", None),
        ("X-Auto-Response-Suppress: OOF, DR, RN, NRN, AutoReply", None),
        ("Subject: Out of Office: Order 1", "auto_reply"),
        ("Subject: Automatic reply: Order 1", "auto_reply"),
        ("Subject: Auto: Order 1", "auto_reply"),
        ("Subject: Autoreply: Order 1", "auto_reply"),
        ("Subject: Abwesenheitsnotiz: Bestellung 1", "auto_reply"),
        ("Subject: Réponse automatique : Commande 1", "auto_reply"),
        ("Subject: Respuesta automática: Pedido 1", "auto_reply"),
        ("Subject: Resposta automática: Pedido 1", "auto_reply"),
        ("Subject: Risposta automatica: Ordine 1", "auto_reply"),
        ("Subject: Out of Office", "auto_reply"),
        ("Subject: Automatic reply not working in your app", None),
        ("Subject: Auto insurance question", None),
        ("Subject: Re: I was out of office, sorry", None),
        ("Content-Type: multipart/report; report-type=disposition-notification; boundary=r", "auto_reply"),
    ],
)
def test_auto_kind_from_headers(header: str, kind: str | None) -> None:
    headers = ["From: Someone <someone@example.org>", "Message-ID: <a@x>", header]
    if not header.startswith("Subject:"):
        headers.append("Subject: Order 1")
    if header.startswith("Content-Type:"):
        parsed = parse_mail(("\r\n".join(headers) + "\r\n\r\n--r\r\n\r\nread\r\n--r--\r\n").encode())
    else:
        parsed = parse_mail(mail(*headers))
    assert parsed.auto == kind


def test_dsn_bounce_names_our_message() -> None:
    parsed = load("dsn_bounce.eml")
    assert parsed.bounced_message_ids == ("reply-1@support.example.com",)
    assert parsed.text.startswith("This is the mail system at host mx.example.net.")
    assert "User unknown" in parsed.text
    # The report parts are for software: read for ids, not kept as files.
    assert parsed.attachments == ()


def test_mailer_daemon_bounce_without_a_report() -> None:
    # Old-style bounces: a multipart/mixed with the returned mail attached, or only the headers pasted in.
    inner = "From: support@example.com\r\nMessage-ID: <reply-9@support.example.com>\r\nSubject: Re: x\r\n\r\nHi\r\n"
    body = (
        "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--b\r\n"
        f"Content-Type: message/rfc822\r\n\r\n{inner}--b--"
    )
    parsed = parse_mail(
        mail(
            "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>",
            "Message-ID: <bounce-1@mx.example.net>",
            "References: <reply-8@support.example.com>",
            body=body,
            content_type='multipart/mixed; boundary="b"',
        )
    )
    assert parsed.auto == "bounce"
    assert parsed.bounced_message_ids == ("reply-9@support.example.com", "reply-8@support.example.com")

    pasted = "Hi. This is the qmail-send program.\r\n\r\n--- Below this line is a copy of the message.\r\n\r\n"
    pasted += "Message-ID: <reply-10@support.example.com>\r\nFrom: support@example.com\r\n"
    parsed = parse_mail(mail("From: postmaster@mx.example.net", "Message-ID: <b2@x>", body=pasted))
    assert parsed.auto == "bounce"
    assert parsed.bounced_message_ids == ("reply-10@support.example.com",)


def test_only_bounces_have_bounced_ids() -> None:
    assert load("out_of_office.eml").bounced_message_ids == ()


# -- html_to_text -------------------------------------------------------------------------------------


def test_html_only_marketing_mail() -> None:
    text = load("html_only_marketing.eml").text
    assert text == (
        "[image: Example Shop]\n\nWinter sale\n\nDear customer,\nour winter sale starts today:\n\n"
        "- Boots & shoes – 40% off\n- Jackets – 30% off\n"
        "- Gloves (https://shop.example.com/sale/gloves?utm_source=newsletter) – 2 for 1\n\n"
        "1. Choose your items\n2. Enter code WINTER26 at checkout\n\n"
        "Shop now (https://shop.example.com/sale?utm_source=newsletter)\n\n"
        "Questions? Write to help@shop.example.com or visit https://shop.example.com/help.\n\n"
        "Unsubscribe (https://shop.example.com/unsubscribe?u=8f3a)"
    )
    for hidden in ("trackOpen", "font-family", "Up to 40%", "footer starts", "Winter sale\n\nWinter"):
        assert hidden not in text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>a &amp; b &lt;c&gt; &eacute; &#8364; &nbsp;x</p>", "a & b <c> é € x"),
        ("<div>one</div><div><br></div><div>two</div>", "one\n\ntwo"),
        ("<p>one</p>\n\n<p></p><p>&nbsp;</p><br><br><br><p>two</p>", "one\n\ntwo"),
        ("<p>  lots \n of\t  space </p>", "lots of space"),
        ("line one<br>line two<br/>line three", "line one\nline two\nline three"),
        ("<ul><li>a</li><li>b<ul><li>b1</li></ul></li></ul><ol><li>x<li>y</ol>", "- a\n- b\n  - b1\n\n1. x\n2. y"),
        ('<ol start="3"><li><p>third</p></li></ol>', "3. third"),
        ('<a href="https://x.example/a">the docs</a>', "the docs (https://x.example/a)"),
        ('<a href="https://x.example/a/">https://x.example/a</a>', "https://x.example/a"),
        ('<a href="mailto:help@x.example">help@x.example</a>', "help@x.example"),
        ('<a href="#top">top</a> <a href="javascript:void(0)">js</a>', "top js"),
        ('<img src="a.png" alt="Logo"> <img src="b.png"> <img alt="">', "[image: Logo]"),
        ("<h1>Title</h1><p>Body</p>", "Title\n\nBody"),
        ("<table><tr><th>Item</th><th>Qty</th></tr><tr><td>Kettle</td><td>1</td></tr></table>", "Item Qty\nKettle 1"),
        ("<head><title>t</title><style>p{}</style></head><body><script>x()</script><p>shown</p>", "shown"),
        ("<template><p>no</p></template><!-- no --><p>yes</p>", "yes"),
        ('<span style="display: none">preheader</span><p>body&zwnj;&#8203;</p>', "body"),
        ("<pre>  keep\n    indent</pre>", "  keep\n    indent"),
        ("<p>unclosed <b>bold <i>italic", "unclosed bold italic"),
        (
            '<p class="MsoNormal">line one<o:p></o:p></p><p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
            '<p class="MsoNormal">line two</p><p class="MsoNormal">line three</p>',
            "line one\n\nline two\nline three",
        ),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("html", "visible"),
    [
        ("<p>mine</p><blockquote><p>theirs</p></blockquote>", "mine"),
        ('<p>mine</p><blockquote type="cite">theirs</blockquote><p>after</p>', "mine\n\nafter"),
        ('<div>mine</div><div class="gmail_quote"><div class="gmail_attr">On ... wrote:</div>old</div>', "mine"),
        ('<div>mine</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg">From: x</div><div>old</div>', "mine"),
        ('<div>mine</div><div id="divRplyFwdMsg"><b>From:</b> x</div><div>old</div>', "mine"),
        ("<p>mine</p><hr><p><b>From:</b> Support<br><b>Sent:</b> Monday</p><p>old</p>", "mine"),
        ("<p>mine</p><hr><p>a section after a rule</p>", "mine\n\na section after a rule"),
        (
            '<p>mine</p><div style="border:none;border-top:solid #E1E1E1 1.0pt"><p><b>Von:</b> x</p></div><p>alt</p>',
            "mine",
        ),
        (
            '<p>mine</p><div class="moz-cite-prefix">On 1 Dec, X wrote:</div><blockquote type="cite">old</blockquote>',
            "mine",
        ),
        ("<blockquote>all quote</blockquote>", ""),
    ],
)
def test_html_to_visible_text(html: str, visible: str) -> None:
    assert html_to_visible_text(html) == visible
    full = html_to_text(html)
    assert all(line in full for line in visible.split("\n"))


# -- strip_quotes -------------------------------------------------------------------------------------

ATTRIBUTIONS = [
    "On Mon, 1 Dec 2026 at 10:00, Support <support@example.com> wrote:",
    "On Mon, 1 Dec 2026 at 10:00, Support <support@example.com>\nwrote:",
    "On 1 Dec 2026, at 10:00, Support <support@example.com> wrote:",
    "Am Mo., 1. Dez. 2026 um 10:00 Uhr schrieb Support <support@example.com>:",
    "Am 01.12.2026 um 10:00 schrieb Support:",
    "Le lun. 1 déc. 2026 à 10:00, Support <support@example.com> a écrit :",
    "El lun, 1 dic 2026 a las 10:00, Support (<support@example.com>) escribió:",
    "Em seg., 1 de dez. de 2026 às 10:00, Support <support@example.com> escreveu:",
    "Il giorno lun 1 dic 2026 alle ore 10:00 Support <support@example.com> ha scritto:",
    "Op ma 1 dec. 2026 om 10:00 schreef Support <support@example.com>:",
]


@pytest.mark.parametrize("attribution", ATTRIBUTIONS)
def test_strip_quotes_at_attribution_lines(attribution: str) -> None:
    text = f"Thanks, that worked.\n\nJane\n\n{attribution}\n\n> the old message\n> more of it\n"
    assert strip_quotes(text) == "Thanks, that worked.\n\nJane"


@pytest.mark.parametrize(
    "separator",
    [
        "-----Original Message-----",
        "----- Original Message -----",
        "-----Ursprüngliche Nachricht-----",
        "-----Message d'origine-----",
        "-----Mensaje original-----",
    ],
)
def test_strip_quotes_at_original_message_lines(separator: str) -> None:
    text = f"New text.\n\n{separator}\nFrom: Support\nSent: Monday\nTo: Jane\nSubject: Re: x\n\nold text"
    assert strip_quotes(text) == "New text."


@pytest.mark.parametrize(
    "block",
    [
        "From: Support <support@example.com>\nSent: Monday, December 1, 2026 10:00\nTo: Jane\nSubject: Re: x",
        "From: Support <support@example.com>\nDate: Monday, December 1, 2026 10:00\nSubject: Re: x",
        "*From:* Support <support@example.com>\n*Sent:* Monday\n*To:* Jane",
        "Von: Support <support@example.com>\nGesendet: Montag, 1. Dezember 2026 10:00\nAn: Jane\nBetreff: AW: x",
        "De : Support <support@example.com>\nEnvoyé : lundi 1 décembre 2026 10:00\nÀ : Jane\nObjet : RE: x",
        "De: Support <support@example.com>\nEnviado el: lunes, 1 de diciembre de 2026 10:00\nPara: Jane\nAsunto: RE: x",
        "________________________________\nFrom: Support <support@example.com>\nSent: Monday\nTo: Jane",
        "________________________________\nFrom: Support <support@example.com>",
    ],
)
def test_strip_quotes_at_outlook_header_blocks(block: str) -> None:
    assert strip_quotes(f"Works now, thanks.\n\n{block}\n\nold text\n") == "Works now, thanks."


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("Hello\n\n-- \nJane Doe\nACME Ltd", "Hello"),
        ("Hello\n--\nJane Doe", "Hello"),
        ("Hello\n\nSent from my iPhone", "Hello"),
        ("Hello\n\nSent from my Android phone\n", "Hello"),
        ("Hello\n\nGet Outlook for iOS<https://aka.ms/o0ukef>", "Hello"),
        ("Hello\n\nGet Outlook for Android", "Hello"),
        ("Hello\n\n> old\n> older\n\n", "Hello"),
        ("Q1?\n> a1\nQ2?\n> a2", "Q1?\n> a1\nQ2?"),  # only the trailing quote goes; interleaved stays
        ("> On 1 Dec 2026, Support wrote:\n> old\n\nMy answer below.", "My answer below."),  # bottom-posting
        (
            "On reflection, my colleague wrote:\nthat it is fine.",
            "On reflection, my colleague wrote:\nthat it is fine.",
        ),
        ("Sent from my iPhone is what it says, not a signature\nok", None),
        ("Just one line", "Just one line"),
        ("", ""),
    ],
)
def test_strip_quotes_signatures_and_mobile_lines(text: str, stripped: str | None) -> None:
    assert strip_quotes(text) == (text if stripped is None else stripped)


@pytest.mark.parametrize(
    "text",
    [
        "---------- Forwarded message ---------\nFrom: Shop <shop@example.com>\nDate: Mon, 1 Dec\nSubject: x\n\nbody",
        "Begin forwarded message:\n\nFrom: Shop <shop@example.com>\nSubject: x\n\nbody",
        "-----Original Message-----\nFrom: a\nSent: b\nTo: c\n\nold",
        "On Mon, 1 Dec 2026 at 10:00, Support <support@example.com> wrote:\n> only a quote",
        "Sent from my iPhone",
    ],
)
def test_strip_quotes_returns_a_message_that_is_all_quote_unchanged(text: str) -> None:
    assert strip_quotes(text) == text


def test_strip_quotes_handles_crlf() -> None:
    assert strip_quotes("Yes.\r\n\r\nOn Mon, 1 Dec 2026, X <x@example.com> wrote:\r\n> q\r\n") == "Yes."


def test_times_are_aware() -> None:
    parsed = parse_mail(mail("From: a@example.org", "Date: Mon, 1 Dec 2026 10:00:00 -0000"))
    assert parsed.date == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    parsed = parse_mail(mail("From: a@example.org", "Date: Mon, 1 Dec 2026 10:00:00 +0530"))
    assert parsed.date == datetime(2026, 12, 1, 10, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    parsed = parse_mail(mail("From: a@example.org", "Date: someday"))
    assert parsed.date is None and parsed.notes[-1] == "Date: unreadable 'someday'"
