"""What a channel reports besides customer messages: a chat started, a message edited, the customer
unreachable or reachable again, a chat that moved to a new id. Channel-neutral: Telegram reports all
of these; Twilio adds opt-outs, HELP replies, delivery statuses and held-back WhatsApp replies.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from agent_bridge.ai.rules import RoutingRules
from gateway.desk import DeskJobs, present
from gateway.events import EventBus, MessageStored
from gateway.ingest import message_document
from gateway.logs import log_event
from gateway.models import HUMAN_STATUSES, ConversationRef, Identity
from gateway.outbox import OutboxWorker
from gateway.store import ConversationStore, DuplicateMessage, utcnow

log = logging.getLogger("gateway.chat_events")


class ChatEvents:
    def __init__(
        self, store: ConversationStore, outbox: OutboxWorker, desk: DeskJobs, rules: RoutingRules, bus: EventBus
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.desk = desk
        self.rules = rules
        self.bus = bus

    async def _conversation(self, ref: ConversationRef, sender: Identity) -> dict[str, Any]:
        found = await self.store.conversations.find_one({"ref_key": ref.key})
        if found is not None:
            return found
        contact_id = await self.store.resolve_contact(sender)
        try:
            return await self.store.create_conversation(ref, contact_id)
        except DuplicateKeyError:  # the customer's first message raced this in
            found = await self.store.conversations.find_one({"ref_key": ref.key})
            assert found is not None
            return found

    async def greet(self, ref: ConversationRef, sender: Identity, *, key: str, payload: str = "") -> bool:
        """The customer opened the chat (Telegram's /start): greet them once per start, and keep a
        deep-link payload (an order number a shop put in its link) with the conversation's details."""
        if await self.store.message_by_key(key) is not None:
            return False
        conversation = await self._conversation(ref, sender)
        if payload:
            await self.store.conversations.update_one(
                {"_id": conversation["_id"]}, {"$set": {"details.start_payload": payload}}
            )
        sent = await self._system_message(ref, conversation, self.rules.messages.greeting, key)
        if sent:
            log_event(log, "chat_greeted", conversation_id=str(conversation["_id"]), payload=bool(payload))
        return sent

    async def notify(self, ref: ConversationRef, sender: Identity, text: str, *, key: str) -> bool:
        """A message from the gateway itself to the customer (an SMS HELP reply), stored and delivered
        once per `key` through the outbox like every other."""
        if await self.store.message_by_key(key) is not None:
            return False
        return await self._system_message(ref, await self._conversation(ref, sender), text, key)

    async def _system_message(self, ref: ConversationRef, conversation: dict[str, Any], text: str, key: str) -> bool:
        seq = await self.store.allocate_seq(conversation["_id"])
        message = message_document(
            conversation_id=conversation["_id"],
            seq=seq,
            author="system",
            text=text,
            idempotency_key=key,
            created_at=utcnow(),
            channel=ref.channel,
        )
        jobs = self.outbox.jobs_for_message(ref, message)
        try:
            await self.store.insert_message(message, jobs)
        except DuplicateMessage:
            return False  # the same request delivered twice at once
        for job in jobs:
            self.outbox.dispatch(job)
        self.bus.publish(MessageStored(conversation, message))
        return True

    async def _in_thread(self, conversation: dict[str, Any], event: str, *, key: str, **data: Any) -> None:
        """A line in the conversation's Slack thread (gateway/desk.py lists the events)."""
        job = self.desk.event(conversation["_id"], event, position=int(conversation["seq"]), key=key, **data)
        await self.outbox.enqueue(present(job))

    async def tell_agents(self, ref: ConversationRef, text: str, *, key: str) -> bool:
        """A line in the conversation's Slack thread (if it was handed off) about the channel: "the
        customer opted out", "the WhatsApp window is closed". Once per `key`."""
        conversation = await self.store.conversations.find_one({"ref_key": ref.key})
        if conversation is None or not conversation.get("handoff"):
            return False
        await self._in_thread(conversation, "channel_notice", key=key, text=text)
        return True

    async def delivery_status(self, channel: str, provider_message_id: str, status: str, problem: str = "") -> bool:
        """The provider reports what became of a message it accepted (Twilio's status callbacks):
        recorded on the message; a failure is said in the thread of a handed-off conversation."""
        mapped = await self.store.provider_ids.find_one({"_id": f"{channel}|{provider_message_id}"})
        if mapped is None:
            return False
        at = utcnow()
        await self.store.messages.update_one(
            {"_id": mapped["message_id"]},
            {"$set": {f"delivery.{mapped.get('part', 0)}": {"status": status, "problem": problem or None, "at": at}}},
        )
        log_event(log, "delivery_status", channel=channel, status=status, problem=problem or None)
        if not problem:
            return True
        conversation = await self.store.get_conversation(mapped["conversation_id"])
        if conversation is not None and conversation.get("handoff"):
            key = f"status:{channel}:{provider_message_id}:{status}"
            await self._in_thread(conversation, "delivery_failed", key=key, reason=problem)
        return True

    async def redeliver(self, channel: str, provider_message_id: str) -> bool:
        """Send one of our messages again, once, after the provider dropped it for a reason the channel
        can work around (WhatsApp's closed window, reported after Twilio had accepted the message)."""
        message = await self.store.message_for_provider_id(channel, provider_message_id)
        if message is None or message["author"] == "customer":
            return False
        conversation = await self.store.get_conversation(message["conversation_id"])
        if conversation is None:
            return False
        ref = ConversationRef.from_doc(conversation["ref"])
        key = f"again:{channel}:{provider_message_id}"
        await self.outbox.enqueue(self.outbox.jobs_for_message(ref, message, key=key))
        log_event(log, "message_redelivered", channel=channel, conversation_id=str(conversation["_id"]))
        return True

    async def wake_deliveries(self, ref: ConversationRef) -> None:
        """Deliveries this conversation's channel was holding back (a closed WhatsApp window) go now."""
        conversation = await self.store.conversations.find_one({"ref_key": ref.key}, {"_id": 1})
        if conversation is not None:
            await self.outbox.retry_now(str(conversation["_id"]))

    async def record_edit(self, channel: str, provider_message_id: str, text: str, edited_at: datetime) -> bool:
        """The customer edited a message they sent: the stored text changes (earlier versions kept in
        `edits`), and people handling the conversation see the new text in the thread."""
        original = await self.store.message_for_provider_id(channel, provider_message_id)
        if original is None or original["author"] != "customer" or original["text"] == text:
            return False
        updated = await self.store.messages.find_one_and_update(
            {"_id": original["_id"], "text": original["text"]},
            {
                "$set": {"text": text, "edited_at": edited_at},
                "$push": {"edits": {"text": original["text"], "replaced_at": edited_at}},
            },
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            return False  # another edit won the race
        conversation = await self.store.get_conversation(original["conversation_id"])
        cid = str(original["conversation_id"])
        log_event(log, "customer_edited", conversation_id=cid, seq=original["seq"])
        if conversation is not None and conversation["status"] in HUMAN_STATUSES:
            key = f"edit:{original['_id']}:{edited_at.timestamp()}"
            await self._in_thread(conversation, "customer_edited", key=key, text=text, seq=original["seq"])
        return True

    async def set_reachable(self, ref: ConversationRef, reachable: bool, reason: str = "") -> None:
        """The customer blocked (or unblocked) us on this channel."""
        if reachable:
            await self.store.conversations.update_one({"ref_key": ref.key}, {"$set": {"unreachable": None}})
            log_event(log, "customer_reachable", channel=ref.channel)
            return
        conversation = await self.store.conversations.find_one({"ref_key": ref.key}, {"_id": 1})
        if conversation is not None:
            await self.mark_unreachable(conversation["_id"], reason)

    async def mark_unreachable(self, conversation_id: Any, reason: str) -> None:
        """Mark the conversation (the card shows it) and, if it was handed off, say so in its thread once."""
        at = utcnow()
        conversation = await self.store.conversations.find_one_and_update(
            {"_id": conversation_id, "unreachable": None},
            {"$set": {"unreachable": {"reason": reason, "at": at}}},
        )
        if conversation is None:
            return  # already marked (a later failure of the same cause says nothing new)
        log_event(log, "customer_unreachable", logging.WARNING, conversation_id=str(conversation_id), reason=reason)
        # Only a conversation handed off has a thread to say it in.
        if conversation.get("handoff"):
            await self._in_thread(conversation, "unreachable", key=str(at.timestamp()), reason=reason)

    async def move_chat(self, ref: ConversationRef, new_chat_id: str) -> ConversationRef:
        """The provider gave the chat a new id (Telegram's migrate_to_chat_id): the conversation follows."""
        moved = dataclasses.replace(ref, chat_id=new_chat_id)
        try:
            await self.store.conversations.update_one(
                {"ref_key": ref.key}, {"$set": {"ref_key": moved.key, "ref": moved.to_doc()}}
            )
        except DuplicateKeyError:
            log_event(log, "chat_move_skipped", logging.WARNING, channel=ref.channel, reason="new id already in use")
            return moved
        log_event(log, "chat_moved", channel=ref.channel)
        return moved
