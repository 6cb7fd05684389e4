"""Ingest and routing: every channel's inbound message takes this one path.

dedupe (idempotency key) → resolve contact and conversation once → append → route the turn:
status `ai` → the AI responder; any other status → the human side (the message is stored and announced;
the AI never answers while a human owns the conversation).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bson import ObjectId
from pymongo.errors import ClientBulkWriteException, DuplicateKeyError

from agent_bridge.ai.escalation import Assessment, Context, Decision, Triage
from agent_bridge.ai.notices import WAIT_SAMPLE, WAIT_WINDOW, handoff_notice
from agent_bridge.ai.responder import HistoryItem, Reply, Responder, Turn
from gateway.csat import csat_pending, parse_rating
from gateway.desk import DeskJobs, present
from gateway.events import EventBus, MessageStored, StatusChanged, Typing
from gateway.logs import log_event
from gateway.models import ConversationRef, InboundMessage
from gateway.outbox import OutboxWorker
from gateway.store import ConversationStore, DuplicateMessage, utcnow

if TYPE_CHECKING:
    from gateway.handoffs import Handoffs

log = logging.getLogger("gateway.ingest")


@dataclass(frozen=True, slots=True)
class IngestResult:
    conversation_id: str
    message: dict[str, Any]
    duplicate: bool


def turn_record(decision: Decision, reply: Reply | None, in_reply_to: Any) -> dict[str, Any]:
    """Why the AI did what it did, stored with its message: the handoff card and metrics read it."""
    return {
        "responder": reply.responder if reply else None,
        "fallback_reason": reply.fallback_reason if reply else None,
        "answered": reply.answered if reply else False,
        "confidence": round(reply.confidence, 4) if reply else 0.0,
        "articles": [
            {"article_id": a.article_id, "title": a.title, "score": round(a.score, 4)}
            for a in (reply.articles if reply else ())
        ],
        "tool_calls": [
            {"name": c.name, "arguments": dict(c.arguments), "result": c.result[:500]}
            for c in (reply.tool_calls if reply else ())
        ],
        "decision": decision.to_doc(),
        "in_reply_to": in_reply_to,
    }


def message_document(
    *,
    conversation_id: Any,
    seq: int,
    author: str,
    text: str,
    idempotency_key: str,
    created_at: datetime,
    channel: str,
    provider_message_id: str = "",
    client_msg_id: str = "",
    attachments: list[dict[str, Any]] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": ObjectId(),
        "conversation_id": conversation_id,
        "seq": seq,
        "author": author,
        "text": text,
        "attachments": attachments or [],
        "origin": {"channel": channel, "provider_message_id": provider_message_id or None},
        "idempotency_key": idempotency_key,
        "created_at": created_at,
    }
    if client_msg_id:
        doc["client_msg_id"] = client_msg_id
    if meta:
        doc["meta"] = meta
    return doc


class TurnHold:
    """Renews a running AI turn's hold on its customer message every third of the lease, so no
    other process takes a slow turn (a model taking its time) over. A timer, not a task: the usual
    turn ends long before the first renewal is due, and then costs nothing."""

    def __init__(self, store: ConversationStore, message_id: Any, lease_seconds: float, tasks: set) -> None:
        self.store = store
        self.message_id = message_id
        self.lease_seconds = lease_seconds
        self.tasks = tasks
        self.loop = asyncio.get_running_loop()
        self.handle = self.loop.call_later(lease_seconds / 3, self._renew)

    def _renew(self) -> None:
        task = asyncio.create_task(self._write())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.handle = self.loop.call_later(self.lease_seconds / 3, self._renew)

    async def _write(self) -> None:
        try:
            await self.store.renew_turn(self.message_id, utcnow() + timedelta(seconds=self.lease_seconds))
        except Exception:  # the database is away; if the hold lapses, the turn is merely run again
            log.warning("ai_turn_hold_not_renewed", exc_info=True)

    def cancel(self) -> None:
        self.handle.cancel()


class Ingest:
    def __init__(
        self,
        store: ConversationStore,
        responder: Responder,
        triage: Triage,
        outbox: OutboxWorker,
        bus: EventBus,
        *,
        history_limit: int = 0,
        responder_timeout: float = 30.0,
        desk: DeskJobs | None = None,
        turn_lease_seconds: float = 15.0,
        turn_max_age_seconds: float = 86_400.0,
    ) -> None:
        self.store = store
        self.turn_lease_seconds = turn_lease_seconds
        self.turn_max_age = timedelta(seconds=turn_max_age_seconds)
        self.responder = responder
        self.triage = triage
        self.outbox = outbox
        self.bus = bus
        self.history_limit = history_limit
        self.responder_timeout = responder_timeout
        self.desk = desk or DeskJobs(outbox, None)
        # Set by the gateway when the people side is wired (gateway/handoffs.py): CSAT answers go there.
        self.handoffs: Handoffs | None = None
        self._turns: set[asyncio.Task[None]] = set()

    async def receive(self, inbound: InboundMessage) -> IngestResult:
        # The duplicate check comes before anything is changed: a provider's retry or a client's
        # re-send must not move the conversation, burn numbers or reopen it.
        existing = await self.store.message_by_key(inbound.idempotency_key)
        if existing is not None:
            return await self._duplicate(existing, inbound)
        try:
            return await self._receive(inbound)
        except (DuplicateKeyError, ClientBulkWriteException) as exc:
            if "conversation_seq" not in str(exc) and "conversation_seq" not in str(getattr(exc, "details", "")):
                raise
            # The counter lags the stored messages (a database that lost its last writes): bring it
            # up and number the message again. The counter, not the message, was wrong.
            conversation = await self.store.conversations.find_one({"ref_key": inbound.ref.key}, {"_id": 1})
            if conversation is None:
                raise
            await self.store.repair_seq(conversation["_id"])
            return await self._receive(inbound)

    async def _duplicate(self, existing: dict[str, Any], inbound: InboundMessage) -> IngestResult:
        """A message already stored. If the AI still owes it an answer and no process holds its turn
        (the one that had it was killed), the re-send takes the turn over at once."""
        cid = str(existing["conversation_id"])
        log_event(log, "inbound_duplicate", conversation_id=cid, channel=inbound.ref.channel)
        if existing.get("author") == "customer" and existing.get("awaiting_reply_since") is not None:
            await self.retry_turn(existing)
        return IngestResult(cid, existing, duplicate=True)

    async def retry_turn(self, customer: dict[str, Any], now: datetime | None = None) -> bool:
        """Run again the AI turn of a customer message still owed an answer, if its hold lapsed.
        Returns whether this process took the turn."""
        now = now or utcnow()
        if not await self.store.claim_turn(customer["_id"], now, self.turn_lease_seconds):
            return False  # a live turn holds it, or another process just took it
        conversation_id = customer["conversation_id"]
        conversation = await self.store.get_conversation(conversation_id)
        fields = {"conversation_id": str(conversation_id), "seq": customer["seq"]}
        if conversation is None or conversation["status"] != "ai":
            # People own the conversation now (or it is gone): the AI must not answer.
            await self.store.settle_turn(customer["_id"])
            log_event(log, "ai_turn_settled", **fields)
            return False
        if customer["awaiting_reply_since"] < now - self.turn_max_age:
            await self.store.settle_turn(customer["_id"])
            log_event(log, "ai_turn_abandoned", logging.ERROR, **fields)
            return False
        # The reply takes the number reserved for it, unless the conversation moved on meanwhile:
        # then it gets a new one, after what the customer has already seen.
        top = await self.store.repair_seq(conversation_id)
        reply_seq = customer.get("reply_seq")
        if reply_seq is None or conversation["seq"] != reply_seq or top >= reply_seq:
            reply_seq = await self.store.allocate_seq(conversation_id)
        log_event(log, "ai_turn_resumed", attempts=int(customer.get("turn_attempts") or 0) + 1, **fields)
        self.start_turn(ConversationRef.from_doc(conversation["ref"]), {**conversation, "seq": reply_seq}, customer)
        return True

    def owed_answer(self, reply_seq: int, now: datetime) -> dict[str, Any]:
        """The fields that mark a customer message as owed an AI answer, held by this process's turn
        until the reply's transaction removes them (store.TURN_FIELDS) or the hold lapses."""
        return {
            "reply_seq": reply_seq,
            "awaiting_reply_since": now,
            "turn_lease_until": now + timedelta(seconds=self.turn_lease_seconds),
            "turn_attempts": 1,
        }

    async def _receive(self, inbound: InboundMessage) -> IngestResult:
        now = inbound.received_at or utcnow()
        conversation = await self.store.open_turn(inbound.ref, inbound.sender.key, now)
        conversation_id = conversation["_id"]
        if conversation.get("contact_id") is None:
            # First message on a new thread: the contact is resolved once, here, for every channel.
            contact_id = await self.store.resolve_contact(inbound.sender)
            await self.store.set_contact(conversation_id, contact_id)
            conversation["contact_id"] = contact_id
        ai_turn = conversation["status"] == "ai"
        customer_seq = conversation["seq"] - 1 if ai_turn else conversation["seq"]
        message = message_document(
            conversation_id=conversation_id,
            seq=customer_seq,
            author="customer",
            text=inbound.text,
            idempotency_key=inbound.idempotency_key,
            created_at=now,
            channel=inbound.ref.channel,
            provider_message_id=inbound.provider_message_id,
            client_msg_id=inbound.client_msg_id,
            attachments=[a.to_doc() for a in inbound.attachments],
        )
        if inbound.origin:
            message["origin"] = {**inbound.origin, **message["origin"]}
        if inbound.reply_to_provider_id:
            quoted = await self.store.message_for_provider_id(inbound.ref.channel, inbound.reply_to_provider_id)
            if quoted is not None:
                message["reply_to"] = {"message_id": quoted["_id"], "seq": quoted["seq"]}
        fields = {"conversation_id": str(conversation_id), "channel": inbound.ref.channel}
        rating = self._csat_answer(conversation, inbound, now)
        if ai_turn and rating is None:
            # The AI owes this message an answer until the reply is written (gateway/recovery.py):
            # held by this process's turn, taken over by any process once the hold lapses.
            message |= self.owed_answer(conversation["seq"], now)
        # While people own the conversation, each customer message is mirrored to the desk's thread,
        # enqueued in the same batch as the message itself.
        mirror = None if ai_turn else self.desk.customer_message(conversation, message)
        try:
            await self.store.insert_message(message, present(mirror))
        except DuplicateMessage:
            # Two copies raced past the duplicate check: store nothing more. The numbers taken stay
            # unused (seq may have gaps), and a conversation this copy reopened goes back to resolved.
            if conversation.get("prior_status") == "resolved" and conversation.get("reopened_at") == now:
                await self.store.undo_reopen(conversation_id, now)
            existing = await self.store.message_by_key(inbound.idempotency_key)
            log_event(log, "inbound_duplicate", **fields)
            return IngestResult(str(conversation_id), existing or message, duplicate=True)

        if inbound.provider_message_id:
            # The provider's id of this message: a later edit or reply-to of it finds it (gateway/store.py).
            await self.store.map_provider_id(
                inbound.ref.channel,
                inbound.provider_message_id,
                message_id=message["_id"],
                conversation_id=conversation_id,
            )
        log_event(log, "inbound_stored", seq=customer_seq, status=conversation["status"], **fields)
        self.bus.publish(MessageStored(conversation, message))
        if rating is not None and self.handoffs is not None:
            await self.handoffs.record_csat(conversation, message, rating)
        elif ai_turn:
            self.start_turn(inbound.ref, conversation, message)
        else:
            if mirror is not None:
                self.outbox.dispatch(mirror)
            log_event(log, "routed_to_humans", status=conversation["status"], **fields)
        return IngestResult(str(conversation_id), message, duplicate=False)

    def _csat_answer(self, conversation: dict[str, Any], inbound: InboundMessage, now: datetime) -> int | None:
        """A rating, if this message answers the satisfaction question of a just-resolved handoff."""
        if self.handoffs is None or conversation.get("prior_status") != "resolved" or inbound.attachments:
            return None
        if not csat_pending(conversation, now):
            return None
        return parse_rating(inbound.text)

    def start_turn(self, ref: ConversationRef, conversation: dict[str, Any], customer: dict[str, Any]) -> None:
        """Answer `customer` with the AI in the background; `conversation["seq"]` is the reply's number."""
        task = asyncio.create_task(self._ai_turn(ref, conversation, customer))
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    async def _ai_turn(self, ref: ConversationRef, conversation: dict[str, Any], customer: dict[str, Any]) -> None:
        """Triage, maybe ask the responder, then store one outbound message: the answer, or the
        handoff notice together with the status change, in the same guarded write."""
        conversation_id = conversation["_id"]
        cid = str(conversation_id)
        self.bus.publish(Typing(cid, "ai", True, ref))
        hold = TurnHold(self.store, customer["_id"], self.turn_lease_seconds, self._turns)
        try:
            context = Context.from_conversation(conversation)
            assessment = self.triage.assess(customer["text"], context)
            reply = None
            if assessment.trigger is None:  # hard triggers fire whatever a model would say
                reply = await self._respond(conversation_id, customer, context, assessment)
            decision = self.triage.decide(assessment, reply, context)
            now = utcnow()
            touch: dict[str, Any] = {
                "updated_at": now,
                "last_ai_reply_at": now,
                "details": dict(decision.details),
                "triage": self.triage.next_state(assessment, decision, context),
            }
            extra: list[tuple[str, dict[str, Any]]] = []
            if decision.action == "answer":
                assert reply is not None
                text = reply.text
            else:
                text = await self._handoff_text(decision, reply, now)
                record = self._handoff_record(conversation, ref, decision, reply, now)
                touch |= {
                    "status": "waiting_for_agent",
                    "queue": decision.queue,
                    "assignee": None,
                    "handoff_at": now,
                    "sla_due_at": record["sla_due_at"],
                    "sla_reminded_at": None,
                    "first_human_reply_at": None,
                    "claimed_at": None,
                    "resolved_at": None,
                    "csat": None,
                    "handoff": {key: record[key] for key in ("trigger", "reason", "intent", "urgency", "summary")}
                    | {"id": record["_id"], "at": now},
                }
                extra.append(("handoffs", record))
            message = message_document(
                conversation_id=conversation_id,
                seq=conversation["seq"],  # the number open_turn reserved for this reply
                author="ai",
                text=text,
                idempotency_key=f"ai:{customer['_id']}",
                created_at=now,
                channel=ref.channel,
                meta=turn_record(decision, reply, customer["_id"]),
            )
            if decision.action == "handoff":
                touch["handoff"]["message_id"] = message["_id"]  # the card reads the AI's turn record from it
            jobs = self.outbox.jobs_for_message(ref, message)
            card = None
            if decision.action == "handoff":
                # The card goes to the desk in the same write as the handoff: it cannot be lost.
                card = self.desk.job(
                    conversation_id,
                    "handoff",
                    position=message["seq"],
                    key=str(message["_id"]),
                    data={"handoff_id": str(touch["handoff"]["id"]), "handoff_seq": message["seq"]},
                )
                extra += [("outbox", j) for j in present(card)]
            stored = await self.store.store_outbound(
                message, jobs, owner_status="ai", touch=touch, extra=extra, answers=customer["_id"]
            )
            # Typing ends just before the reply goes out, so the indicator never outlives the message.
            self.bus.publish(Typing(cid, "ai", False, ref))
            if not stored:
                # A person took over meanwhile, or this message was already answered.
                await self.store.settle_turn(customer["_id"])
                log_event(log, "ai_reply_dropped", conversation_id=cid)
                return
            log_event(
                log,
                "ai_handed_off" if decision.action == "handoff" else "ai_replied",
                conversation_id=cid,
                seq=message["seq"],
                intent=decision.intent,
                trigger=decision.trigger,
                queue=decision.queue,
                articles=[a.article_id for a in reply.articles] if reply else [],
            )
            for job in jobs:
                self.outbox.dispatch(job)
            if card is not None:
                self.outbox.dispatch(card)
            if decision.action == "handoff":
                self.bus.publish(StatusChanged(cid, "waiting_for_agent"))
        except Exception:
            # The message keeps its claim to an answer: once the hold lapses, the recovery sweep (or
            # the customer's re-send) runs the turn again, in this process or another.
            log.exception("ai_turn_failed", extra={"conversation_id": cid, "retry_after_s": self.turn_lease_seconds})
            self.bus.publish(Typing(cid, "ai", False, ref))
        finally:
            hold.cancel()

    def _handoff_record(
        self, conversation: dict[str, Any], ref: ConversationRef, decision: Decision, reply: Reply | None, now: datetime
    ) -> dict[str, Any]:
        """One document per handoff; people-side events fill in the rest (gateway/handoffs.py)."""
        queue = self.triage.rules.queue(decision.queue)
        return {
            "_id": ObjectId(),
            "conversation_id": conversation["_id"],
            "channel": ref.channel,
            "queue": queue.name,
            "trigger": decision.trigger,
            "reason": decision.reason,
            "intent": decision.intent,
            "urgency": decision.urgency,
            "summary": reply.handoff.summary if reply and reply.handoff else "",
            "handoff_at": now,
            "sla_due_at": queue.sla_due(now),
            "sla_breached": False,
            "first_human_reply_at": None,
            "assignee": None,
            "claimed_at": None,
            "resolved_at": None,
            "returned_at": None,
            "csat": None,
            # A repeat contact: this conversation was resolved before and came back.
            "repeat_contact": int(conversation.get("reopen_count") or 0) > 0,
        }

    async def _handoff_text(self, decision: Decision, reply: Reply | None, now: datetime) -> str:
        """The model's own closing line, if it wrote one, then what happens next."""
        recent = await self.store.recent_wait_minutes(decision.queue, since=now - WAIT_WINDOW, sample=WAIT_SAMPLE)
        notice = handoff_notice(self.triage.rules, decision.queue, now, recent)
        lead = reply.text.strip() if reply is not None and reply.handoff is not None and reply.text else ""
        return f"{lead}\n\n{notice}" if lead else notice

    async def _respond(
        self, conversation_id: Any, customer: dict[str, Any], context: Context, assessment: Assessment
    ) -> Reply | None:
        """The responder's reply, or None when it failed outright (the decision then hands off)."""
        history: list[HistoryItem] = []
        if self.history_limit:
            recent = await self.store.recent_messages(conversation_id, self.history_limit)
            history = [HistoryItem(m["author"], m["text"]) for m in recent if m["_id"] != customer["_id"]]
        turn = Turn(
            conversation_id=str(conversation_id),
            text=customer["text"],
            history=history,
            queues=self.triage.rules.queue_names,
            details=dict(context.details),
            intent=assessment.intent,
            intent_confidence=assessment.intent_confidence,
        )
        try:
            return await asyncio.wait_for(self.responder.respond(turn), self.responder_timeout)
        except Exception:
            log.exception("responder_failed", extra={"conversation_id": str(conversation_id)})
            return None

    async def drain(self, timeout: float = 10.0) -> None:
        """Let AI turns in flight finish before shutdown."""
        if self._turns:
            await asyncio.wait(list(self._turns), timeout=timeout)
