"""Ingest and routing: every channel's inbound message takes this one path.

dedupe (idempotency key) → resolve contact and conversation once → append → route the turn:
status `ai` → the AI responder; any other status → the human side (the message is stored and announced;
the AI never answers while a human owns the conversation).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from agent_bridge.ai.escalation import Context, Decision, Triage
from agent_bridge.ai.notices import WAIT_SAMPLE, WAIT_WINDOW, handoff_notice
from agent_bridge.ai.responder import HistoryItem, Reply, Responder, Turn
from gateway.csat import csat_pending, parse_rating
from gateway.desk import DeskJobs, present
from gateway.events import EventBus, MessageStored, StatusChanged, Typing
from gateway.logs import log_event
from gateway.models import ConversationRef, InboundMessage, OutboundMessage
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
    ) -> None:
        self.store = store
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
        fields = {"conversation_id": str(conversation_id), "channel": inbound.ref.channel}
        rating = self._csat_answer(conversation, inbound, now)
        # While people own the conversation, each customer message is mirrored to the desk's thread,
        # enqueued in the same batch as the message itself.
        mirror = None if ai_turn else self.desk.customer_message(conversation, message)
        try:
            await self.store.insert_message(message, present(mirror))
        except DuplicateMessage:
            # A provider retry: store nothing, answer nothing. The numbers taken stay unused (seq may
            # have gaps), and a conversation this retry reopened goes back to resolved.
            if conversation.get("prior_status") == "resolved" and conversation.get("reopened_at") == now:
                await self.store.undo_reopen(conversation_id, now)
            existing = await self.store.message_by_key(inbound.idempotency_key)
            log_event(log, "inbound_duplicate", **fields)
            return IngestResult(str(conversation_id), existing or message, duplicate=True)

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
        self.bus.publish(Typing(cid, "ai", True))
        try:
            context = Context.from_conversation(conversation)
            assessment = self.triage.assess(customer["text"], context)
            reply = None
            if assessment.trigger is None:  # hard triggers fire whatever a model would say
                reply = await self._respond(conversation_id, customer, context)
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
            outbound = OutboundMessage(
                conversation_id=cid,
                seq=message["seq"],
                author="ai",
                text=text,
                created_at=now,
                message_id=str(message["_id"]),
            )
            job = self.outbox.new_job(ref, outbound, idempotency_key=f"out:{message['_id']}")
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
                message, job, owner_status="ai", touch=touch, extra=extra, answers=customer["_id"]
            )
            # Typing ends just before the reply goes out, so the indicator never outlives the message.
            self.bus.publish(Typing(cid, "ai", False))
            if not stored:
                # A person took over meanwhile, or this message was already answered.
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
            self.outbox.dispatch(job)
            if card is not None:
                self.outbox.dispatch(card)
            if decision.action == "handoff":
                self.bus.publish(StatusChanged(cid, "waiting_for_agent"))
        except Exception:
            log.exception("ai_turn_failed", extra={"conversation_id": cid})
            self.bus.publish(Typing(cid, "ai", False))

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

    async def _respond(self, conversation_id: Any, customer: dict[str, Any], context: Context) -> Reply | None:
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
        )
        try:
            return await asyncio.wait_for(self.responder.respond(turn), self.responder_timeout)
        except Exception:
            log.exception("responder_failed", extra={"conversation_id": str(conversation_id)})
            return None

    async def resume_unanswered(self, *, settle_seconds: float = 30.0, max_age_seconds: float = 900.0) -> int:
        """Answer customer messages whose AI turn a stopped process never finished.

        Runs at start. A message younger than `settle_seconds` may still be in another process's
        hands; one older than `max_age_seconds` is stale, and a late answer would confuse more than
        help. A duplicate answer is impossible: the reply's idempotency key is `ai:<message id>`.
        """
        now = utcnow()
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        cursor = self.store.conversations.find(
            {
                "status": "ai",
                "last_customer_message_at": {
                    "$gte": now - timedelta(seconds=max_age_seconds),
                    "$lte": now - timedelta(seconds=settle_seconds),
                },
                "$expr": {"$gt": ["$last_customer_message_at", {"$ifNull": ["$last_ai_reply_at", epoch]}]},
            }
        )
        resumed = 0
        async for conversation in cursor:
            customer = await self.store.messages.find_one(
                {"conversation_id": conversation["_id"], "author": "customer"}, sort=[("seq", -1)]
            )
            if customer is None:
                continue
            log_event(log, "ai_turn_resumed", conversation_id=str(conversation["_id"]), seq=customer["seq"])
            # The reply takes the number reserved for it when the customer's message was numbered.
            turn = {**conversation, "seq": customer["seq"] + 1}
            await self._ai_turn(ConversationRef.from_doc(conversation["ref"]), turn, customer)
            resumed += 1
        return resumed

    async def drain(self, timeout: float = 10.0) -> None:
        """Let AI turns in flight finish before shutdown."""
        if self._turns:
            await asyncio.wait(list(self._turns), timeout=timeout)
