"""Which conversation a mail belongs to, and what our reply needs to stay in the customer's thread.

A reply finds its conversation by the Message-IDs it names (In-Reply-To, then References, newest first)
against the ids we received and sent: the core's provider-id map holds both (`email|<Message-ID>`). A
client that drops those headers (some webmails on a forward-as-reply, a customer who writes "Re: …" by
hand) still joins by sender and subject within EMAIL_THREAD_DAYS. Anything else starts a conversation
whose thread key is the mail's own Message-ID.

Per conversation the channel keeps a small document in `channel_state` (`email-thread:<ref key>`): the
subject, where replies go, the customer's latest Message-ID (our In-Reply-To) and the References chain.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from channels.email.compose import MAX_REFERENCES
from channels.email.parsing import ParsedMail
from gateway.models import ConversationRef
from gateway.store import ConversationStore, utcnow

CHANNEL = "email"
# The ids of one mail worth looking up: clients cut References to about this many anyway.
MAX_LOOKUP = 40


def thread_key(ref: ConversationRef) -> str:
    return f"email-thread:{ref.key}"


def subject_key(address: str, normalized_subject: str) -> str:
    return f"email-subject:{address}|{normalized_subject[:200]}"


class Threads:
    def __init__(self, store: ConversationStore, state: AsyncCollection, *, window_days: int) -> None:
        self.store = store
        self.state = state
        self.window = timedelta(days=window_days)

    async def find(self, mail: ParsedMail, now: datetime | None = None) -> ConversationRef | None:
        """The conversation this mail continues, or None for a new one."""
        ids = list(dict.fromkeys([*mail.in_reply_to, *reversed(mail.references)]))[:MAX_LOOKUP]
        ids = [i for i in ids if i != mail.message_id]
        if ids:
            found = {
                doc["provider_message_id"]: doc
                async for doc in self.store.provider_ids.find(
                    {"_id": {"$in": [f"{CHANNEL}|{i}" for i in ids]}}, {"provider_message_id": 1, "conversation_id": 1}
                )
            }
            for message_id in ids:  # the newest mail named wins, should a chain span two conversations
                if message_id in found:
                    conversation = await self.store.get_conversation(found[message_id]["conversation_id"])
                    if conversation is not None:
                        return ConversationRef.from_doc(conversation["ref"])
        if mail.from_address and mail.normalized_subject and self.window:
            doc = await self.state.find_one({"_id": subject_key(mail.from_address, mail.normalized_subject)})
            if doc is not None and doc["at"] >= (now or utcnow()) - self.window:
                return ConversationRef.from_doc(doc["ref"])
        return None

    @staticmethod
    def new_ref(mail: ParsedMail) -> ConversationRef:
        return ConversationRef(CHANNEL, mail.from_address or "unknown-sender", thread_key=mail.message_id)

    async def received(self, ref: ConversationRef, mail: ParsedMail, now: datetime | None = None) -> None:
        """Note a customer's mail: replies answer it, go where it asks, and keep its subject."""
        now = now or utcnow()
        chain = [*mail.references, mail.message_id][-MAX_REFERENCES:]
        update: dict[str, Any] = {
            "$setOnInsert": {"subject": mail.subject, "root": (mail.references or (mail.message_id,))[0]},
            "$set": {"in_reply_to": mail.message_id, "at": now},
            "$push": {"references": {"$each": chain, "$slice": -MAX_REFERENCES}},
        }
        reply_address = mail.reply_to or mail.from_address
        if reply_address:
            update["$set"]["to"] = reply_address
            update["$set"]["to_name"] = mail.from_name if not mail.reply_to else ""
        await self.state.update_one({"_id": thread_key(ref)}, update, upsert=True)
        if mail.from_address and mail.normalized_subject:
            await self.state.update_one(
                {"_id": subject_key(mail.from_address, mail.normalized_subject)},
                {"$set": {"ref": ref.to_doc(), "at": now}},
                upsert=True,
            )

    async def get(self, ref: ConversationRef) -> dict[str, Any]:
        return await self.state.find_one({"_id": thread_key(ref)}) or {}

    async def sent(self, ref: ConversationRef, message_id: str) -> None:
        """Our mail joins the chain: the next reply's References name it too."""
        await self.state.update_one(
            {"_id": thread_key(ref)},
            {"$push": {"references": {"$each": [message_id], "$slice": -MAX_REFERENCES}}},
            upsert=True,
        )
