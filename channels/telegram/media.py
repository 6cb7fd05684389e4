"""Customers' files on Telegram, fetched with getFile into the gateway's file store.

Bot API getFile: "bots can download files of up to 20 MB in size" (a self-hosted Bot API server lifts
this). A file over a limit, or of a type the gateway does not accept, is not fetched; a line saying so
joins the message text instead, so the AI and the agents know something was sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import Bot
from telegram.error import TelegramError

from channels.telegram.updates import MediaRef
from gateway.files import FileRejected, FileStore, human_size
from gateway.logs import log_event
from gateway.models import Attachment
from gateway.settings import Settings

log = logging.getLogger("channels.telegram.media")

BOT_API_DOWNLOAD_LIMIT = 20 * 1024 * 1024


async def fetch_media(
    bot: Bot, files: FileStore, media: Sequence[MediaRef], core: Settings, *, official_api: bool = True
) -> tuple[tuple[Attachment, ...], list[str]]:
    """The files stored, and a note for each one that was not. A Telegram outage raises (the update
    is then delivered again); a file that can never be fetched becomes a note."""
    attachments: list[Attachment] = []
    notes: list[str] = []
    limit = min(core.files_max_bytes, BOT_API_DOWNLOAD_LIMIT if official_api else core.files_max_bytes)
    for item in media:
        if item.file_size is not None and item.file_size > limit:
            notes.append(
                f"[{item.name} not received: {human_size(item.file_size)} is over the {human_size(limit)} limit]"
            )
            log_event(log, "telegram_file_too_large", size=item.file_size)
            continue
        try:
            remote = await bot.get_file(item.file_id)
            data = bytes(await remote.download_as_bytearray())
            attachments.append(
                await files.put(
                    data, name=item.name, content_type=item.content_type, conversation_id="", source="customer"
                )
            )
        except FileRejected as exc:
            notes.append(f"[{item.name} not received: {exc.reason}]")
            log_event(log, "telegram_file_refused", code=exc.code)
        except TelegramError as exc:
            if "too big" in exc.message.lower() or "invalid file_id" in exc.message.lower():
                notes.append(f"[{item.name} not received: Telegram would not hand it over ({exc.message})]")
                continue
            raise  # Telegram is unreachable or failing: the update is handled again later
    return tuple(attachments), notes
