"""What Telegram sends a bot, built as the Bot API documents it: one `Update` dict per call.

Shapes (https://core.telegram.org/bots/api):
- "Update": `update_id` plus exactly one optional field (message, edited_message, channel_post,
  callback_query, my_chat_member, poll, chat_join_request, ...).
- "Message": message_id, from (absent in channels), chat, date (unix seconds), then the content field.
  Optional fields are omitted, never null. `animation` messages also carry `document` and `venue`
  messages also carry `location`, "for backward compatibility".
- "PhotoSize": a photo arrives as several sizes, smallest first; "Sticker", "Voice", "Audio", "Video",
  "VideoNote", "Animation", "Document", "Location", "Venue", "Contact", "Poll" as documented there.
- "ChatMemberUpdated" (my_chat_member): in a private chat only when the user blocks ("kicked") or
  unblocks ("member") the bot; the member objects describe the bot itself.
- "CallbackQuery": id, from, message (the bot's message with the button), chat_instance, data.
- Group → supergroup migration: the old group gets a service message with `migrate_to_chat_id`.
- Deep links (t.me/<bot>?start=<payload>) arrive as the text "/start <payload>" with a bot_command entity.

Private chat ids equal the user id. update_id and message_id come from module counters unless given.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any

BOT_ID = 7_000_000_001
BOT_USERNAME = "AcmeSupportBot"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Acme Support", "username": BOT_USERNAME}

_update_ids = itertools.count(500_000_001)
_message_ids = itertools.count(1)


def next_update_id() -> int:
    return next(_update_ids)


def next_message_id() -> int:
    return next(_message_ids)


def unique_id(file_id: str) -> str:
    """The file_unique_id Telegram would pair with `file_id` here: stable, short, distinct per file."""
    return "AgAD" + hashlib.sha256(file_id.encode()).hexdigest()[:12]


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def user(
    user_id: int,
    *,
    first_name: str = "Dana",
    last_name: str | None = "Reyes",
    username: str | None = "dana_reyes",
    language_code: str | None = "en",
) -> dict[str, Any]:
    return _drop_none(
        {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "last_name": last_name,
            "username": username,
            "language_code": language_code,
        }
    )


def private_chat(
    chat_id: int, *, first_name: str = "Dana", last_name: str | None = "Reyes", username: str | None = "dana_reyes"
) -> dict[str, Any]:
    return _drop_none(
        {"id": chat_id, "first_name": first_name, "last_name": last_name, "username": username, "type": "private"}
    )


def message(
    chat_id: int,
    content: dict[str, Any],
    *,
    message_id: int | None = None,
    first_name: str = "Dana",
    last_name: str | None = "Reyes",
    username: str | None = "dana_reyes",
    language_code: str | None = "en",
    date: int | None = None,
    reply_to_message_id: int | None = None,
) -> dict[str, Any]:
    """A Message from a customer in their private chat with the bot; `content` holds text/photo/... fields."""
    msg: dict[str, Any] = {
        "message_id": message_id if message_id is not None else next_message_id(),
        "from": user(
            chat_id, first_name=first_name, last_name=last_name, username=username, language_code=language_code
        ),
        "chat": private_chat(chat_id, first_name=first_name, last_name=last_name, username=username),
        "date": date if date is not None else int(time.time()),
    }
    if reply_to_message_id is not None:
        msg["reply_to_message"] = bot_message(chat_id, reply_to_message_id, "How can we help?")
    msg.update(content)
    return msg


def bot_message(chat_id: int, message_id: int, text: str, **extra: Any) -> dict[str, Any]:
    """A message the bot sent earlier (as it appears in reply_to_message or a callback query)."""
    return {
        "message_id": message_id,
        "from": BOT_USER,
        "chat": private_chat(chat_id),
        "date": int(time.time()) - 60,
        "text": text,
        **extra,
    }


def update(field: str, payload: dict[str, Any], *, update_id: int | None = None) -> dict[str, Any]:
    return {"update_id": update_id if update_id is not None else next_update_id(), field: payload}


def _message_update(
    chat_id: int, content: dict[str, Any], *, update_id: int | None = None, **kw: Any
) -> dict[str, Any]:
    return update("message", message(chat_id, content, **kw), update_id=update_id)


def _with_caption(content: dict[str, Any], caption: str) -> dict[str, Any]:
    return {**content, "caption": caption} if caption else content


def _commands(text: str) -> dict[str, Any]:
    # Telegram marks a leading "/command" (with an optional @bot) as a bot_command entity.
    if not text.startswith("/"):
        return {}
    return {"entities": [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]}


# --- customer messages ---------------------------------------------------------------------------
# Every builder below also takes the keywords of `message` (message_id, first_name, last_name,
# username, language_code, date, reply_to_message_id) and update_id.


def text_update(
    chat_id: int,
    text: str,
    *,
    message_id: int | None = None,
    first_name: str = "Dana",
    last_name: str | None = "Reyes",
    update_id: int | None = None,
    reply_to_message_id: int | None = None,
    **kw: Any,
) -> dict[str, Any]:
    return _message_update(
        chat_id,
        {"text": text, **_commands(text)},
        message_id=message_id,
        first_name=first_name,
        last_name=last_name,
        update_id=update_id,
        reply_to_message_id=reply_to_message_id,
        **kw,
    )


def start_update(chat_id: int, payload: str = "", *, bot_username: str | None = None, **kw: Any) -> dict[str, Any]:
    command = f"/start@{bot_username}" if bot_username else "/start"
    return text_update(chat_id, f"{command} {payload}" if payload else command, **kw)


def photo_update(chat_id: int, file_ids_sizes: list[tuple[str, int]], caption: str = "", **kw: Any) -> dict[str, Any]:
    """One PhotoSize per (file_id, file_size), ordered smallest first as Telegram sends them."""
    sizes = []
    for i, (file_id, size) in enumerate(sorted(file_ids_sizes, key=lambda fs: fs[1])):
        width = (90, 320, 800, 1280, 2560)[min(i, 4)] * (2 ** max(0, i - 4))
        sizes.append(
            {
                "file_id": file_id,
                "file_unique_id": unique_id(file_id),
                "file_size": size,
                "width": width,
                "height": width * 3 // 4,
            }
        )
    return _message_update(chat_id, _with_caption({"photo": sizes}, caption), **kw)


def document_update(
    chat_id: int, file_id: str, file_name: str, mime_type: str, file_size: int, caption: str = "", **kw: Any
) -> dict[str, Any]:
    doc = {
        "file_name": file_name,
        "mime_type": mime_type,
        "file_id": file_id,
        "file_unique_id": unique_id(file_id),
        "file_size": file_size,
    }
    return _message_update(chat_id, _with_caption({"document": doc}, caption), **kw)


def voice_update(
    chat_id: int, file_id: str, *, file_size: int = 8_734, duration: int = 3, caption: str = "", **kw: Any
) -> dict[str, Any]:
    voice = {
        "duration": duration,
        "mime_type": "audio/ogg",
        "file_id": file_id,
        "file_unique_id": unique_id(file_id),
        "file_size": file_size,
    }
    return _message_update(chat_id, _with_caption({"voice": voice}, caption), **kw)


def audio_update(
    chat_id: int,
    file_id: str,
    *,
    file_name: str | None = "song.mp3",
    mime_type: str | None = "audio/mpeg",
    file_size: int = 3_145_728,
    duration: int = 183,
    performer: str | None = "The Examples",
    title: str | None = "Hold Music",
    caption: str = "",
    **kw: Any,
) -> dict[str, Any]:
    audio = _drop_none(
        {
            "duration": duration,
            "file_name": file_name,
            "mime_type": mime_type,
            "title": title,
            "performer": performer,
            "file_id": file_id,
            "file_unique_id": unique_id(file_id),
            "file_size": file_size,
        }
    )
    return _message_update(chat_id, _with_caption({"audio": audio}, caption), **kw)


def video_update(
    chat_id: int,
    file_id: str,
    *,
    file_name: str | None = "clip.mp4",
    mime_type: str | None = "video/mp4",
    file_size: int = 5_242_880,
    width: int = 1280,
    height: int = 720,
    duration: int = 12,
    caption: str = "",
    **kw: Any,
) -> dict[str, Any]:
    video = _drop_none(
        {
            "duration": duration,
            "width": width,
            "height": height,
            "file_name": file_name,
            "mime_type": mime_type,
            "file_id": file_id,
            "file_unique_id": unique_id(file_id),
            "file_size": file_size,
        }
    )
    return _message_update(chat_id, _with_caption({"video": video}, caption), **kw)


def video_note_update(
    chat_id: int, file_id: str, *, file_size: int = 1_048_576, length: int = 384, duration: int = 7, **kw: Any
) -> dict[str, Any]:
    # Video notes ("round videos") carry no file_name, mime_type or caption.
    note = {
        "duration": duration,
        "length": length,
        "file_id": file_id,
        "file_unique_id": unique_id(file_id),
        "file_size": file_size,
    }
    return _message_update(chat_id, {"video_note": note}, **kw)


def animation_update(
    chat_id: int,
    file_id: str,
    *,
    file_name: str = "funny.gif.mp4",
    file_size: int = 421_337,
    caption: str = "",
    **kw: Any,
) -> dict[str, Any]:
    animation = {
        "file_name": file_name,
        "mime_type": "video/mp4",
        "duration": 2,
        "width": 320,
        "height": 240,
        "file_id": file_id,
        "file_unique_id": unique_id(file_id),
        "file_size": file_size,
    }
    document = {k: animation[k] for k in ("file_name", "mime_type", "file_id", "file_unique_id", "file_size")}
    return _message_update(chat_id, _with_caption({"animation": animation, "document": document}, caption), **kw)


def sticker_update(
    chat_id: int, emoji: str | None, *, file_id: str = "CAACAgIAAxkBAAIBsticker", **kw: Any
) -> dict[str, Any]:
    sticker = _drop_none(
        {
            "width": 512,
            "height": 512,
            "emoji": emoji,
            "set_name": "AcmeStickers",
            "is_animated": False,
            "is_video": False,
            "type": "regular",
            "file_id": file_id,
            "file_unique_id": unique_id(file_id),
            "file_size": 23_110,
        }
    )
    return _message_update(chat_id, {"sticker": sticker}, **kw)


def location_update(
    chat_id: int, latitude: float = 52.52, longitude: float = 13.405, *, live_period: int | None = None, **kw: Any
) -> dict[str, Any]:
    location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if live_period is not None:
        location |= {"live_period": live_period, "horizontal_accuracy": 12.5}
    return _message_update(chat_id, {"location": location}, **kw)


def venue_update(
    chat_id: int,
    title: str = "Brandenburg Gate",
    address: str = "Pariser Platz, 10117 Berlin",
    latitude: float = 52.516275,
    longitude: float = 13.377704,
    **kw: Any,
) -> dict[str, Any]:
    location = {"latitude": latitude, "longitude": longitude}
    venue = {"location": location, "title": title, "address": address, "foursquare_id": "4adcdac6f964a520fa5221e3"}
    return _message_update(chat_id, {"venue": venue, "location": location}, **kw)


def contact_update(
    chat_id: int,
    phone_number: str = "+4915112345678",
    first_name: str = "Sam",
    last_name: str | None = "Okafor",
    *,
    user_id: int | None = None,
    **kw: Any,
) -> dict[str, Any]:
    contact = _drop_none(
        {"phone_number": phone_number, "first_name": first_name, "last_name": last_name, "user_id": user_id}
    )
    return _message_update(chat_id, {"contact": contact}, **kw)


def poll_update(chat_id: int, **kw: Any) -> dict[str, Any]:
    """A message with a poll the customer created (Bot API "Poll"); the gateway does not support these."""
    return _message_update(chat_id, {"poll": _poll()}, **kw)


def dice_update(chat_id: int, emoji: str = "🎲", value: int = 4, **kw: Any) -> dict[str, Any]:
    return _message_update(chat_id, {"dice": {"emoji": emoji, "value": value}}, **kw)


def _poll() -> dict[str, Any]:
    return {
        "id": "5420012398774403084",
        "question": "Which plan suits me?",
        # persistent_id and allows_revoting are required since Bot API 9.6, members_only since 10.0
        # (PTB 22.8 refuses a Poll without them).
        "options": [
            {"persistent_id": "0", "text": "Basic", "voter_count": 0},
            {"persistent_id": "1", "text": "Pro", "voter_count": 0},
        ],
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
        "allows_revoting": False,
        "members_only": False,
    }


def edited_text_update(
    chat_id: int, message_id: int, text: str, *, update_id: int | None = None, **kw: Any
) -> dict[str, Any]:
    """The customer edited their message `message_id`: `date` stays the original send time."""
    now = int(time.time())
    kw.setdefault("date", now - 30)
    msg = message(chat_id, {"edit_date": now, "text": text, **_commands(text)}, message_id=message_id, **kw)
    return update("edited_message", msg, update_id=update_id)


# --- not from a customer's private chat --------------------------------------------------------------


def group_text_update(
    chat_id: int, text: str, *, chat_type: str = "group", title: str = "Acme Customers", **kw: Any
) -> dict[str, Any]:
    """A message in a group (negative id) or supergroup (-100... id) the bot was added to."""
    update_id = kw.pop("update_id", None)
    msg = message(42_000_001, {"text": text, **_commands(text)}, **kw)
    msg["chat"] = {"id": chat_id, "title": title, "type": chat_type}
    return update("message", msg, update_id=update_id)


def channel_post_update(
    chat_id: int, text: str = "Service window tonight 22:00-23:00 UTC", **kw: Any
) -> dict[str, Any]:
    """A post in a channel the bot administers: no `from`, the channel itself is `sender_chat`."""
    chat = {"id": chat_id, "title": "Acme Status", "username": "acme_status", "type": "channel"}
    post = {
        "message_id": kw.get("message_id") or next_message_id(),
        "sender_chat": chat,
        "chat": chat,
        "date": int(time.time()),
        "text": text,
    }
    return update("channel_post", post, update_id=kw.get("update_id"))


def migrate_update(old_chat_id: int, new_chat_id: int, **kw: Any) -> dict[str, Any]:
    """The service message a group gets when it becomes a supergroup (sent in the old chat)."""
    update_id = kw.pop("update_id", None)
    msg = message(42_000_001, {"migrate_to_chat_id": new_chat_id}, **kw)
    msg["chat"] = {"id": old_chat_id, "title": "Acme Customers", "type": "group"}
    return update("message", msg, update_id=update_id)


# --- other update types ----------------------------------------------------------------------------


def _my_chat_member(chat_id: int, old: dict[str, Any], new: dict[str, Any], update_id: int | None) -> dict[str, Any]:
    change = {
        "chat": private_chat(chat_id),
        "from": user(chat_id),
        "date": int(time.time()),
        "old_chat_member": {"user": BOT_USER, **old},
        "new_chat_member": {"user": BOT_USER, **new},
    }
    return update("my_chat_member", change, update_id=update_id)


def kicked_update(chat_id: int, *, update_id: int | None = None) -> dict[str, Any]:
    """The customer blocked the bot (until_date 0: for ever)."""
    return _my_chat_member(chat_id, {"status": "member"}, {"status": "kicked", "until_date": 0}, update_id)


def member_update(chat_id: int, *, update_id: int | None = None) -> dict[str, Any]:
    """The customer unblocked the bot."""
    return _my_chat_member(chat_id, {"status": "kicked", "until_date": 0}, {"status": "member"}, update_id)


def callback_update(
    chat_id: int, message_id: int, data: str | None, *, query_id: str | None = None, update_id: int | None = None
) -> dict[str, Any]:
    """A tap on an inline keyboard button under the bot's message `message_id`."""
    keyboard = {"inline_keyboard": [[{"text": "Talk to a person", "callback_data": data or "handoff"}]]}
    query = _drop_none(
        {
            "id": query_id or str(4_382_000_000_000_000_000 + next_message_id()),
            "from": user(chat_id),
            "message": bot_message(chat_id, message_id, "Was this helpful?", reply_markup=keyboard),
            "chat_instance": "-8765432109876543210",
            "data": data,
        }
    )
    return update("callback_query", query, update_id=update_id)


def poll_state_update(*, update_id: int | None = None) -> dict[str, Any]:
    """The `poll` update type (new poll state), which this channel does not subscribe to."""
    return update("poll", _poll(), update_id=update_id)


def chat_join_request_update(chat_id: int, user_id: int, *, update_id: int | None = None) -> dict[str, Any]:
    request = {
        "chat": {"id": chat_id, "title": "Acme Customers", "type": "supergroup"},
        "from": user(user_id),
        "user_chat_id": user_id,
        "date": int(time.time()),
    }
    return update("chat_join_request", request, update_id=update_id)
