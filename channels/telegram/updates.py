"""Telegram Bot API updates turned into the events the gateway acts on. Pure: no I/O, no Bot.

Field names follow https://core.telegram.org/bots/api#update and #message; PTB has already parsed the
JSON (`Update.de_json`), so this module only reads PTB objects. The customer side of Telegram is a
private chat with the bot, so everything from groups and channels is ignored, not half-handled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from telegram import CallbackQuery, ChatMemberUpdated, Location, Message, Update, User
from telegram.constants import ChatMemberStatus, ChatType
from telegram.helpers import effective_message_type

from gateway.files import safe_name
from gateway.models import Identity

CHANNEL = "telegram"
# Bot API "Deep linking": the start parameter is 1-64 characters of A-Z, a-z, 0-9, _ and -.
_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
# "/start", "/start <payload>" and "/start@BotName <payload>" (the @ form is what a tapped command sends).
_START = re.compile(r"/start(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?", re.DOTALL)
# Kind -> (content type, extension) when Telegram sends no mime_type / file_name (photo, voice and
# video_note never carry a name; photos are always re-encoded as JPEG, voice is OGG/Opus, notes MP4).
_DEFAULTS = {
    "photo": ("image/jpeg", ".jpg"),
    "animation": ("video/mp4", ".mp4"),
    "video": ("video/mp4", ".mp4"),
    "video_note": ("video/mp4", ".mp4"),
    "voice": ("audio/ogg", ".ogg"),
    "audio": ("audio/mpeg", ".mp3"),
    "document": ("application/octet-stream", ""),
}
# User content the gateway cannot carry to an agent. Looked up with getattr so an older PTB 22.x that
# lacks a field (e.g. live_photo, checklist) still works.
_UNSUPPORTED = (
    "poll", "dice", "game", "story", "invoice", "paid_media", "live_photo", "checklist", "giveaway",
    "giveaway_winners", "passport_data",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sender:
    user_id: str
    name: str
    username: str
    language: str

    def identity(self) -> Identity:
        return Identity(channel=CHANNEL, address=self.user_id, name=self.name)


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A file still on Telegram's servers: `file_id` fetches it (getFile), `file_unique_id` dedupes it."""

    kind: str
    file_id: str
    file_unique_id: str
    file_size: int | None
    name: str
    content_type: str


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    chat_id: str
    message_id: int
    sender: Sender
    text: str
    media: tuple[MediaRef, ...]
    reply_to_message_id: int | None
    date: datetime


@dataclass(frozen=True, slots=True)
class Start:
    chat_id: str
    message_id: int
    sender: Sender
    payload: str


@dataclass(frozen=True, slots=True)
class CustomerEdit:
    chat_id: str
    message_id: int
    sender: Sender
    text: str
    edit_date: datetime


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    callback_query_id: str
    chat_id: str
    message_id: int | None
    sender: Sender
    data: str


@dataclass(frozen=True, slots=True)
class ChatBlocked:
    chat_id: str


@dataclass(frozen=True, slots=True)
class ChatUnblocked:
    chat_id: str


@dataclass(frozen=True, slots=True)
class ChatMoved:
    old_chat_id: str
    new_chat_id: str


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


Parsed = CustomerMessage | Start | CustomerEdit | CallbackAnswer | ChatBlocked | ChatUnblocked | ChatMoved | Ignored


def parse_update(update: Update) -> Parsed:
    """Exactly one optional field of an Update is set (Bot API "Update"); dispatch on it."""
    if update.message is not None:
        return _message(update.message)
    if update.edited_message is not None:
        return _edit(update.edited_message)
    if update.channel_post is not None or update.edited_channel_post is not None:
        return Ignored("channel_post")
    if update.callback_query is not None:
        return _callback(update.callback_query)
    if update.my_chat_member is not None:
        return _my_chat_member(update.my_chat_member)
    field = next((str(t) for t in Update.ALL_TYPES if getattr(update, t, None) is not None), None)
    # A field newer than the installed PTB is kept in api_kwargs rather than dropped.
    return Ignored(f"unknown_update:{field or next(iter(update.api_kwargs), 'empty')}")


def parse_update_data(data: dict[str, Any]) -> Parsed:
    """`parse_update` for the raw JSON of a webhook body or a getUpdates item. PTB raises on an object it
    finds incomplete (22.8 requires Poll.allows_revoting, Bot API 9.6+), which must not stall the queue."""
    try:
        update = Update.de_json(data, None)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return Ignored(f"malformed_update:{type(exc).__name__}")
    return parse_update(update)


def _clean(value: str | None) -> str:
    # NUL is valid in Telegram text but breaks logs, some drivers and every display.
    return (value or "").replace("\x00", "").strip()


def _sender(user: User | None) -> Sender | None:
    if user is None:
        return None
    name = _clean(" ".join(p for p in (user.first_name, user.last_name) if p))
    username = _clean(user.username)
    name = name or (f"@{username}" if username else f"Telegram user {user.id}")
    return Sender(str(user.id), name, username, _clean(user.language_code))


def _message(msg: Message) -> Parsed:
    if msg.migrate_to_chat_id is not None:
        # Bot API: a group upgraded to a supergroup gets this service message in the *old* chat.
        return ChatMoved(str(msg.chat.id), str(msg.migrate_to_chat_id))
    if msg.chat.type != ChatType.PRIVATE:
        return Ignored("group_chat")
    sender = _sender(msg.from_user)
    if sender is None:
        return Ignored("no_sender")
    chat_id = str(msg.chat.id)
    if msg.text is not None and (start := _START.fullmatch(msg.text.strip())):
        payload = (start.group(1) or "").strip()
        # Never pass an untrusted payload on: anything outside the deep-link alphabet becomes "".
        return Start(chat_id, msg.message_id, sender, payload if _PAYLOAD.fullmatch(payload) else "")
    text, media = _content(msg)
    if text or media:
        reply_to = msg.reply_to_message.message_id if msg.reply_to_message is not None else None
        return CustomerMessage(chat_id, msg.message_id, sender, text, media, reply_to, msg.date)
    if msg.text is not None or msg.caption is not None:
        return Ignored("empty_text")
    kind = next((k for k in _UNSUPPORTED if getattr(msg, k, None)), None)
    if kind is not None:
        return Ignored(f"unsupported_content:{kind}")
    return Ignored(f"service_message:{effective_message_type(msg) or 'unknown'}")


def _content(msg: Message) -> tuple[str, tuple[MediaRef, ...]]:
    text = _clean(msg.text or msg.caption)
    if msg.sticker is not None:
        return _clean(msg.sticker.emoji) or "[sticker]", ()
    # Venue before location: Bot API sets `location` on venue messages too, for backward compatibility.
    if msg.venue is not None:
        venue = msg.venue
        return f"📍 {_clean(venue.title)}, {_clean(venue.address)} — {_place(venue.location)}", ()
    if msg.location is not None:  # a live location starts the same way (live_period set)
        return f"📍 Location: {_place(msg.location)}", ()
    if msg.contact is not None:
        who = _clean(" ".join(p for p in (msg.contact.first_name, msg.contact.last_name) if p))
        return f"👤 Contact: {who}, {_clean(msg.contact.phone_number)}", ()
    if msg.photo:
        # Bot API sends one PhotoSize per resolution; the largest is the photo, the rest are thumbnails.
        biggest = max(msg.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        return text, (_media_ref("photo", biggest),)
    # Animation before document: Bot API sets `document` on animations too, for backward compatibility.
    for kind in ("animation", "video", "video_note", "voice", "audio", "document"):
        file = getattr(msg, kind)
        if file is not None:
            return text, (_media_ref(kind, file),)
    return text, ()


def _media_ref(kind: str, file: Any) -> MediaRef:
    default_type, ext = _DEFAULTS[kind]
    # file_name and mime_type are whatever the sender's client claimed: shown only after safe_name.
    raw_name = _clean(getattr(file, "file_name", None))
    name = safe_name(raw_name) if raw_name else f"{kind}-{file.file_unique_id}{ext}"
    content_type = _clean(getattr(file, "mime_type", None)).lower() or default_type
    return MediaRef(kind, file.file_id, file.file_unique_id, file.file_size, name, content_type)


def _place(loc: Location) -> str:
    def short(x: float) -> str:
        return f"{x:.6f}".rstrip("0").rstrip(".")

    lat, lon = loc.latitude, loc.longitude
    return f"{lat:.5f}, {lon:.5f} (https://maps.google.com/?q={short(lat)},{short(lon)})"


def _edit(msg: Message) -> Parsed:
    if msg.chat.type != ChatType.PRIVATE:
        return Ignored("group_chat")
    sender = _sender(msg.from_user)
    if sender is None:
        return Ignored("no_sender")
    text = _clean(msg.text or msg.caption)
    if not text:
        # Live locations move by editing the location message (Bot API editMessageLiveLocation).
        return Ignored("live_location_update" if msg.location is not None else "edit_without_text")
    return CustomerEdit(str(msg.chat.id), msg.message_id, sender, text, msg.edit_date or msg.date)


def _callback(query: CallbackQuery) -> Parsed:
    # `message` is absent for buttons on inline-mode messages; it may be an InaccessibleMessage (date 0)
    # when older than 48 hours, which still carries chat and message_id.
    message = query.message
    if message is not None and message.chat.type != ChatType.PRIVATE:
        return Ignored("group_chat")
    sender = _sender(query.from_user)
    if sender is None:
        return Ignored("no_sender")
    chat_id = str(message.chat.id) if message is not None else sender.user_id  # private chat id == user id
    message_id = message.message_id if message is not None else None
    return CallbackAnswer(query.id, chat_id, message_id, sender, query.data or "")


def _my_chat_member(change: ChatMemberUpdated) -> Parsed:
    # Bot API: in private chats my_chat_member arrives only when the user blocks ("kicked") or unblocks
    # ("member") the bot.
    if change.chat.type != ChatType.PRIVATE:
        return Ignored("group_chat")
    status = change.new_chat_member.status
    if status == ChatMemberStatus.BANNED:
        return ChatBlocked(str(change.chat.id))
    if status == ChatMemberStatus.MEMBER:
        return ChatUnblocked(str(change.chat.id))
    return Ignored(f"member_status:{status}")
