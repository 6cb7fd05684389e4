"""Our outbound mail: threading headers, a Re: subject, text plus HTML, files, and the auto-reply mark."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.headerregistry import Address

import pytest

from channels.email.compose import OutgoingFile, compose, message_id, references, reply_subject, text_to_html

SUPPORT = Address("Northwind Support", "support", "example.com")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Where is my order?", "Re: Where is my order?"),
        ("Re: Where is my order?", "Re: Where is my order?"),
        ("RE: re:  AW: Where   is my order?", "Re: Where is my order?"),
        ("Re[2]: Refund", "Re: Refund"),
        ("", "Re: your message"),
        ("Fwd: invoice", "Re: Fwd: invoice"),  # a forward stays named as one
    ],
)
def test_the_subject_gets_one_re(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_message_ids_are_stable_per_job_and_distinct_between_jobs() -> None:
    first = message_id("out:6750c0ffee", "support.example.com")
    assert first == message_id("out:6750c0ffee", "support.example.com")
    assert first != message_id("out:6750c0ffee#2", "support.example.com")
    assert first.startswith("<") and first.endswith("@support.example.com>")


def test_references_keep_the_root_and_the_latest_and_never_repeat() -> None:
    assert references(["a@x", "<b@x>"], "c@x") == ["<a@x>", "<b@x>", "<c@x>"]
    assert references(["a@x", "a@x"], "a@x") == ["<a@x>"]
    long = references([f"m{n}@x" for n in range(40)], "last@x")
    assert len(long) == 20 and long[0] == "<m0@x>" and long[-1] == "<last@x>"


def test_html_is_escaped_and_keeps_links_and_line_breaks() -> None:
    html = text_to_html("Hi <b>Ana</b> & co,\nsee https://example.com/track?id=1&x=2.\n\nThanks")
    assert "&lt;b&gt;Ana&lt;/b&gt; &amp; co,<br>" in html
    assert '<a href="https://example.com/track?id=1&amp;x=2">https://example.com/track?id=1&amp;x=2</a>.' in html
    assert html.count("<p>") == 2 and "<script" not in html


def test_a_reply_threads_and_carries_text_html_and_files() -> None:
    mail = compose(
        sender=SUPPORT,
        to="Ana Lima <ana@example.org>",
        subject="Re: Where is my order?",
        text="Hola Ana, your parcel left today: https://example.com/t/1\n\n— Dana",
        msg_id="<r1@support.example.com>",
        in_reply_to="c2@example.org",
        previous_references=["c1@example.org", "r0@support.example.com"],
        files=[OutgoingFile("Rechnung März.pdf", "application/pdf", b"%PDF-1.7 test")],
        reply_to="help@example.com",
    )
    parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)
    assert parsed["Subject"] == "Re: Where is my order?"
    assert parsed["In-Reply-To"] == "<c2@example.org>"
    assert parsed["References"] == "<c1@example.org> <r0@support.example.com> <c2@example.org>"
    assert parsed["Message-ID"] == "<r1@support.example.com>" and parsed["Reply-To"] == "help@example.com"
    assert parsed["Auto-Submitted"] is None
    assert parsed.get_content_type() == "multipart/mixed"
    plain = parsed.get_body(preferencelist=("plain",))
    rich = parsed.get_body(preferencelist=("html",))
    assert plain is not None and "your parcel left today" in plain.get_content()
    assert rich is not None and '<a href="https://example.com/t/1">' in rich.get_content()
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "Rechnung März.pdf" and attachment.get_content() == b"%PDF-1.7 test"


def test_an_ai_answer_is_marked_auto_replied() -> None:
    mail = compose(sender=SUPPORT, to="ana@example.org", subject="Hi", text="Hello", msg_id="<a@x>", automatic=True)
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail.get_content_type() == "multipart/alternative"
