"""Expiry of what a visitor can create without ever talking to us: empty conversations and unattached uploads.

`POST /webchat/sessions` writes a contact and a conversation before the visitor types anything, and
`POST /webchat/files` stores a file before any message names it. Left alone, a script (or a page that
opens the widget on every visit) fills the database. A periodic sweep deletes:

* web chat conversations created more than WEBCHAT_EMPTY_SESSION_TTL_HOURS ago that never got a
  customer message (`last_customer_message_at` is null: the core's `open_turn` sets it on the first
  message) and hold no message at all, then their contacts when no other conversation uses them;
* customer uploads still marked `metadata.unattached_since` (FileStore clears the mark when a message
  attaches the file) for longer than WEBCHAT_UNATTACHED_UPLOAD_TTL_HOURS.

Every delete re-checks its condition in the filter, so it is lease-free and idempotent: several
processes may sweep at once, and a message that arrives meanwhile wins (its write clears the mark).
A TTL index cannot express "and no messages" nor remove GridFS chunks, hence a sweep.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from gateway.files import FileStore
from gateway.logs import log_event
from gateway.periodic import Periodic
from gateway.store import ConversationStore, utcnow

log = logging.getLogger("channels.webchat.expiry")

SWEEP_EVERY_SECONDS = 600.0
BATCH = 500


class Expiry:
    def __init__(
        self,
        store: ConversationStore,
        files: FileStore | None,
        *,
        channel: str,
        empty_session_ttl: float,
        unattached_upload_ttl: float,
        is_live: Callable[[str], bool] = lambda conversation_id: False,
    ) -> None:
        self.store = store
        self.files = files
        self.channel = channel
        self.empty_session_ttl = empty_session_ttl
        self.unattached_upload_ttl = unattached_upload_ttl
        self.is_live = is_live  # a conversation with a socket open here is in use, empty or not
        self._timer: Periodic | None = None

    def start(self, every: float = SWEEP_EVERY_SECONDS) -> None:
        if self._timer is None:
            # Spread processes started together, so their sweeps do not all land at the same moment.
            self._timer = Periodic(
                "webchat_expiry", self.sweep, every, logger=log, first_delay=every * random.uniform(0.1, 1.0)
            )
            self._timer.start()

    async def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            await timer.stop()

    async def sweep(self, now: datetime | None = None) -> tuple[int, int]:
        """(conversations deleted, uploads deleted)."""
        now = now or utcnow()
        conversations = await self._empty_conversations(now - timedelta(seconds=self.empty_session_ttl))
        uploads = 0
        if self.files is not None:
            uploads = await self.files.delete_unattached(now - timedelta(seconds=self.unattached_upload_ttl))
        if conversations or uploads:
            log_event(log, "webchat_expired", conversations=conversations, uploads=uploads)
        return conversations, uploads

    async def _empty_conversations(self, cutoff: datetime) -> int:
        empty = {"ref.channel": self.channel, "last_customer_message_at": None, "created_at": {"$lt": cutoff}}
        total = 0
        while True:
            docs = await self.store.conversations.find(empty, {"_id": 1, "contact_id": 1}).limit(BATCH).to_list()
            ids = [d["_id"] for d in docs if not self.is_live(str(d["_id"]))]
            if not ids:
                return total
            used = set(await self.store.messages.distinct("conversation_id", {"conversation_id": {"$in": ids}}))
            ids = [i for i in ids if i not in used]
            if not ids:
                return total
            await self.store.conversations.delete_many({"_id": {"$in": ids}, **empty})
            left = {d["_id"] for d in await self.store.conversations.find({"_id": {"$in": ids}}, {"_id": 1}).to_list()}
            gone = set(ids) - left
            total += len(gone)
            contacts = {d["contact_id"] for d in docs if d["_id"] in gone and d.get("contact_id") is not None}
            if contacts:
                kept = set(
                    await self.store.conversations.distinct("contact_id", {"contact_id": {"$in": list(contacts)}})
                )
                await self.store.contacts.delete_many({"_id": {"$in": list(contacts - kept)}})
            if len(docs) < BATCH or not gone:
                return total
