"""What the Twilio channel keeps per customer number, in the `channel_state` collection: whether they
opted out of SMS (STOP), and when they last wrote on WhatsApp (its 24-hour window) and when we last sent
a template to reopen it. One small document per channel and number; any gateway process reads it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from gateway.store import utcnow

# WhatsApp: "businesses can send free-form messages within 24 hours of the user's last message"; outside
# it only an approved template may be sent.
WINDOW = timedelta(hours=24)


class Contacts:
    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self.collection = collection

    @staticmethod
    def _id(channel: str, number: str) -> str:
        return f"twilio:{channel}:{number}"

    async def get(self, channel: str, number: str) -> dict[str, Any]:
        return await self.collection.find_one({"_id": self._id(channel, number)}) or {}

    async def set_opted_out(self, channel: str, number: str, opted_out: bool) -> bool:
        """Returns whether this changed anything (a repeated STOP is told to the agent once)."""
        before = await self.collection.find_one_and_update(
            {"_id": self._id(channel, number)},
            {"$set": {"opted_out": opted_out, "opted_out_changed_at": utcnow()}},
            upsert=True,
        )
        return bool((before or {}).get("opted_out", False)) != opted_out

    async def record_inbound(self, channel: str, number: str, at: datetime) -> dict[str, Any]:
        """Note the customer's message (the window runs from it); returns the state as it was before."""
        before = await self.collection.find_one_and_update(
            {"_id": self._id(channel, number)}, {"$max": {"last_inbound_at": at}}, upsert=True
        )
        return before or {}

    async def close_window(self, channel: str, number: str) -> None:
        """Twilio said the window is closed (63016): it knows better than our record of it."""
        await self.collection.update_one({"_id": self._id(channel, number)}, {"$set": {"last_inbound_at": None}})

    async def record_template(self, channel: str, number: str, at: datetime) -> None:
        await self.collection.update_one(
            {"_id": self._id(channel, number)}, {"$set": {"template_sent_at": at}}, upsert=True
        )


def window_open(state: dict[str, Any], now: datetime) -> bool:
    last = state.get("last_inbound_at")
    return last is not None and now - last < WINDOW


def template_pending(state: dict[str, Any]) -> bool:
    """A template went out after the customer's last message: we wait for their answer."""
    sent, last = state.get("template_sent_at"), state.get("last_inbound_at")
    return sent is not None and (last is None or sent > last)
