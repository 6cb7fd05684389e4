"""Web chat frames for agents' edits and deletions, and the adapter that pushes them: no server needed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from channels.webchat.adapter import WebchatAdapter
from channels.webchat.frames import deleted_frame, edited_frame, message_frame, revision_frame
from channels.webchat.hub import WebchatHub
from gateway.models import Attachment, ConversationRef, DeliveryError, OutboundMessage

SENT = datetime(2026, 11, 30, 17, 24, 40, 2000, tzinfo=UTC)
LATER = datetime(2026, 11, 30, 17, 26, 3, 310000, tzinfo=UTC)
REF = ConversationRef("webchat", "visitor-1")


def agent_doc(**changes: Any) -> dict[str, Any]:
    doc = {
        "seq": 17,
        "author": "agent",
        "agent_name": "Dana",
        "text": "Here is the label:",
        "created_at": SENT,
        "attachments": [{"name": "label.pdf", "url": "https://x.example/label.pdf", "content_type": "application/pdf"}],
    }
    return doc | changes


class RecordingHub(WebchatHub):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def broadcast(self, conversation_id: str, frame: dict[str, Any]) -> int:
        self.sent.append((conversation_id, frame))
        return 1


def outbound(text: str = "", **extra: Any) -> OutboundMessage:
    return OutboundMessage(
        conversation_id="c1",
        seq=20,
        author="agent",
        text=text,
        created_at=LATER,
        agent_name="Dana",
        message_id="m-edit",
        extra=extra,
    )


# frames


def test_an_untouched_message_has_no_edit_or_delete_flags() -> None:
    frame = message_frame(agent_doc())
    assert not {"edited", "edited_at", "deleted", "deleted_at"} & frame.keys()
    assert frame["text"] == "Here is the label:" and len(frame["attachments"]) == 1


def test_an_edited_message_replays_with_its_new_text_and_the_edited_flag() -> None:
    frame = message_frame(agent_doc(text="Here is the corrected label:", edited_at=LATER))
    assert frame["text"] == "Here is the corrected label:"
    assert frame["edited"] is True and frame["edited_at"] == "2026-11-30T17:26:03.310Z"
    assert frame["attachments"][0]["name"] == "label.pdf"
    assert frame["seq"] == 17 and frame["created_at"] == "2026-11-30T17:24:40.002Z"


def test_a_deleted_message_replays_without_its_text_or_files() -> None:
    # Even if a document kept its text, the original must never reach the customer again.
    for text in ("", "Here is the label:"):
        frame = message_frame(agent_doc(text=text, edited_at=SENT, deleted_at=LATER))
        assert frame["deleted"] is True and frame["deleted_at"] == "2026-11-30T17:26:03.310Z"
        assert frame["text"] == ""
        assert "attachments" not in frame and "edited" not in frame
        assert frame["author"] == "agent" and frame["agent_name"] == "Dana"


def test_edit_and_delete_frames() -> None:
    assert edited_frame(17, "new", LATER) == {
        "type": "message_edited",
        "seq": 17,
        "text": "new",
        "edited_at": "2026-11-30T17:26:03.310Z",
    }
    assert deleted_frame(17, LATER) == {"type": "message_deleted", "seq": 17, "deleted_at": "2026-11-30T17:26:03.310Z"}


def test_revision_frame_brings_an_older_copy_up_to_date() -> None:
    assert revision_frame(agent_doc()) is None
    assert revision_frame(agent_doc(text="v2", edited_at=LATER)) == edited_frame(17, "v2", LATER)
    assert revision_frame(agent_doc(text="", edited_at=SENT, deleted_at=LATER)) == deleted_frame(17, LATER)


# adapter


def test_the_adapter_declares_edits_and_attachments() -> None:
    capabilities = WebchatAdapter(WebchatHub()).capabilities
    assert capabilities.edits and capabilities.attachments and capabilities.typing


async def test_an_edit_op_pushes_message_edited_for_the_target_seq() -> None:
    hub = RecordingHub()
    result = await WebchatAdapter(hub).send(
        REF, outbound("v2", op="edit", target_seq=17, target_provider_message_ids=["m-17"])
    )
    assert hub.sent == [("c1", edited_frame(17, "v2", LATER))]
    assert result.provider_message_id == "m-17"


async def test_a_delete_op_pushes_message_deleted_for_the_target_seq() -> None:
    hub = RecordingHub()
    result = await WebchatAdapter(hub).send(
        REF, outbound(op="delete", target_seq=17, target_provider_message_ids=["m-17"])
    )
    assert hub.sent == [("c1", deleted_frame(17, LATER))]
    assert result.provider_message_id == "m-17"


async def test_a_plain_message_is_still_a_message_frame() -> None:
    hub = RecordingHub()
    message = OutboundMessage(
        conversation_id="c1",
        seq=3,
        author="agent",
        text="hello",
        created_at=SENT,
        attachments=(Attachment("a.png", "image/png", url="https://x.example/a.png"),),
        agent_name="Dana",
        message_id="m-3",
    )
    result = await WebchatAdapter(hub).send(REF, message)
    [(_, frame)] = hub.sent
    assert frame["type"] == "message" and frame["seq"] == 3 and frame["text"] == "hello"
    assert frame["attachments"] == [{"name": "a.png", "url": "https://x.example/a.png", "content_type": "image/png"}]
    assert result.provider_message_id == "m-3"


@pytest.mark.parametrize(
    "extra",
    [
        {"op": "pin", "target_seq": 17},
        {"op": "edit"},
        {"op": "edit", "target_seq": "17"},
        {"op": "delete", "target_seq": True},
        {"op": "delete", "target_seq": 0},
    ],
)
async def test_a_malformed_op_fails_permanently_and_pushes_nothing(extra: dict[str, Any]) -> None:
    hub = RecordingHub()
    with pytest.raises(DeliveryError) as caught:
        await WebchatAdapter(hub).send(REF, outbound("x", **extra))
    assert caught.value.permanent
    assert hub.sent == []
