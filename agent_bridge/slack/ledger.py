"""Slack event ids already handled, so Slack's retries are handled once (Events API "Retries").

Slack retries an event up to three times when the app does not answer 2xx within 3 seconds, with
`X-Slack-Retry-Num`. A retry of an event that was handled is acknowledged and dropped; a retry of one
whose first delivery failed (the gateway answered 500, or died mid-way) is handled again. An attempt
that is still running when its retry arrives keeps it: the retry is dropped unless the first attempt
has been silent for `stale_seconds`, which means its process is gone.
"""

from __future__ import annotations

from datetime import timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gateway.store import utcnow

HANDLING, DONE, FAILED = "handling", "done", "failed"


class EventLedger:
    def __init__(self, collection: AsyncCollection, stale_seconds: float = 60.0) -> None:
        self.collection = collection
        self.stale_seconds = stale_seconds

    async def begin(self, event_id: str) -> bool:
        """True when this delivery should be handled now."""
        now = utcnow()
        try:
            await self.collection.insert_one({"_id": event_id, "state": HANDLING, "received_at": now, "attempts": 1})
            return True
        except DuplicateKeyError:
            pass
        retaken = await self.collection.find_one_and_update(
            {
                "_id": event_id,
                "$or": [
                    {"state": FAILED},
                    {"state": HANDLING, "received_at": {"$lt": now - timedelta(seconds=self.stale_seconds)}},
                ],
            },
            {"$set": {"state": HANDLING, "received_at": now}, "$inc": {"attempts": 1}},
        )
        return retaken is not None

    async def finish(self, event_id: str) -> None:
        await self.collection.update_one({"_id": event_id}, {"$set": {"state": DONE}})

    async def fail(self, event_id: str) -> None:
        await self.collection.update_one({"_id": event_id}, {"$set": {"state": FAILED}})
