"""The durable outbox: every outbound message is written before it is sent, then delivered in order.

Jobs are delivered in order within a lane (a conversation), retried with exponential backoff, jitter and
the provider's Retry-After, and marked failed with a reason when they finally cannot go. Several gateway
processes may share one database: a job is owned by whoever holds its lease (`find_one_and_update`), and
an expired lease (a crashed process) makes the job claimable again, so deliveries resume after restart.

Fast path: the process that enqueues a job leases it to itself in the same insert and delivers at once,
so a healthy turn costs one write to enqueue and one to mark sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from gateway.channel import ChannelAdapter
from gateway.logs import log_event
from gateway.models import Attachment, ConversationRef, DeliveryError, OutboundMessage
from gateway.shaping import shape
from gateway.store import ConversationStore, parse_id, utcnow

log = logging.getLogger("gateway.outbox")

PENDING, SENT, FAILED = "pending", "sent", "failed"

# Called after a job is finally sent (with the provider's message id) or finally failed (with the
# error, whose reason is final). The handoffs use them to show delivery status next to an agent's reply.
SentHook = Callable[[Mapping[str, Any], str], Awaitable[None]]
FailureHook = Callable[[Mapping[str, Any], DeliveryError], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 1.0
    max_seconds: float = 300.0
    give_up_seconds: float = 86_400.0

    def delay(self, attempts: int, retry_after: float | None) -> float:
        """Exponential backoff with 'equal jitter'; a provider's Retry-After is a floor, never ignored."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


def job_document(
    *,
    ref: ConversationRef,
    message: OutboundMessage,
    idempotency_key: str,
    worker_id: str | None,
    lease_seconds: float,
    now: datetime,
    lane: str | None = None,
    part: int = 0,
) -> dict[str, Any]:
    """An outbox job, self-contained so any process can deliver it without reading anything else.

    The lane (delivery order) defaults to the conversation; the agent desk uses its own lane per
    conversation, so a customer channel's outage never holds up the Slack thread, nor the reverse.
    """
    return {
        "_id": ObjectId(),
        "lane": lane or message.conversation_id,
        "position": message.seq,
        # A message split to fit its channel is several jobs with one position: parts go in order.
        "part": part,
        "channel": ref.channel,
        "ref": ref.to_doc(),
        "message": {
            "message_id": message.message_id,
            "conversation_id": message.conversation_id,
            "seq": message.seq,
            "author": message.author,
            "text": message.text,
            "created_at": message.created_at,
            "attachments": [a.to_doc() for a in message.attachments],
            "agent_name": message.agent_name,
            "extra": message.extra,
        },
        "idempotency_key": idempotency_key,
        "state": PENDING,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
        # Leased to the enqueuing process: it delivers at once; if it dies, the lease lapses.
        "lease_owner": worker_id,
        "lease_until": now + timedelta(seconds=lease_seconds) if worker_id else None,
        "last_error": None,
        "provider_message_id": None,
        "sent_at": None,
        "failed_at": None,
    }


def _outbound(job: Mapping[str, Any]) -> OutboundMessage:
    m = job["message"]
    return OutboundMessage(
        conversation_id=m["conversation_id"],
        seq=m["seq"],
        author=m["author"],
        text=m["text"],
        created_at=m["created_at"],
        attachments=tuple(Attachment(**a) for a in m.get("attachments", [])),
        agent_name=m.get("agent_name", ""),
        message_id=m.get("message_id", ""),
        extra=m.get("extra", {}),
    )


class OutboxWorker:
    def __init__(
        self,
        store: ConversationStore,
        adapters: Mapping[str, ChannelAdapter],
        *,
        policy: RetryPolicy | None = None,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        on_failed: FailureHook | None = None,
        on_sent: SentHook | None = None,
    ) -> None:
        self.store = store
        self.adapters = adapters
        self.policy = policy or RetryPolicy()
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.on_failed = on_failed
        self.on_sent = on_sent
        self.worker_id = f"{uuid.uuid4().hex[:12]}"
        self.last_beat: datetime | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._lane_queues: dict[str, list[dict[str, Any]]] = {}
        self._blocked: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever(), name="outbox-sweeper")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        tasks = [t for t in (self._task, *self._lanes.values()) if t is not None]
        # Let in-flight sends finish briefly; whatever is left keeps its lease and resumes elsewhere.
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    # enqueue

    def new_job(
        self,
        ref: ConversationRef,
        message: OutboundMessage,
        idempotency_key: str,
        *,
        lane: str | None = None,
        part: int = 0,
    ) -> dict[str, Any]:
        return job_document(
            ref=ref,
            message=message,
            idempotency_key=idempotency_key,
            worker_id=self.worker_id,
            lease_seconds=self.lease_seconds,
            now=utcnow(),
            lane=lane,
            part=part,
        )

    def jobs_for_message(
        self, ref: ConversationRef, message: Mapping[str, Any], key: str = "", **extra: Any
    ) -> list[dict[str, Any]]:
        """The customer jobs for a stored message document (gateway/ingest.message_document), keyed
        `out:<message id>` (or `key`, for a second delivery): what every writer of a message to a
        customer enqueues."""
        outbound = OutboundMessage(
            conversation_id=str(message["conversation_id"]),
            seq=message["seq"],
            author=message["author"],
            text=message["text"],
            created_at=message["created_at"],
            attachments=tuple(Attachment(**a) for a in message.get("attachments") or []),
            agent_name=message.get("agent_name", ""),
            message_id=str(message["_id"]),
            extra=extra,
        )
        return self.customer_jobs(ref, outbound, idempotency_key=key or f"out:{message['_id']}")

    def customer_jobs(self, ref: ConversationRef, message: OutboundMessage, idempotency_key: str) -> list[dict]:
        """The jobs that deliver `message` to a customer, shaped to fit the channel (gateway/shaping.py):
        one per part, the first under `idempotency_key`, the others under `<key>#<n>`."""
        adapter = self.adapters.get(ref.channel)
        parts = shape(message, adapter.capabilities if adapter is not None else None)
        return [
            self.new_job(ref, part, idempotency_key if index == 0 else f"{idempotency_key}#{index + 1}", part=index)
            for index, part in enumerate(parts)
        ]

    async def enqueue(self, jobs: list[dict[str, Any]]) -> None:
        """Write jobs made by `new_job` (ignoring ones already enqueued under the same key) and deliver
        them. For jobs that must be written together with other documents, use the store's batch
        writes and then `dispatch` each job."""
        for job in jobs:
            try:
                await self.store.outbox.insert_one(job)
            except DuplicateKeyError:
                continue
            self.dispatch(job)

    def dispatch(self, job: dict[str, Any]) -> None:
        """Deliver a job this process enqueued (and so already leased) without another claim.

        If an earlier job of the same lane waits for a retry, this one must not overtake it: it is
        released to the sweeper, which delivers a lane strictly from its head.
        """
        if job["lane"] in self._blocked:
            task = asyncio.create_task(self._release([job["_id"]]))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        self._enqueue(job)

    def _enqueue(self, job: dict[str, Any]) -> None:
        lane = job["lane"]
        self._lane_queues.setdefault(lane, []).append(job)
        if lane not in self._lanes or self._lanes[lane].done():
            self._lanes[lane] = asyncio.create_task(self._run_lane(lane), name=f"outbox-lane-{lane}")

    async def _run_lane(self, lane: str) -> None:
        # One task per conversation delivers its jobs one after another: order within the lane holds.
        queue = self._lane_queues[lane]
        try:
            while queue and not self._stopping:
                job = queue.pop(0)
                delivered = await self._deliver(job)
                if not delivered:
                    # The lane is blocked by a retry: hand the later jobs to the sweeper.
                    await self._release([j["_id"] for j in queue])
                    queue.clear()
        except Exception:
            # The database failed mid-delivery. The lane's jobs keep their leases, which lapse, and
            # the sweeper delivers them in order once the database is back: delayed, not dropped.
            log.exception("outbox_lane_failed", extra={"conversation_id": lane, "left": len(queue)})
            queue.clear()
        finally:
            if not queue:
                self._lane_queues.pop(lane, None)
                self._lanes.pop(lane, None)

    async def _release(self, job_ids: list[ObjectId]) -> None:
        if job_ids:
            await self.store.outbox.update_many(
                {"_id": {"$in": job_ids}, "lease_owner": self.worker_id},
                {"$set": {"lease_owner": None, "lease_until": None}},
            )
            self._wake.set()

    # sweeping: retries, jobs left by a dead process, jobs released by a blocked lane

    def wake(self) -> None:
        self._wake.set()

    async def retry_now(self, lane: str) -> None:
        """The lane's jobs that wait for a retry are due now (the channel says what held them back is gone)."""
        await self.store.outbox.update_many(
            {"lane": lane, "state": PENDING, "next_attempt_at": {"$gt": utcnow()}},
            {"$set": {"next_attempt_at": utcnow()}},
        )
        self._wake.set()

    async def _sweep_forever(self) -> None:
        while not self._stopping:
            self.last_beat = utcnow()
            try:
                await self.sweep_once()
            except Exception:  # a database blip must not kill the worker; the next sweep retries
                log.exception("outbox_sweep_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    async def sweep_once(self, limit: int = 100) -> int:
        """Claim the head job of every lane whose head is due, and deliver it. Returns the count.

        Lanes with a job waiting (a retry, or another process's delivery) are remembered as blocked,
        so this process's fast path queues behind them instead of overtaking.
        """
        now = utcnow()
        outbox = self.store.outbox
        # A lane this process is delivering right now stays blocked too, if it has jobs waiting in the
        # database: once its task ends, a new reply's fast path must not pass them (found by the chaos
        # run: a sweep during a send unblocked the lane, and the next reply overtook a released job).
        self._blocked = set(await outbox.distinct("lane", {"state": PENDING, "lease_owner": {"$ne": self.worker_id}}))
        due = outbox.find(
            {
                "state": PENDING,
                "next_attempt_at": {"$lte": now},
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
            },
            projection={"lane": 1},
        )
        candidates = await due.sort([("next_attempt_at", ASCENDING)]).limit(limit).to_list()
        claimed = 0
        for lane in dict.fromkeys(c["lane"] for c in candidates):
            if lane in self._lanes:
                continue  # this process is delivering the lane right now; it keeps the order
            head = await outbox.find_one(
                {"lane": lane, "state": PENDING}, sort=[("position", ASCENDING), ("part", ASCENDING)]
            )
            if head is None or head["next_attempt_at"] > now:
                continue  # the head waits for its retry; nothing behind it may go first
            job = await self._claim(head["_id"], now)
            if job is not None:
                self._enqueue(job)  # lanes deliver concurrently; a slow provider holds only its lane
                claimed += 1
        return claimed

    async def _claim(self, job_id: ObjectId, now: datetime) -> dict[str, Any] | None:
        return await self.store.outbox.find_one_and_update(
            {
                "_id": job_id,
                "state": PENDING,
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
            },
            {
                "$set": {
                    "lease_owner": self.worker_id,
                    "lease_until": now + timedelta(seconds=self.lease_seconds),
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    # delivery

    async def _deliver(self, job: dict[str, Any]) -> bool:
        """Send one leased job; True when it is finished (sent or finally failed)."""
        fields = {"conversation_id": job["lane"], "job_id": str(job["_id"]), "channel": job["channel"]}
        adapter = self.adapters.get(job["channel"])
        attempts = job["attempts"] + 1
        try:
            if adapter is None:
                raise DeliveryError(f"no adapter for channel {job['channel']!r}", permanent=True)
            result = await adapter.send(ConversationRef.from_doc(job["ref"]), _outbound(job))
        except Exception as exc:
            error = exc if isinstance(exc, DeliveryError) else DeliveryError(f"{type(exc).__name__}: {exc}")
            return await self._after_failure(job, attempts, error, fields)
        await self.store.outbox.update_one(
            {"_id": job["_id"], "lease_owner": self.worker_id},
            {
                "$set": {
                    "state": SENT,
                    "attempts": attempts,
                    "sent_at": utcnow(),
                    "provider_message_id": result.provider_message_id or None,
                    "lease_owner": None,
                    "lease_until": None,
                }
            },
        )
        log_event(log, "outbox_sent", attempts=attempts, **fields)
        await self._map_provider_id(job, result.provider_message_id, fields)
        if self.on_sent is not None:
            await self._hook(self.on_sent, job, result.provider_message_id, fields)
        return True

    async def _map_provider_id(self, job: dict[str, Any], provider_message_id: str, fields: dict[str, Any]) -> None:
        """Remember the provider's id of a customer message, for the agent's later edit or delete.
        A channel that addresses messages by our own id (web chat) has nothing to map."""
        message_id = parse_id(job["message"].get("message_id") or "")
        if not provider_message_id or message_id is None or provider_message_id == str(message_id):
            return
        try:
            await self.store.map_provider_id(
                job["channel"],
                provider_message_id,
                message_id=message_id,
                conversation_id=parse_id(job["message"]["conversation_id"]),
                part=int(job.get("part") or 0),
            )
        except Exception:  # the message went out; a lost mapping only turns a later edit into a correction
            log.exception("provider_id_not_mapped", extra=fields)

    async def _hook(
        self, hook: SentHook | FailureHook, job: dict[str, Any], value: Any, fields: dict[str, Any]
    ) -> None:
        # A failing hook must not turn a finished delivery into a retry (the customer would get it twice).
        try:
            await hook(job, value)
        except Exception:
            log.exception("outbox_hook_failed", extra=fields)

    async def _after_failure(
        self, job: dict[str, Any], attempts: int, error: DeliveryError, fields: dict[str, Any]
    ) -> bool:
        now = utcnow()
        age = (now - job["created_at"]).total_seconds()
        if error.permanent or age >= self.policy.give_up_seconds:
            reason = error.reason if error.permanent else f"gave up after {attempts} attempts: {error.reason}"
            await self.store.outbox.update_one(
                {"_id": job["_id"]},
                {
                    "$set": {
                        "state": FAILED,
                        "attempts": attempts,
                        "failed_at": now,
                        "last_error": reason,
                        "lease_owner": None,
                        "lease_until": None,
                    }
                },
            )
            log_event(log, "outbox_failed", logging.WARNING, attempts=attempts, reason=reason, **fields)
            if self.on_failed is not None:
                final = DeliveryError(reason, permanent=True, unreachable=error.unreachable)
                await self._hook(self.on_failed, job, final, fields)
            return True
        self._blocked.add(job["lane"])
        delay = self.policy.delay(attempts, error.retry_after)
        await self.store.outbox.update_one(
            {"_id": job["_id"]},
            {
                "$set": {
                    "attempts": attempts,
                    "next_attempt_at": now + timedelta(seconds=delay),
                    "last_error": error.reason,
                    "lease_owner": None,
                    "lease_until": None,
                }
            },
        )
        log_event(
            log,
            "outbox_retry",
            logging.WARNING,
            attempts=attempts,
            delay_s=round(delay, 2),
            reason=error.reason,
            **fields,
        )
        return False
