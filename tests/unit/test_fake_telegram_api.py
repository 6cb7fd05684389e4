"""The Telegram Bot API fake, proven against the real python-telegram-bot ``Bot`` (no mocks, no network)."""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, ChatMigrated, Conflict, EndPointNotFound, Forbidden, InvalidToken, RetryAfter

from tests.fakes.telegram_api import MAX_DOWNLOAD, FakeTelegramApi

TOKEN = "123456789:TEST-fake-token"
CHAT = 4242


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramApi]:
    server = await FakeTelegramApi(TOKEN).start()
    try:
        yield server
    finally:
        await server.close()


def bot_for(fake: FakeTelegramApi, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=fake.base_url, base_file_url=fake.base_file_url)


def text_update(chat_id: int, text: str) -> dict[str, Any]:
    return {
        "message": {
            "message_id": 1,
            "date": 1_733_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Cy"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Cy"},
            "text": text,
        }
    }


async def test_get_me_token_and_unknown_method(fake: FakeTelegramApi) -> None:
    async with bot_for(fake) as bot:  # initialize() calls getMe
        assert bot.username == "support_test_bot"
        assert bot.id == 123456789
        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("noSuchMethod")
    assert [call.method for call in fake.calls] == ["getMe", "noSuchMethod"]
    with pytest.raises(InvalidToken):  # PTB: "The token ... was rejected by the server."
        async with bot_for(fake, "123456789:wrong-token"):
            pass


async def test_raw_protocol_query_json_and_error_shapes(fake: FakeTelegramApi) -> None:
    """Besides PTB's form posts: GET with a query string, a JSON body, and the exact error envelopes."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.base_url}{TOKEN}/SENDMESSAGE?chat_id=5&text=12") as response:
            assert (await response.json())["result"]["text"] == "12"  # method names are case-insensitive
        body = {"chat_id": 5, "text": "[not json]", "reply_markup": {"remove_keyboard": True}}
        async with http.post(f"{fake.base_url}{TOKEN}/sendMessage", json=body) as response:
            assert (await response.json())["result"]["message_id"] == 2
        async with http.post(f"{fake.base_url}999:bad/getMe") as response:
            assert response.status == 401
            assert await response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        async with http.post(f"{fake.base_url}{TOKEN}/nope") as response:
            assert response.status == 404
            assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert [call.params for call in fake.calls_to("sendMessage")] == [{"chat_id": 5, "text": "12"}, body]


async def test_send_message_ids_markup_and_state(fake: FakeTelegramApi) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Talk to a human", callback_data="handoff")]])
    async with bot_for(fake) as bot:
        first = await bot.send_message(CHAT, "hello", reply_markup=markup)
        second = await bot.send_message(CHAT, "again")
        elsewhere = await bot.send_message(77, "hi")
    assert (first.message_id, second.message_id, elsewhere.message_id) == (1, 2, 1)
    assert first.chat.id == CHAT and first.chat.type == "private" and first.text == "hello"
    assert first.reply_markup == markup
    assert first.from_user is not None and first.from_user.is_bot
    params = fake.calls_to("sendMessage")[0].params
    assert params["chat_id"] == CHAT  # form field "4242" decoded
    assert params["reply_markup"] == {"inline_keyboard": [[{"text": "Talk to a human", "callback_data": "handoff"}]]}
    assert [m["text"] for m in fake.sent_messages(CHAT)] == ["hello", "again"]


async def test_text_length_counts_utf16_units_and_empty_text(fake: FakeTelegramApi) -> None:
    async with bot_for(fake) as bot:
        fits = "😀" * 2048  # 2048 code points, 4096 UTF-16 units
        assert (await bot.send_message(CHAT, fits)).text == fits
        with pytest.raises(BadRequest, match=r"(?i)message is too long"):
            await bot.send_message(CHAT, fits + "a")  # 2049 code points, 4097 units
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await bot.send_message(CHAT, "")
    assert len(fake.sent_messages(CHAT)) == 1


async def test_retry_after_then_success(fake: FakeTelegramApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB 22: retry_after as timedelta, without the deprecation warning
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7, times=2)
    async with bot_for(fake) as bot:
        for _ in range(2):
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(CHAT, "hi")
            assert caught.value.retry_after == dtm.timedelta(seconds=7)
        assert (await bot.send_message(CHAT, "hi")).message_id == 1
    assert len(fake.calls_to("sendMessage")) == 3


async def test_blocked_user_is_forbidden(fake: FakeTelegramApi) -> None:
    async with bot_for(fake) as bot:
        sent = await bot.send_message(CHAT, "before")
        fake.block(CHAT)
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(CHAT, "after")
        with pytest.raises(Forbidden):
            await bot.send_chat_action(CHAT, "typing")
        with pytest.raises(Forbidden):
            await bot.edit_message_text("edited", chat_id=CHAT, message_id=sent.message_id)
        assert (await bot.send_message(77, "others still fine")).text == "others still fine"


async def test_chat_migrated(fake: FakeTelegramApi) -> None:
    fake.fail_next(
        "sendMessage", 400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-1001234
    )
    async with bot_for(fake) as bot:
        with pytest.raises(ChatMigrated) as caught:
            await bot.send_message(-42, "hi")
        assert caught.value.new_chat_id == -1001234
        assert (await bot.send_message(-1001234, "hi")).chat.type == "supergroup"


async def test_get_updates_offset_limit_and_long_poll(fake: FakeTelegramApi) -> None:
    ids = [fake.add_update(text_update(CHAT, f"m{i}")) for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    async with bot_for(fake) as bot:
        assert [u.update_id for u in await bot.get_updates()] == ids
        assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
        confirmed = await bot.get_updates(offset=ids[1])  # confirms ids[0]
        assert [u.update_id for u in confirmed] == ids[1:]
        assert (await bot.get_updates())[0].update_id == ids[1]
        assert await bot.get_updates(offset=ids[-1] + 1) == ()

        poll = asyncio.create_task(bot.get_updates(offset=ids[-1] + 1, timeout=10))
        await asyncio.sleep(0.3)
        assert not poll.done()  # long polling: held open while there is nothing new
        started = asyncio.get_running_loop().time()
        new_id = fake.add_update(text_update(CHAT, "wake up"))
        updates = await asyncio.wait_for(poll, 5)
        assert asyncio.get_running_loop().time() - started < 2
        assert [u.update_id for u in updates] == [new_id] and new_id > ids[-1]
        assert updates[0].message is not None and updates[0].message.text == "wake up"
    assert fake.calls_to("getUpdates")[-1].params == {"offset": ids[-1] + 1, "timeout": 10}


async def test_second_poller_terminates_the_first(fake: FakeTelegramApi) -> None:
    # Two bot instances polling (one Bot holds a single getUpdates connection, so two Bots).
    async with bot_for(fake) as old, bot_for(fake) as new:
        first = asyncio.create_task(old.get_updates(timeout=10))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(new.get_updates(timeout=10))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 5)
        fake.add_update(text_update(CHAT, "x"))
        assert len(await asyncio.wait_for(second, 5)) == 1


async def test_get_updates_conflicts_with_webhook(fake: FakeTelegramApi) -> None:
    fake.add_update(text_update(CHAT, "pending"))
    async with bot_for(fake) as bot:
        assert await bot.set_webhook(
            "https://gateway.example/telegram", secret_token="s3cret", allowed_updates=["message"]
        )
        info = await bot.get_webhook_info()
        assert info.url == "https://gateway.example/telegram" and info.pending_update_count == 1
        with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
            await bot.get_updates()
        assert await bot.delete_webhook(drop_pending_updates=True)
        assert await bot.get_updates() == ()
    params = fake.calls_to("setWebhook")[0].params
    assert params["url"] == "https://gateway.example/telegram"
    assert params["secret_token"] == "s3cret"
    assert params["allowed_updates"] == ["message"]
    assert fake.calls_to("deleteWebhook")[0].params["drop_pending_updates"] is True


async def test_get_file_download_and_too_big(fake: FakeTelegramApi) -> None:
    path = fake.add_file("FILE1", b"invoice bytes")
    fake.add_file("LIMIT", b"x", file_size=MAX_DOWNLOAD)
    fake.add_file("BIG", b"x", file_size=MAX_DOWNLOAD + 1)
    async with bot_for(fake) as bot:
        file = await bot.get_file("FILE1")
        assert file.file_size == len(b"invoice bytes")
        assert file.file_path == f"{bot.base_file_url}/{path}"
        assert bytes(await file.download_as_bytearray()) == b"invoice bytes"
        assert (await bot.get_file("LIMIT")).file_size == MAX_DOWNLOAD
        with pytest.raises(BadRequest, match=r"(?i)file is too big"):
            await bot.get_file("BIG")
        with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
            await bot.get_file("NOPE")


async def test_send_photo_and_document_uploads(fake: FakeTelegramApi) -> None:
    photo = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    async with bot_for(fake) as bot:
        sent = await bot.send_photo(CHAT, photo=photo, filename="receipt.png", caption="your receipt")
        assert sent.caption == "your receipt" and sent.photo
        upload = fake.calls_to("sendPhoto")[0].files["photo"]
        assert (upload.filename, upload.content_type, upload.data) == ("receipt.png", "image/png", photo)
        file = await bot.get_file(sent.photo[-1].file_id)  # what was uploaded can be fetched back
        assert bytes(await file.download_as_bytearray()) == photo
        again = await bot.send_photo(77, photo=sent.photo[-1].file_id)  # resend by file_id: no upload
        assert again.photo[-1].file_id == sent.photo[-1].file_id
        assert fake.calls_to("sendPhoto")[1].files == {}

        doc = await bot.send_document(CHAT, document=b"a,b\n1,2\n", filename="order.csv")
        assert doc.document is not None and doc.document.file_name == "order.csv"
        assert doc.document.file_size == 8 and doc.message_id == 2
        assert fake.calls_to("sendDocument")[0].files["document"].data == b"a,b\n1,2\n"
        with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
            await bot.send_document(CHAT, document="UNKNOWN-ID")


async def test_edit_delete_and_callback_answer(fake: FakeTelegramApi) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
    async with bot_for(fake) as bot:
        sent = await bot.send_message(CHAT, "Resolved?", reply_markup=markup)
        edited = await bot.edit_message_text("Thanks!", chat_id=CHAT, message_id=sent.message_id)
        assert isinstance(edited, type(sent)) and edited.text == "Thanks!" and edited.edit_date is not None
        assert fake.sent_messages(CHAT)[0]["text"] == "Thanks!"
        assert "reply_markup" not in fake.sent_messages(CHAT)[0]  # edited without markup: keyboard removed
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text("Thanks!", chat_id=CHAT, message_id=sent.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_text("x", chat_id=CHAT, message_id=99)
        assert await bot.answer_callback_query("cbq-1", text="noted")
        assert await bot.delete_message(CHAT, sent.message_id) is True
        assert fake.sent_messages(CHAT) == []
        with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
            await bot.delete_message(CHAT, sent.message_id)
        assert (await bot.send_message(CHAT, "next")).message_id == 2  # ids are never reused
    assert fake.calls_to("answerCallbackQuery")[0].params == {"callback_query_id": "cbq-1", "text": "noted"}


async def test_deliver_webhook_with_secret_header() -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []

    async def receive(request: web.Request) -> web.Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        received.append((secret, await request.json()))
        return web.Response(status=200 if secret == "s3cret" else 403)

    app = web.Application()
    app.router.add_post("/telegram", receive)
    receiver = TestServer(app, host="127.0.0.1")
    await receiver.start_server()
    fake = await FakeTelegramApi(TOKEN).start()
    try:
        with pytest.raises(RuntimeError):
            await fake.deliver_webhook(text_update(CHAT, "too early"))
        async with bot_for(fake) as bot:
            await bot.set_webhook(str(receiver.make_url("/telegram")), secret_token="s3cret")
            assert await fake.deliver_webhook(text_update(CHAT, "hello")) == 200
            assert await fake.deliver_webhook(text_update(CHAT, "forged"), secret="wrong") == 403
            assert await fake.deliver_webhook(text_update(CHAT, "bare"), secret="") == 403
            update = Update.de_json(received[0][1], bot)
            assert update.message is not None and update.message.text == "hello"
        assert [secret for secret, _ in received] == ["s3cret", "wrong", None]
        ids = [body["update_id"] for _, body in received]
        assert ids == sorted(ids) and len(set(ids)) == 3
    finally:
        await fake.close()
        await receiver.close()
