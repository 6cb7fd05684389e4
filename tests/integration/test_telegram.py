"""Telegram end to end: the real python-telegram-bot against the local fake Bot API, a real database."""

from __future__ import annotations

import time
from pathlib import Path

from agent_bridge.slack.card import ACTION_RESOLVE
from tests.conftest import GatewayFactory
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_events import message_deleted
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.telegram_updates import (
    callback_update,
    channel_post_update,
    document_update,
    edited_text_update,
    group_text_update,
    kicked_update,
    location_update,
    member_update,
    migrate_update,
    photo_update,
    poll_state_update,
    start_update,
    sticker_update,
    text_update,
    voice_update,
)
from tests.helpers import eventually
from tests.integration.slack_desk import PNG as SLACK_PNG
from tests.integration.slack_desk import texts
from tests.integration.telegram_bot import (
    WEBHOOK_SECRET,
    start_polling,
    start_webhook,
    start_webhook_desk,
    texts_to,
)

CHAT = 5550001
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 300  # Telegram re-encodes every photo as JPEG
OGG = b"OggS" + b"\x00" * 60


async def test_a_polled_message_is_answered_through_send_message(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_polling(gateway_factory, telegram)
    telegram.add_update(text_update(CHAT, "How long does delivery take?", message_id=10))
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 1)
    store = gw.runtime.store
    messages = await store.messages.find({}).sort("seq", 1).to_list()
    assert [m["author"] for m in messages] == ["customer", "ai"]
    assert messages[0]["origin"]["provider_message_id"] == f"{CHAT}:10"
    assert "deliver" in texts_to(telegram, CHAT)[0].lower()


async def test_a_redelivered_update_and_a_repeated_message_are_stored_once(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_polling(gateway_factory, telegram)
    telegram.add_update(text_update(CHAT, "What payment methods do you accept?", message_id=11, update_id=500))
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 1)
    # Telegram sends the same message again under a new update (after a webhook timeout, say).
    telegram.add_update(text_update(CHAT, "What payment methods do you accept?", message_id=11, update_id=501))
    await eventually(lambda: any(c.params.get("offset") == 502 for c in telegram.calls_to("getUpdates")))
    assert await gw.runtime.store.messages.count_documents({"author": "customer"}) == 1
    assert len(texts_to(telegram, CHAT)) == 1


async def test_the_polling_offset_survives_a_restart_without_losing_or_repeating(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    first = await start_polling(gateway_factory, telegram)
    telegram.add_update(text_update(CHAT, "Do you ship to Canada?", message_id=20))
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 1)
    await first.close()  # stops its polling; the offset is in the database
    telegram.add_update(text_update(CHAT, "How do I reset my password?", message_id=21))
    second = await start_polling(gateway_factory, telegram)
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 2)
    customer = await second.runtime.store.messages.find({"author": "customer"}).sort("seq", 1).to_list()
    assert [m["text"] for m in customer] == ["Do you ship to Canada?", "How do I reset my password?"]
    # The second process began where the first stopped: it never asked for the first update again.
    offsets = [c.params.get("offset") for c in telegram.calls_to("getUpdates")]
    assert offsets[-1] is not None and int(offsets[-1]) > 1


async def test_webhook_mode_registers_the_secret_and_refuses_forged_updates(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_webhook(gateway_factory, telegram)
    hook = telegram.webhook
    assert hook is not None and hook["url"] == f"{gw.base_url}/telegram/webhook"
    assert hook["secret_token"] == WEBHOOK_SECRET
    assert set(hook["allowed_updates"]) == {"message", "edited_message", "callback_query", "my_chat_member"}
    assert await telegram.deliver_webhook(text_update(CHAT, "forged"), secret="wrong-secret") == 403
    assert await telegram.deliver_webhook(text_update(CHAT, "no header"), secret="") == 403
    assert await gw.runtime.store.messages.count_documents({}) == 0
    async with gw.http.post(
        f"{gw.base_url}/telegram/webhook",
        data=b"{not json",
        headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
    ) as response:
        assert response.status == 400
    assert await telegram.deliver_webhook(text_update(CHAT, "Where is my order?", message_id=30)) == 200
    assert await gw.runtime.store.messages.count_documents({"author": "customer"}) == 1
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 1)


async def test_groups_channels_and_unknown_updates_are_acknowledged_and_ignored(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_webhook(gateway_factory, telegram)
    for update in (
        group_text_update(-100200300, "hello bot"),
        channel_post_update(-100999),
        poll_state_update(),
        {"chat_join_request": {"chat": {"id": -1, "type": "group", "title": "x"}}},
    ):
        assert await telegram.deliver_webhook(update) == 200
    assert await gw.runtime.store.messages.count_documents({}) == 0
    assert await gw.runtime.store.conversations.count_documents({}) == 0


async def test_media_is_fetched_into_the_file_store_and_an_oversized_file_is_noted(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_polling(gateway_factory, telegram)
    telegram.add_file("photo-big", JPEG)
    telegram.add_file("voice-1", OGG)
    telegram.add_file("huge-doc", b"%PDF-1.4 tiny", file_size=25 * 1024 * 1024)
    telegram.add_update(
        photo_update(CHAT, [("photo-small", 100), ("photo-big", len(JPEG))], caption="It arrived broken")
    )
    telegram.add_update(voice_update(CHAT, "voice-1", file_size=len(OGG)))
    telegram.add_update(document_update(CHAT, "huge-doc", "invoice.pdf", "application/pdf", 25 * 1024 * 1024))

    async def three() -> bool:
        return await gw.runtime.store.messages.count_documents({"author": "customer"}) == 3

    await eventually(three)
    customer = await gw.runtime.store.messages.find({"author": "customer"}).sort("seq", 1).to_list()
    photo, voice, document = customer
    assert photo["text"] == "It arrived broken" and photo["attachments"][0]["content_type"] == "image/jpeg"
    _doc, data = await gw.runtime.files.read(photo["attachments"][0]["file_id"])
    assert data == JPEG, "the largest size was fetched"
    assert voice["attachments"][0]["content_type"] == "audio/ogg"
    assert document["attachments"] == [] and "invoice.pdf not received" in document["text"]
    assert [c.params["file_id"] for c in telegram.calls_to("getFile")] == ["photo-big", "voice-1"]


async def test_stickers_locations_and_contacts_become_readable_text(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_polling(gateway_factory, telegram)
    telegram.add_update(sticker_update(CHAT, "👍"))
    telegram.add_update(location_update(CHAT, 52.52, 13.405))

    async def two() -> bool:
        return await gw.runtime.store.messages.count_documents({"author": "customer"}) == 2

    await eventually(two)
    texts = [m["text"] for m in await gw.runtime.store.messages.find({"author": "customer"}).sort("seq", 1).to_list()]
    assert texts[0] == "👍" and texts[1].startswith("📍 Location: 52.52000, 13.40500")


async def test_start_greets_once_and_keeps_the_deep_link_payload(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_webhook(gateway_factory, telegram)
    start = start_update(CHAT, "order-1042", message_id=40)
    assert await telegram.deliver_webhook(start) == 200
    assert await telegram.deliver_webhook({**start, "update_id": start["update_id"] + 1000}) == 200
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 1)
    assert texts_to(telegram, CHAT)[0].startswith("Hello!")
    conversation = await gw.runtime.store.conversations.find_one({})
    assert conversation["details"]["start_payload"] == "order-1042"
    assert await gw.runtime.store.messages.count_documents({"author": "customer"}) == 0, "/start is no question"


async def test_a_customer_edit_is_recorded_with_its_history(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_webhook(gateway_factory, telegram)
    assert await telegram.deliver_webhook(text_update(CHAT, "My order number is 1O42", message_id=50)) == 200
    assert await telegram.deliver_webhook(edited_text_update(CHAT, 50, "My order number is 1042")) == 200
    message = await gw.runtime.store.messages.find_one({"author": "customer"})
    assert message["text"] == "My order number is 1042"
    assert [e["text"] for e in message["edits"]] == ["My order number is 1O42"]


async def test_a_blocked_bot_marks_the_contact_unreachable_and_stops_retrying(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_webhook(gateway_factory, telegram)
    telegram.block(CHAT)
    assert await telegram.deliver_webhook(text_update(CHAT, "How long does delivery take?", message_id=60)) == 200
    store = gw.runtime.store

    async def failed() -> bool:
        return await store.outbox.count_documents({"channel": "telegram", "state": "failed"}) == 1

    await eventually(failed)
    job = await store.outbox.find_one({"channel": "telegram"})
    assert job["attempts"] == 1 and "blocked" in job["last_error"]

    async def marked() -> bool:  # by the outbox's failure hook, just after the job is marked failed
        conversation = await store.conversations.find_one({})
        return "blocked" in (conversation.get("unreachable") or {}).get("reason", "")

    await eventually(marked)


async def test_my_chat_member_kicked_marks_unreachable_and_member_clears_it(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_webhook(gateway_factory, telegram)
    assert await telegram.deliver_webhook(text_update(CHAT, "hi", message_id=70)) == 200
    assert await telegram.deliver_webhook(kicked_update(CHAT)) == 200
    conversation = await gw.runtime.store.conversations.find_one({})
    assert conversation["unreachable"]["reason"] == "the customer blocked the bot"
    assert await telegram.deliver_webhook(member_update(CHAT)) == 200
    assert (await gw.runtime.store.conversations.find_one({}))["unreachable"] is None


async def test_flood_control_is_honoured_through_the_outbox(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_webhook(gateway_factory, telegram)
    telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    started = time.monotonic()
    assert await telegram.deliver_webhook(text_update(CHAT, "Do you accept PayPal?", message_id=80)) == 200
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 1, timeout=15)
    # The outbox's own backoff is 0.05-0.5 s in tests: only retry_after makes the second try wait 1 s.
    assert time.monotonic() - started >= 1.0, "the retry waited for retry_after"
    assert len(telegram.calls_to("sendMessage")) == 2
    outbox = gw.runtime.store.outbox

    async def sent_on_second_attempt() -> bool:
        job = await outbox.find_one({"channel": "telegram"})
        return job["state"] == "sent" and job["attempts"] == 2

    await eventually(sent_on_second_attempt)


async def test_the_ai_shows_typing_while_it_works(gateway_factory: GatewayFactory, telegram: FakeTelegramApi) -> None:
    await start_webhook(gateway_factory, telegram)
    assert await telegram.deliver_webhook(text_update(CHAT, "What is your refund policy?", message_id=90)) == 200
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 1)
    actions = telegram.calls_to("sendChatAction")
    assert actions and actions[0].params["action"] == "typing" and int(actions[0].params["chat_id"]) == CHAT


async def test_a_handoff_round_trip_with_rating_buttons(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    """A Telegram customer asks for a person: the card reaches Slack with the channel's label, the
    agent's reply arrives through sendMessage, and after Resolve the rating is a tap on a button."""
    desk = await start_webhook_desk(gateway_factory, slack, routing_file, telegram)
    assert await telegram.deliver_webhook(text_update(CHAT, "I want to talk to a human please", message_id=100)) == 200
    store = desk.gateway.runtime.store
    conversation = await store.conversations.find_one({"ref.chat_id": str(CHAT)})
    cid = str(conversation["_id"])
    channel, thread_ts = await desk.card(cid)
    assert "Telegram" in str(slack.message(channel, thread_ts).blocks)
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "Hi Dana, I'm on it.")) == 200
    await eventually(lambda: "Hi Dana, I'm on it." in texts_to(telegram, CHAT))

    assert await desk.click(ACTION_RESOLVE, cid) == 200
    await eventually(lambda: any("How did we do?" in t for t in texts_to(telegram, CHAT)))
    [question] = [m for m in telegram.sent_messages(CHAT) if "How did we do?" in (m.get("text") or "")]
    buttons = question["reply_markup"]["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == ["csat:1", "csat:2", "csat:3", "csat:4", "csat:5"]
    assert await telegram.deliver_webhook(callback_update(CHAT, question["message_id"], "csat:4")) == 200
    await eventually(lambda: any("rating us 4 out of 5" in t for t in texts_to(telegram, CHAT)))
    record = await store.handoffs.find_one({"conversation_id": conversation["_id"]})
    assert record["csat"] == 4
    assert telegram.calls_to("answerCallbackQuery"), "the button's spinner was stopped"


async def test_agent_files_are_uploaded_and_deletes_remove_every_part(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await start_webhook_desk(gateway_factory, slack, routing_file, telegram)
    assert await telegram.deliver_webhook(text_update(CHAT, "I want to talk to a human please", message_id=110)) == 200
    conversation = await desk.gateway.runtime.store.conversations.find_one({"ref.chat_id": str(CHAT)})
    channel, thread_ts = await desk.card(str(conversation["_id"]))
    file = slack.add_user_file("label.png", "image/png", SLACK_PNG, user="U0DANA")
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "The label", files=[file])) == 200
    await eventually(lambda: bool(telegram.calls_to("sendPhoto")))
    upload = telegram.calls_to("sendPhoto")[0].files["photo"]
    assert upload.data == SLACK_PNG

    long_reply = "\n\n".join("word " * 900 for _ in range(2))  # 9,000 characters: three Telegram messages
    before = len(telegram.calls_to("sendMessage"))
    reply = desk.agent_says(channel, thread_ts, "U0DANA", long_reply)
    assert await desk.event(reply) == 200
    await eventually(lambda: len(telegram.calls_to("sendMessage")) == before + 3)
    mapped = desk.gateway.runtime.store.provider_ids

    async def every_part_mapped() -> bool:  # each part's Telegram id, for the delete below
        return await mapped.count_documents({"channel": "telegram", "part": {"$gt": 0}}) == 2

    await eventually(every_part_mapped)
    shown = len(texts_to(telegram, CHAT))
    assert await desk.event(message_deleted(channel, reply["ts"], thread_ts, "U0DANA", long_reply)) == 200
    await eventually(lambda: len(texts_to(telegram, CHAT)) == shown - 3)
    assert not any("word word" in t for t in texts_to(telegram, CHAT))


async def test_a_migrated_chat_moves_its_conversation(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    """migrate_to_chat_id, from a send (ChatMigrated) or from the service message: the conversation
    follows the chat to its new id, and the message goes there."""
    gw = await start_webhook(gateway_factory, telegram)
    store = gw.runtime.store
    telegram.fail_next(
        "sendMessage", 400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-1001234
    )
    assert await telegram.deliver_webhook(text_update(CHAT, "How long does delivery take?", message_id=120)) == 200
    await eventually(lambda: len(texts_to(telegram, -1001234)) == 1)
    conversation = await store.conversations.find_one({})
    assert conversation["ref"]["chat_id"] == "-1001234" and conversation["ref_key"] == "telegram|default|-1001234|"
    assert await telegram.deliver_webhook(migrate_update(-1001234, -1005678)) == 200
    assert (await store.conversations.find_one({}))["ref"]["chat_id"] == "-1005678"


async def test_a_polled_update_the_library_cannot_parse_is_skipped_not_retried_forever(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_polling(gateway_factory, telegram)
    broken = text_update(CHAT, "placeholder", message_id=130)
    broken["message"]["poll"] = {"id": "1", "question": "?", "options": [{"text": "a"}]}  # fields PTB requires missing
    telegram.add_update(broken)
    telegram.add_update(text_update(CHAT, "How do I reset my password?", message_id=131))
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 1)
    stored = await gw.runtime.store.messages.find({"author": "customer"}).to_list()
    assert [m["text"] for m in stored] == ["How do I reset my password?"]


async def test_a_telegram_outage_delays_the_reply_and_loses_nothing(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi
) -> None:
    gw = await start_webhook(gateway_factory, telegram)
    telegram.fail_next("sendMessage", 502, "Bad Gateway", times=3)
    assert await telegram.deliver_webhook(text_update(CHAT, "Do you ship to Canada?", message_id=140)) == 200
    await eventually(lambda: len(texts_to(telegram, CHAT)) == 1, timeout=15)
    assert len(telegram.calls_to("sendMessage")) == 4, "three refusals, then the one delivery"
    outbox = gw.runtime.store.outbox

    async def sent() -> bool:
        return (await outbox.find_one({"channel": "telegram"}))["state"] == "sent"

    await eventually(sent)


async def test_a_customer_who_blocked_the_bot_is_shown_unreachable_in_the_thread(
    gateway_factory: GatewayFactory, telegram: FakeTelegramApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await start_webhook_desk(gateway_factory, slack, routing_file, telegram)
    assert await telegram.deliver_webhook(text_update(CHAT, "I want to talk to a human please", message_id=150)) == 200
    conversation = await desk.gateway.runtime.store.conversations.find_one({"ref.chat_id": str(CHAT)})
    channel, thread_ts = await desk.card(str(conversation["_id"]))
    assert await telegram.deliver_webhook(kicked_update(CHAT)) == 200
    await eventually(lambda: "can no longer be reached" in texts(slack.thread(channel, thread_ts)))
    assert "blocked the bot" in texts(slack.thread(channel, thread_ts))
