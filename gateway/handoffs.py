"""The people side of a conversation: agent replies, notes, edits, claim, resolve, return to the AI,
CSAT and the SLA watcher. Desk-agnostic: the Slack bridge turns Slack events into these calls.

Every change a customer must hear about is stored as a message with its outbox job (delivered on the
customer's own channel, retried, in order), and every change the desk must show is a desk job
(gateway/desk.py). Each handoff also has a record in `handoffs`: when it happened, why, which queue,
who took it, when a human first replied, when it was resolved and the customer's rating — the data
the handoff metrics are computed from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from agent_bridge.ai.rules import RoutingRules
from gateway.channel import ChannelAdapter
from gateway.desk import DeskJobs, present
from gateway.events import EventBus, MessageStored, StatusChanged
from gateway.ingest import Ingest, message_document
from gateway.logs import log_event
from gateway.models import HUMAN_STATUSES, Attachment, ConversationRef, DeliveryError, OutboundMessage
from gateway.outbox import OutboxWorker
from gateway.periodic import Periodic
from gateway.shaping import fits
from gateway.store import ConversationStore, DuplicateMessage, parse_id, utcnow

if TYPE_CHECKING:
    from gateway.chat_events import ChatEvents

log = logging.getLogger("gateway.handoffs")


@dataclass(frozen=True, slots=True)
class Agent:
    """A person on the desk. `name` is what customers see (may be empty: AGENT_NAME_STYLE=none)."""

    id: str
    name: str
    desk: str = "slack"

    def to_doc(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "desk": self.desk}


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    # When refused: why, for the agent who clicked (e.g. "already claimed by Dana").
    message: str = ""
    conversation: dict[str, Any] | None = None


Op = Literal["edit", "delete"]


class Handoffs:
    def __init__(
        self,
        store: ConversationStore,
        outbox: OutboxWorker,
        rules: RoutingRules,
        bus: EventBus,
        ingest: Ingest,
        desk: DeskJobs,
        adapters: Mapping[str, ChannelAdapter],
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.rules = rules
        self.bus = bus
        self.ingest = ingest
        self.desk = desk
        self.adapters = adapters
        # Set by the gateway (gateway/chat_events.py): a customer found unreachable is marked there.
        self.chats: ChatEvents | None = None
        self._sla_watcher: Periodic | None = None

    # messages to the customer

    def _customer_jobs(
        self, conversation: Mapping[str, Any], message: Mapping[str, Any], **extra: Any
    ) -> list[dict[str, Any]]:
        """The jobs that deliver `message` on the customer's channel: one, or one per part when the
        channel needs it split (gateway/shaping.py)."""
        return self.outbox.jobs_for_message(ConversationRef.from_doc(conversation["ref"]), message, **extra)

    async def _tell_customer(
        self,
        conversation: Mapping[str, Any],
        texts: Sequence[str],
        *,
        last_seq: int,
        key: str,
        desk_jobs: Sequence[dict[str, Any] | None] = (),
        extras: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Store and send system messages numbered `last_seq - len(texts) + 1 … last_seq` (numbers the
        caller reserved), with any desk jobs, in one ordered batch. `extras[i]` goes to the adapter
        with text i (`{"kind": "csat_question"}` lets Telegram offer rating buttons)."""
        now = utcnow()
        docs: list[tuple[str, Mapping[str, Any]]] = []
        jobs = []
        first = last_seq - len(texts) + 1
        for offset, text in enumerate(texts):
            message = message_document(
                conversation_id=conversation["_id"],
                seq=first + offset,
                author="system",
                text=text,
                idempotency_key=f"system:{key}:{offset}",
                created_at=now,
                channel=conversation["ref"]["channel"],
            )
            parts = self._customer_jobs(conversation, message, **(extras[offset] if extras else {}))
            docs += [("messages", message), *(("outbox", job) for job in parts)]
            jobs += parts
            self.bus.publish(MessageStored(dict(conversation), message))
        extra = present(*desk_jobs)
        docs += [("outbox", job) for job in extra]
        await self.store.insert_ordered(docs)
        for job in [*jobs, *extra]:
            self.outbox.dispatch(job)

    def _team(self, conversation: Mapping[str, Any]) -> dict[str, str]:
        queue = self.rules.queue(conversation.get("queue"))
        return {"team": queue.display_name, "queue": queue.name}

    async def _update_record(self, conversation: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        handoff_id = (conversation.get("handoff") or {}).get("id")
        if handoff_id is not None:
            await self.store.handoffs.update_one({"_id": handoff_id}, {"$set": dict(fields)})

    # agent messages

    async def agent_reply(
        self,
        conversation_id: ObjectId,
        agent: Agent,
        text: str,
        *,
        source_key: str,
        desk_ref: Mapping[str, Any],
        attachments: Sequence[Attachment] = (),
    ) -> dict[str, Any] | None:
        """Relay an agent's reply to the customer. A human reply always takes the conversation: the
        AI stops, the status becomes `with_agent`, and the first reply is timed for the metrics.
        Returns the stored message, or None for a repeat (`source_key` already relayed)."""
        key = f"{agent.desk}:{source_key}"
        if await self.store.message_by_key(key) is not None:
            return None
        now = utcnow()
        before = await self.store.conversations.find_one_and_update(
            {"_id": conversation_id},
            [
                {
                    "$set": {
                        "seq": {"$add": ["$seq", 1]},
                        "status": "with_agent",
                        "assignee": {"$ifNull": ["$assignee", {"$literal": agent.to_doc()}]},
                        "claimed_at": {"$ifNull": ["$claimed_at", now]},
                        "first_human_reply_at": {"$ifNull": ["$first_human_reply_at", now]},
                        "last_agent_reply_at": now,
                        "updated_at": now,
                    }
                }
            ],
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return None
        if before.get("first_human_reply_at") is None:
            await self._update_record(before, {"first_human_reply_at": now, "assignee": agent.to_doc()})
        conversation = {**before, "seq": before["seq"] + 1, "status": "with_agent"}
        message = message_document(
            conversation_id=conversation_id,
            seq=conversation["seq"],
            author="agent",
            text=text,
            idempotency_key=key,
            created_at=now,
            channel=before["ref"]["channel"],
            attachments=[a.to_doc() for a in attachments],
            meta={"agent": agent.to_doc(), "desk_ref": dict(desk_ref)},
        )
        message["agent_name"] = agent.name
        jobs = self._customer_jobs(conversation, message, desk_ref=dict(desk_ref))
        changed = before["status"] != "with_agent"
        card = (
            self.desk.card(conversation_id, position=message["seq"], key=f"reply:{message['_id']}") if changed else None
        )
        try:
            await self.store.insert_message(message, [*jobs, *present(card)])
        except DuplicateMessage:
            return None  # the same Slack message raced in twice; the other one relays it
        for job in jobs:
            self.outbox.dispatch(job)
        if card is not None:
            self.outbox.dispatch(card)
        self.bus.publish(MessageStored(conversation, message))
        if changed:
            self.bus.publish(StatusChanged(str(conversation_id), "with_agent"))
        log_event(
            log,
            "agent_replied",
            conversation_id=str(conversation_id),
            seq=message["seq"],
            files=len(attachments),
            first=before.get("first_human_reply_at") is None,
        )
        return message

    async def note(self, conversation_id: ObjectId, agent: Agent, text: str, *, source_key: str) -> bool:
        """Keep an internal note with the conversation; it never reaches the customer."""
        try:
            await self.store.notes.insert_one(
                {
                    "_id": f"{agent.desk}:{source_key}",
                    "conversation_id": conversation_id,
                    "agent": agent.to_doc(),
                    "text": text,
                    "created_at": utcnow(),
                }
            )
        except DuplicateKeyError:
            return False  # Slack delivered the same note twice
        log_event(log, "agent_note_kept", conversation_id=str(conversation_id))
        return True

    async def change_reply(self, source_key: str, desk: str, op: Op, new_text: str = "") -> bool:
        """Apply an agent's edit or delete of a reply already relayed: in place where the customer's
        channel can edit messages, else as a visible correction. Returns False if nothing matched."""
        original = await self.store.message_by_key(f"{desk}:{source_key}")
        if original is None or original.get("deleted_at") is not None:
            return False
        if op == "edit" and new_text.strip() == (original.get("text") or "").strip():
            return False  # Slack also sends message_changed when only an unfurl or a reaction changed
        conversation = await self.store.get_conversation(original["conversation_id"])
        if conversation is None:
            return False
        now = utcnow()
        seq = await self.store.allocate_seq(conversation["_id"])
        change = {"text": new_text, "edited_at": now} if op == "edit" else {"text": "", "deleted_at": now}
        # `revised_seq`: a web chat client reconnecting after `seq` learns of the change (channels/webchat).
        await self.store.messages.update_one({"_id": original["_id"]}, {"$set": change | {"revised_seq": seq}})
        adapter = self.adapters.get(conversation["ref"]["channel"])
        agent_name = original.get("agent_name", "")
        # The provider's ids of what was sent (one per part). An edit goes in place only where the
        # channel edits messages and the reply was, and still is, one message; else it is a correction.
        sent_ids = await self.store.provider_ids_of(original["_id"])
        in_place = adapter is not None and adapter.capabilities.edits
        if in_place and op == "edit":
            in_place = len(sent_ids) <= 1 and fits(new_text, adapter.capabilities)  # type: ignore[union-attr]
        if in_place:
            outbound = OutboundMessage(
                conversation_id=str(conversation["_id"]),
                seq=seq,
                author="agent",
                text=new_text if op == "edit" else "",
                created_at=now,
                agent_name=agent_name,
                message_id=str(original["_id"]),
                extra={
                    "op": op,
                    "target_seq": original["seq"],
                    "target_provider_message_ids": sent_ids,
                },
            )
            job = self.outbox.new_job(
                ConversationRef.from_doc(conversation["ref"]), outbound, idempotency_key=f"{op}:{original['_id']}:{seq}"
            )
            await self.outbox.enqueue([job])
        else:
            templates = self.rules.messages
            text = templates.correction.format(text=new_text) if op == "edit" else templates.retraction.format()
            message = message_document(
                conversation_id=conversation["_id"],
                seq=seq,
                author="agent",
                text=text,
                idempotency_key=f"{op}:{original['_id']}:{seq}",
                created_at=now,
                channel=conversation["ref"]["channel"],
                meta={"corrects": original["_id"]},
            )
            message["agent_name"] = agent_name
            jobs = self._customer_jobs(conversation, message)
            await self.store.insert_ordered([("messages", message), *(("outbox", job) for job in jobs)])
            for job in jobs:
                self.outbox.dispatch(job)
        log_event(log, f"agent_reply_{op}ed", conversation_id=str(conversation["_id"]), seq=original["seq"])
        return True

    # actions

    async def claim(self, conversation_id: ObjectId, agent: Agent) -> ActionResult:
        templates = self.rules.messages
        return await self._transition(
            "claim",
            conversation_id,
            agent,
            when={"status": {"$ne": "resolved"}, "assignee": None},
            status="with_agent",
            fields=lambda now: {"assignee": agent.to_doc(), "claimed_at": now},
            texts=lambda team: [
                templates.agent_joined.format(agent=agent.name, **team)
                if agent.name
                else templates.agent_joined_unnamed.format(**team)
            ],
        )

    async def resolve(self, conversation_id: ObjectId, agent: Agent) -> ActionResult:
        templates = self.rules.messages
        return await self._transition(
            "resolve",
            conversation_id,
            agent,
            when={"status": {"$ne": "resolved"}},
            status="resolved",
            fields=lambda now: {"resolved_at": now, "resolved_by": agent.to_doc()},
            extra=lambda now: {"csat": {"asked_at": now, "score": None, "answered_at": None}},
            texts=lambda team: [templates.resolved.format(**team), templates.csat_question.format(**team)],
            extras=[{}, {"kind": "csat_question"}],
        )

    async def return_to_ai(self, conversation_id: ObjectId, agent: Agent) -> ActionResult:
        result = await self._transition(
            "return",
            conversation_id,
            agent,
            when={"status": {"$in": list(HUMAN_STATUSES)}},
            status="ai",
            fields=lambda now: {"returned_at": now, "returned_by": agent.to_doc()},
            # A fresh start for the triggers: the failures that caused the handoff are settled.
            extra=lambda now: {"assignee": None, "triage": {}},
            texts=lambda team: [self.rules.messages.returned_to_ai.format(**team)],
        )
        if result.conversation is not None and result.ok:
            await self._resume_ai(result.conversation)
        return result

    async def _transition(
        self,
        action: str,
        conversation_id: ObjectId,
        agent: Agent,
        *,
        when: Mapping[str, Any],
        status: str,
        fields: Callable[[datetime], dict[str, Any]],
        texts: Callable[[dict[str, str]], list[str]],
        extra: Callable[[datetime], dict[str, Any]] | None = None,
        extras: Sequence[Mapping[str, Any]] = (),
    ) -> ActionResult:
        """One agent action: change the conversation if `when` still holds (one findAndModify, so two
        agents clicking at once cannot both win), record it on the handoff, tell the customer, and
        have the card redrawn. `fields` go on both the conversation and the handoff record."""
        now = utcnow()
        count = len(texts({"team": "", "queue": ""}))
        changes = {"status": status, "updated_at": now, **fields(now), **(extra(now) if extra else {})}
        conversation = await self.store.conversations.find_one_and_update(
            {"_id": conversation_id, **when},
            {"$set": changes, "$inc": {"seq": count}},
            return_document=ReturnDocument.AFTER,
        )
        if conversation is None:
            return await self._refusal(conversation_id, agent, action)
        await self._update_record(conversation, fields(now))
        seq = conversation["seq"]
        await self._tell_customer(
            conversation,
            texts(self._team(conversation)),
            last_seq=seq,
            key=f"{action}:{conversation_id}:{seq}",
            desk_jobs=[self.desk.card(conversation_id, position=seq, key=f"{action}:{seq}")],
            extras=extras,
        )
        self.bus.publish(StatusChanged(str(conversation_id), status))
        log_event(log, f"handoff_{action}", conversation_id=str(conversation_id))
        return ActionResult(True, conversation=conversation)

    async def _resume_ai(self, conversation: dict[str, Any]) -> None:
        """If the customer wrote last (no person or AI answered since), the AI answers it now,
        with everything said in the meantime (agent replies included) as its history."""
        last = await self.store.messages.find_one(
            {"conversation_id": conversation["_id"], "author": {"$in": ["customer", "agent", "ai"]}},
            sort=[("seq", -1)],
        )
        if last is None or last["author"] != "customer":
            return
        seq = await self.store.allocate_seq(conversation["_id"])
        # Owed an answer from now on: if this process dies before it is written, the sweep answers it.
        hold = self.ingest.owed_answer(seq, utcnow())
        await self.store.messages.update_one({"_id": last["_id"]}, {"$set": hold})
        self.ingest.start_turn(ConversationRef.from_doc(conversation["ref"]), {**conversation, "seq": seq}, last | hold)

    async def _refusal(self, conversation_id: ObjectId, agent: Agent, action: str) -> ActionResult:
        current = await self.store.get_conversation(conversation_id)
        if current is None:
            return ActionResult(False, "This conversation no longer exists.")
        status = current["status"]
        assignee = current.get("assignee") or {}
        if status == "resolved":
            return ActionResult(False, "This conversation is already resolved.", current)
        if action == "claim" and assignee.get("id") == agent.id:
            return ActionResult(False, "You already have this conversation.", current)
        if action == "claim" and assignee:
            return ActionResult(False, f"{assignee.get('name') or 'Someone'} already has this conversation.", current)
        if action == "return" and status == "ai":
            return ActionResult(False, "The AI already has this conversation.", current)
        return ActionResult(False, f"Nothing to do: the conversation is {status.replace('_', ' ')}.", current)

    # CSAT

    async def record_csat(self, conversation: dict[str, Any], customer: Mapping[str, Any], score: int) -> None:
        """The customer answered the satisfaction question. The conversation stays resolved; the
        thank-you takes the number open_turn reserved for the AI's reply."""
        now = utcnow()
        await self.store.conversations.update_one(
            {"_id": conversation["_id"]},
            {
                # The rating is not a new contact: undo the reopening open_turn did.
                "$set": {
                    "status": "resolved",
                    "reopened_at": None,
                    "csat.score": score,
                    "csat.answered_at": now,
                    "updated_at": now,
                },
                "$inc": {"reopen_count": -1},
            },
        )
        await self._update_record(conversation, {"csat": score, "csat_at": now})
        seq = conversation["seq"]
        await self._tell_customer(
            conversation,
            [self.rules.messages.csat_thanks.format(score=score, **self._team(conversation))],
            last_seq=seq,
            key=f"csat:{customer['_id']}",
            desk_jobs=[
                self.desk.event(conversation["_id"], "csat", position=seq, key=str(customer["_id"]), score=score),
                self.desk.card(conversation["_id"], position=seq, key=f"csat:{customer['_id']}"),
            ],
        )
        log_event(log, "csat_recorded", conversation_id=str(conversation["_id"]), score=score)

    # delivery status of agent replies (outbox hooks)

    async def on_sent(self, job: Mapping[str, Any], provider_message_id: str) -> None:
        await self._receipt(job, ok=True, reason="")

    async def on_failed(self, job: Mapping[str, Any], error: DeliveryError) -> None:
        conversation_id = parse_id(str(job.get("lane")))
        if error.unreachable and self.chats is not None and conversation_id is not None:
            await self.chats.mark_unreachable(conversation_id, error.reason)
        await self._receipt(job, ok=False, reason=error.reason)

    async def _receipt(self, job: Mapping[str, Any], *, ok: bool, reason: str) -> None:
        """One receipt per agent reply delivered (or finally failed) on the customer's channel.

        Only customer deliveries get receipts. A desk job (the receipt itself included) never does: a
        receipt for a receipt would be another desk job whose own hook asks for a third, without end.
        The key names the reply's delivery job, so a retried hook never enqueues a second receipt.
        """
        if job.get("channel") == self.desk.desk:
            if not ok:
                log_event(log, "desk_delivery_failed", logging.ERROR, conversation_id=job["lane"], reason=reason)
            return
        message = job.get("message") or {}
        desk_ref = (message.get("extra") or {}).get("desk_ref")
        if not desk_ref or message.get("author") != "agent":
            return
        part = (message.get("extra") or {}).get("part")
        if ok and part and part["index"] != part["count"] - 1:
            return  # a reply split in parts is delivered when its last part is
        receipt = self.desk.job(
            message["conversation_id"],
            "receipt",
            position=int(message["seq"]),
            key=str(job["idempotency_key"]),
            data={"desk_ref": desk_ref, "ok": ok, "reason": reason},
        )
        await self.outbox.enqueue(present(receipt))

    # SLA

    def start(self, check_seconds: float) -> None:
        self._sla_watcher = Periodic("sla_check", self.remind_overdue, check_seconds, logger=log)
        self._sla_watcher.start()

    async def stop(self) -> None:
        if self._sla_watcher is not None:
            await self._sla_watcher.stop()

    async def remind_overdue(self, now: datetime | None = None) -> int:
        """Once per handoff, when no human replied within the queue's SLA: a reminder in the thread
        that mentions the queue's group, and an update to the customer. Safe with several processes:
        each conversation is taken by one findAndModify."""
        now = now or utcnow()
        reminded = 0
        while True:
            conversation = await self.store.conversations.find_one_and_update(
                {
                    "status": "waiting_for_agent",
                    "sla_due_at": {"$lte": now},
                    "sla_reminded_at": None,
                    "first_human_reply_at": None,
                },
                {"$set": {"sla_reminded_at": now}, "$inc": {"seq": 1}},
                return_document=ReturnDocument.AFTER,
            )
            if conversation is None:
                return reminded
            seq = conversation["seq"]
            cid = conversation["_id"]
            await self._update_record(conversation, {"sla_breached": True})
            await self._tell_customer(
                conversation,
                [self.rules.messages.sla_update.format(**self._team(conversation))],
                last_seq=seq,
                key=f"sla:{cid}:{seq}",
                desk_jobs=[
                    self.desk.event(cid, "sla_overdue", position=seq, key=f"{cid}:{seq}"),
                    self.desk.card(cid, position=seq, key=f"sla:{seq}"),
                ],
            )
            log_event(log, "sla_overdue", logging.WARNING, conversation_id=str(cid), queue=conversation.get("queue"))
            reminded += 1
