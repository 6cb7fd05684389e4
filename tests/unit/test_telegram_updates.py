"""Bot API updates, as the fakes build them, through PTB's `Update.de_json` and `parse_update`."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from telegram import TelegramObject, Update

from channels.telegram.updates import (
    CallbackAnswer,
    ChatBlocked,
    ChatMoved,
    ChatUnblocked,
    CustomerEdit,
    CustomerMessage,
    Ignored,
    MediaRef,
    Parsed,
    Sender,
    Start,
    parse_update,
    parse_update_data,
)
from gateway.models import Identity
from tests.fakes import telegram_updates as tg

CHAT = 5_123_456_789  # private chat id == user id; beyond 32 bits on purpose
DANA = Sender(user_id=str(CHAT), name="Dana Reyes", username="dana_reyes", language="en")
WHEN = 1_764_000_000


def parse(data: dict[str, Any]) -> Parsed:
    return parse_update(Update.de_json(data, None))


def customer_message(data: dict[str, Any]) -> CustomerMessage:
    result = parse(data)
    assert isinstance(result, CustomerMessage), result
    return result


def only_media(data: dict[str, Any]) -> MediaRef:
    result = customer_message(data)
    assert len(result.media) == 1
    return result.media[0]


# --- text and sender --------------------------------------------------------------------------------


def test_text_message() -> None:
    result = parse(tg.text_update(CHAT, "Where is my order?", message_id=41, date=WHEN))
    assert result == CustomerMessage(
        chat_id=str(CHAT),
        message_id=41,
        sender=DANA,
        text="Where is my order?",
        media=(),
        reply_to_message_id=None,
        date=datetime.fromtimestamp(WHEN, UTC),
    )
    assert result.date.tzinfo is not None


def test_reply_to_message_id() -> None:
    assert customer_message(tg.text_update(CHAT, "this one", reply_to_message_id=17)).reply_to_message_id == 17


def test_nul_and_surrounding_whitespace_stripped() -> None:
    assert customer_message(tg.text_update(CHAT, "  hel\x00lo\x00 \n")).text == "hello"


def test_text_that_is_only_nul_is_ignored() -> None:
    assert parse(tg.text_update(CHAT, "\x00")) == Ignored("empty_text")


def test_sender_name_and_identity() -> None:
    sender = customer_message(tg.text_update(CHAT, "hi", first_name=" Zo\x00ë ", last_name=None)).sender
    assert sender.name == "Zoë"
    assert sender.identity() == Identity(channel="telegram", address=str(CHAT), name="Zoë")


@pytest.mark.parametrize(("username", "expected"), [("dana_reyes", "@dana_reyes"), (None, f"Telegram user {CHAT}")])
def test_sender_name_fallbacks(username: str | None, expected: str) -> None:
    data = tg.text_update(CHAT, "hi", first_name="\x00", last_name=None, username=username, language_code=None)
    sender = customer_message(data).sender
    assert (sender.name, sender.username, sender.language) == (expected, username or "", "")


def test_message_without_sender_is_ignored() -> None:
    data = tg.text_update(CHAT, "hi")
    del data["message"]["from"]
    assert parse(data) == Ignored("no_sender")


def test_results_are_frozen() -> None:
    result = customer_message(tg.text_update(CHAT, "hi"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "changed"  # type: ignore[misc]


# --- media ------------------------------------------------------------------------------------------


def test_photo_keeps_only_the_largest_size_and_uses_the_caption() -> None:
    data = tg.photo_update(CHAT, [("AgACmid", 24_000), ("AgACbig", 180_000), ("AgACthumb", 1_300)], caption=" receipt ")
    assert [p["file_id"] for p in data["message"]["photo"]] == ["AgACthumb", "AgACmid", "AgACbig"]
    result = customer_message(data)
    assert result.text == "receipt"
    assert result.media == (
        MediaRef(
            kind="photo",
            file_id="AgACbig",
            file_unique_id=tg.unique_id("AgACbig"),
            file_size=180_000,
            name=f"photo-{tg.unique_id('AgACbig')}.jpg",
            content_type="image/jpeg",
        ),
    )


def test_photo_largest_chosen_whatever_the_order_and_without_file_size() -> None:
    data = tg.photo_update(CHAT, [("AgACsmall", 1_000), ("AgACbig", 90_000)])
    photo = data["message"]["photo"]
    photo.reverse()
    assert only_media(data).file_id == "AgACbig"
    for size in photo:
        del size["file_size"]  # optional in PhotoSize: width * height decides
    ref = only_media(data)
    assert (ref.file_id, ref.file_size) == ("AgACbig", None)


def test_document_with_caption() -> None:
    data = tg.document_update(CHAT, "BQACdoc", "invoice 42.pdf", "application/pdf", 48_213, caption="my invoice")
    result = customer_message(data)
    assert result.text == "my invoice"
    assert result.media == (
        MediaRef("document", "BQACdoc", tg.unique_id("BQACdoc"), 48_213, "invoice 42.pdf", "application/pdf"),
    )


def test_document_name_is_made_safe_and_defaults_fill_gaps() -> None:
    assert only_media(tg.document_update(CHAT, "BQAC1", "../../etc/pass\x00wd", "text/plain", 10)).name == "passwd"
    data = tg.document_update(CHAT, "BQAC2", "x", "x", 10)
    del data["message"]["document"]["file_name"], data["message"]["document"]["mime_type"]
    ref = only_media(data)
    assert (ref.name, ref.content_type) == (f"document-{tg.unique_id('BQAC2')}", "application/octet-stream")


def test_voice() -> None:
    ref = only_media(tg.voice_update(CHAT, "AwACvoice", file_size=9_001))
    assert ref == MediaRef(
        "voice", "AwACvoice", tg.unique_id("AwACvoice"), 9_001, f"voice-{tg.unique_id('AwACvoice')}.ogg", "audio/ogg"
    )


def test_audio() -> None:
    ref = only_media(tg.audio_update(CHAT, "CQACaudio", file_name="call.m4a", mime_type="audio/mp4"))
    assert (ref.kind, ref.name, ref.content_type) == ("audio", "call.m4a", "audio/mp4")
    ref = only_media(tg.audio_update(CHAT, "CQACbare", file_name=None, mime_type=None))
    assert (ref.name, ref.content_type) == (f"audio-{tg.unique_id('CQACbare')}.mp3", "audio/mpeg")


def test_video() -> None:
    ref = only_media(tg.video_update(CHAT, "BAACvideo", caption="it rattles"))
    assert (ref.kind, ref.name, ref.content_type, ref.file_size) == ("video", "clip.mp4", "video/mp4", 5_242_880)


def test_video_note() -> None:
    ref = only_media(tg.video_note_update(CHAT, "DQACnote"))
    assert (ref.kind, ref.name, ref.content_type) == (
        "video_note",
        f"video_note-{tg.unique_id('DQACnote')}.mp4",
        "video/mp4",
    )


def test_animation_wins_over_its_backward_compatible_document() -> None:
    data = tg.animation_update(CHAT, "CgACgif")
    assert "document" in data["message"]
    assert customer_message(data).media == (
        MediaRef("animation", "CgACgif", tg.unique_id("CgACgif"), 421_337, "funny.gif.mp4", "video/mp4"),
    )


@pytest.mark.parametrize(("emoji", "text"), [("👍", "👍"), (None, "[sticker]")])
def test_sticker_is_its_emoji_and_no_media(emoji: str | None, text: str) -> None:
    result = customer_message(tg.sticker_update(CHAT, emoji))
    assert (result.text, result.media) == (text, ())


# --- places and contacts ----------------------------------------------------------------------------


@pytest.mark.parametrize("live_period", [None, 900])
def test_location(live_period: int | None) -> None:
    result = customer_message(tg.location_update(CHAT, 52.52, 13.405, live_period=live_period))
    assert result.text == "📍 Location: 52.52000, 13.40500 (https://maps.google.com/?q=52.52,13.405)"
    assert result.media == ()


def test_venue_not_its_backward_compatible_location() -> None:
    data = tg.venue_update(CHAT, "Brandenburg Gate", "Pariser Platz, 10117 Berlin", 52.516275, 13.377704)
    assert "location" in data["message"]
    assert customer_message(data).text == (
        "📍 Brandenburg Gate, Pariser Platz, 10117 Berlin — 52.51628, 13.37770 "
        "(https://maps.google.com/?q=52.516275,13.377704)"
    )


def test_contact() -> None:
    assert customer_message(tg.contact_update(CHAT, "+4915112345678", "Sam", "Okafor")).text == (
        "👤 Contact: Sam Okafor, +4915112345678"
    )
    assert customer_message(tg.contact_update(CHAT, "+441632960961", "Sam", None)).text == (
        "👤 Contact: Sam, +441632960961"
    )


# --- /start -----------------------------------------------------------------------------------------


def test_start_without_payload() -> None:
    data = tg.start_update(CHAT, message_id=7)
    assert data["message"]["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    assert parse(data) == Start(chat_id=str(CHAT), message_id=7, sender=DANA, payload="")


@pytest.mark.parametrize("payload", ["order-1234", "promo_2026", "A" * 64])
def test_start_with_deep_link_payload(payload: str) -> None:
    assert parse(tg.start_update(CHAT, payload, message_id=8)) == Start(str(CHAT), 8, DANA, payload)


def test_start_with_bot_username() -> None:
    result = parse(tg.start_update(CHAT, "order-1234", bot_username=tg.BOT_USERNAME))
    assert isinstance(result, Start)
    assert result.payload == "order-1234"


@pytest.mark.parametrize("junk", ["two words", "A" * 65, "ünïcode", "a\x00b", "<script>", "%20x", "a.b"])
def test_start_junk_payload_is_dropped(junk: str) -> None:
    result = parse(tg.start_update(CHAT, junk))
    assert isinstance(result, Start)
    assert result.payload == ""


@pytest.mark.parametrize("text", ["/starter", "/help", "start", "please /start"])
def test_other_text_is_not_start(text: str) -> None:
    assert customer_message(tg.text_update(CHAT, text)).text == text


# --- edits ------------------------------------------------------------------------------------------


def test_edited_message() -> None:
    data = tg.edited_text_update(CHAT, 41, " new text\x00 ")
    edit_date = data["edited_message"]["edit_date"]
    assert data["edited_message"]["date"] < edit_date
    assert parse(data) == CustomerEdit(
        chat_id=str(CHAT),
        message_id=41,
        sender=DANA,
        text="new text",
        edit_date=datetime.fromtimestamp(edit_date, UTC),
    )


def test_edited_caption() -> None:
    data = tg.document_update(CHAT, "BQACdoc", "a.pdf", "application/pdf", 1, caption="old caption")
    data["edited_message"] = data.pop("message") | {"caption": "new caption", "edit_date": WHEN}
    result = parse(data)
    assert isinstance(result, CustomerEdit)
    assert (result.text, result.edit_date) == ("new caption", datetime.fromtimestamp(WHEN, UTC))


def test_live_location_moving_is_not_an_edit() -> None:
    data = tg.location_update(CHAT, live_period=900)
    data["edited_message"] = data.pop("message") | {"edit_date": data["update_id"]}
    assert parse(data) == Ignored("live_location_update")


# --- not the customer's private chat ----------------------------------------------------------------


@pytest.mark.parametrize(("chat_id", "chat_type"), [(-4_001_234, "group"), (-1_001_234_567_890, "supergroup")])
def test_group_messages_ignored(chat_id: int, chat_type: str) -> None:
    assert parse(tg.group_text_update(chat_id, "hello bot", chat_type=chat_type)) == Ignored("group_chat")
    assert parse(tg.group_text_update(chat_id, "/start order-1", chat_type=chat_type)) == Ignored("group_chat")


def test_channel_posts_ignored() -> None:
    data = tg.channel_post_update(-1_001_987_654_321)
    assert "from" not in data["channel_post"]
    assert parse(data) == Ignored("channel_post")
    data["edited_channel_post"] = data.pop("channel_post") | {"edit_date": WHEN}
    assert parse(data) == Ignored("channel_post")


def test_migrate_to_supergroup() -> None:
    assert parse(tg.migrate_update(-4_001_234, -1_009_876_543_210)) == ChatMoved(
        old_chat_id="-4001234", new_chat_id="-1009876543210"
    )


# --- blocking, buttons --------------------------------------------------------------------------------


def test_kicked_means_blocked() -> None:
    assert parse(tg.kicked_update(CHAT)) == ChatBlocked(chat_id=str(CHAT))


def test_member_again_means_unblocked() -> None:
    assert parse(tg.member_update(CHAT)) == ChatUnblocked(chat_id=str(CHAT))


def test_bot_removed_from_group_is_not_a_block() -> None:
    data = tg.kicked_update(CHAT)
    data["my_chat_member"]["chat"] = {"id": -4_001_234, "title": "Acme Customers", "type": "group"}
    assert parse(data) == Ignored("group_chat")


def test_callback() -> None:
    data = tg.callback_update(CHAT, 99, "csat:5", query_id="4382000000000000123")
    assert parse(data) == CallbackAnswer(
        callback_query_id="4382000000000000123", chat_id=str(CHAT), message_id=99, sender=DANA, data="csat:5"
    )


def test_callback_without_data_or_message() -> None:
    data = tg.callback_update(CHAT, 99, None)
    assert "data" not in data["callback_query"]
    result = parse(data)
    assert isinstance(result, CallbackAnswer)
    assert result.data == ""
    del data["callback_query"]["message"]
    data["callback_query"]["inline_message_id"] = "AgAAAAAAAAAA"
    result = parse(data)
    assert isinstance(result, CallbackAnswer)
    assert (result.chat_id, result.message_id) == (str(CHAT), None)


# --- what the gateway does not handle -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (tg.poll_update(CHAT), "unsupported_content:poll"),
        (tg.dice_update(CHAT), "unsupported_content:dice"),
    ],
)
def test_unsupported_content_ignored(data: dict[str, Any], reason: str) -> None:
    assert parse(data) == Ignored(reason)


def test_service_message_in_private_chat_ignored() -> None:
    data = tg.text_update(CHAT, "x")
    del data["message"]["text"]
    data["message"]["write_access_allowed"] = {"from_request": True}
    assert parse(data) == Ignored("service_message:write_access_allowed")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (tg.poll_state_update(), "unknown_update:poll"),
        (tg.chat_join_request_update(-1_001_234_567_890, CHAT), "unknown_update:chat_join_request"),
        ({"update_id": 1, "some_future_update": {"x": 1}}, "unknown_update:some_future_update"),
    ],
)
def test_unknown_update_types_ignored(data: dict[str, Any], reason: str) -> None:
    assert parse(data) == Ignored(reason)


# --- raw JSON and the fakes themselves --------------------------------------------------------------


def test_parse_update_data() -> None:
    assert parse_update_data(tg.text_update(CHAT, "hi", message_id=3, date=WHEN)) == parse(
        tg.text_update(CHAT, "hi", message_id=3, date=WHEN)
    )
    bad_poll = tg.poll_update(CHAT)
    del bad_poll["message"]["poll"]["allows_revoting"]  # PTB 22.8 refuses a Poll without it
    assert parse_update_data(bad_poll) == Ignored("malformed_update:TypeError")
    result = parse_update_data({"update_id": 2, "message": {"message_id": 1}})
    assert isinstance(result, Ignored)
    assert result.reason.startswith("malformed_update:")


def test_update_ids_auto_increment_unless_given() -> None:
    first, second = tg.text_update(CHAT, "a"), tg.text_update(CHAT, "b")
    assert second["update_id"] == first["update_id"] + 1
    assert second["message"]["message_id"] > first["message"]["message_id"]
    assert tg.text_update(CHAT, "c", update_id=77)["update_id"] == 77


ALL_BUILT = [
    lambda: tg.text_update(CHAT, "hi", last_name=None, username=None, reply_to_message_id=5),
    lambda: tg.start_update(CHAT, "order-1", bot_username=tg.BOT_USERNAME),
    lambda: tg.photo_update(CHAT, [("AgACa", 1_000), ("AgACb", 50_000)], caption="c"),
    lambda: tg.document_update(CHAT, "BQAC", "a.pdf", "application/pdf", 10),
    lambda: tg.voice_update(CHAT, "AwAC"),
    lambda: tg.audio_update(CHAT, "CQAC", file_name=None, performer=None, title=None),
    lambda: tg.video_update(CHAT, "BAAC"),
    lambda: tg.video_note_update(CHAT, "DQAC"),
    lambda: tg.animation_update(CHAT, "CgAC"),
    lambda: tg.sticker_update(CHAT, None),
    lambda: tg.location_update(CHAT, live_period=900),
    lambda: tg.venue_update(CHAT),
    lambda: tg.contact_update(CHAT, last_name=None, user_id=CHAT),
    lambda: tg.poll_update(CHAT),
    lambda: tg.dice_update(CHAT),
    lambda: tg.edited_text_update(CHAT, 4, "x"),
    lambda: tg.group_text_update(-4_001_234, "hi"),
    lambda: tg.channel_post_update(-1_001_987_654_321),
    lambda: tg.migrate_update(-4_001_234, -1_009_876_543_210),
    lambda: tg.kicked_update(CHAT),
    lambda: tg.member_update(CHAT),
    lambda: tg.callback_update(CHAT, 1, None),
    lambda: tg.poll_state_update(),
    lambda: tg.chat_join_request_update(-1_001_234_567_890, CHAT),
]
# Flags PTB's Message fills in as False when Telegram left them out.
_PTB_DEFAULTS = {"channel_chat_created", "delete_chat_photo", "group_chat_created", "supergroup_chat_created"}


def _without_ptb_defaults(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ptb_defaults(v) for k, v in value.items() if not (k in _PTB_DEFAULTS and v is False)}
    if isinstance(value, list):
        return [_without_ptb_defaults(v) for v in value]
    return value


def _unknown_fields(obj: Any) -> list[str]:
    if isinstance(obj, tuple):
        return [name for item in obj for name in _unknown_fields(item)]
    if not isinstance(obj, TelegramObject):
        return []
    own = [f"{type(obj).__name__}.{key}" for key in obj.api_kwargs]
    return own + [name for value in obj._get_attrs().values() for name in _unknown_fields(value)]


@pytest.mark.parametrize("build", ALL_BUILT)
def test_fakes_are_what_ptb_reads_and_writes(build: Any) -> None:
    # Faithful to the Bot API as PTB 22.8 knows it: no unknown or null fields, and PTB writes back
    # exactly what the fake built (types included: ints for dates and ids, lists for arrays).
    data = build()
    update = Update.de_json(copy.deepcopy(data), None)
    assert _unknown_fields(update) == []
    assert _without_ptb_defaults(json.loads(update.to_json())) == data
