"""The core fits outbound messages to their channel: split text, files as links, parts numbered."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.channel import Capabilities
from gateway.models import Attachment, OutboundMessage
from gateway.shaping import fits, shape
from gateway.text_split import text_length

PHOTO = Attachment("label.png", "image/png", url="https://support.example.com/files/abc/label.png?sig=x", file_id="abc")


def outbound(text: str, attachments: tuple[Attachment, ...] = ()) -> OutboundMessage:
    return OutboundMessage("c1", 7, "agent", text, datetime.now(UTC), attachments=attachments, message_id="m1")


def test_a_message_that_fits_is_sent_as_it_is() -> None:
    message = outbound("Your parcel ships today.", (PHOTO,))
    [part] = shape(message, Capabilities(max_text=4096, attachments=True))
    assert part == message and "part" not in part.extra


def test_long_text_becomes_numbered_parts_with_files_on_the_last() -> None:
    text = "\n\n".join("Paragraph 🙂 " * 200 for _ in range(3))
    caps = Capabilities(max_text=4096, attachments=True, text_units="utf16")
    parts = shape(outbound(text, (PHOTO,)), caps)
    assert len(parts) == 3
    assert [p.extra["part"] for p in parts] == [{"index": i, "count": 3} for i in range(3)]
    assert all(text_length(p.text, "utf16") <= 4096 for p in parts)
    assert [p.attachments for p in parts] == [(), (), (PHOTO,)]
    assert {p.seq for p in parts} == {7}, "parts keep the message's position; the outbox orders them by part"


def test_files_on_a_channel_without_them_become_links() -> None:
    [part] = shape(outbound("Here is the label", (PHOTO,)), Capabilities(max_text=160))
    assert part.attachments == ()
    assert part.text == f"Here is the label\n\nlabel.png: {PHOTO.url}"


def test_edits_are_left_to_their_caller_and_fits_counts_in_the_channels_units() -> None:
    edit = OutboundMessage("c1", 8, "agent", "x" * 5000, datetime.now(UTC), extra={"op": "edit"})
    assert shape(edit, Capabilities(max_text=4096)) == [edit]
    caps = Capabilities(max_text=4096, text_units="utf16")
    assert fits("🙂" * 2048, caps) and not fits("🙂" * 2049, caps)
