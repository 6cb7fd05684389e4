"""The outbox against a local fake provider that fails, throttles and recovers."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from pymongo import AsyncMongoClient

from gateway.channel import Capabilities
from gateway.models import ConversationRef, OutboundMessage, SendResult
from gateway.outbox import OutboxWorker, job_document
from gateway.store import ConversationStore, utcnow
from tests.conftest import GatewayFactory
from tests.fakes.http_channel import HttpTestChannel
from tests.fakes.provider import FakeProvider, Outcome
from tests.helpers import eventually, inbound


async def test_retries_with_backoff_and_retry_after_until_the_provider_recovers(
    gateway_factory: GatewayFactory, provider: FakeProvider, channel: HttpTestChannel
) -> None:
    gw = await gateway_factory(extra_adapters=[channel])
    provider.fail_next(Outcome(503), Outcome(429, retry_after=0.4), Outcome(500))

    result = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "m1"))

    await eventually(lambda: len(provider.delivered) == 1)
    assert len(provider.received) == 4
    at = [r["at"] for r in provider.received]
    gaps = [b - a for a, b in itertools.pairwise(at)]
    assert gaps[1] >= 0.4, f"Retry-After of 0.4 s not honoured: {gaps}"
    # Attempt 3 waits at least half of base * 2**2 (equal jitter); attempt 1 is far below the cap.
    assert gaps[2] >= 0.1, gaps
    assert gaps[0] < 0.4, gaps
    assert "shipping" in provider.delivered[0]["payload"]["text"].lower()

    async def marked_sent() -> bool:
        return (await gw.runtime.store.outbox.find_one({"lane": result.conversation_id}))["state"] == "sent"

    await eventually(marked_sent)  # the provider answers before the job is marked
    job = await gw.runtime.store.outbox.find_one({"lane": result.conversation_id})
    assert job["state"] == "sent"
    assert job["attempts"] == 4
    assert job["provider_message_id"] == "pm-1"
    assert job["last_error"] == "HTTP 500"


async def test_delivery_is_in_order_per_conversation_while_the_first_message_is_retried(
    gateway_factory: GatewayFactory, provider: FakeProvider, channel: HttpTestChannel
) -> None:
    gw = await gateway_factory(extra_adapters=[channel])
    provider.fail_next(Outcome(503), Outcome(503), Outcome(503))
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "m1"))
    await eventually(lambda: len(provider.received) >= 1)
    await gw.runtime.ingest.receive(inbound("How do I reset my password?", "m2"))

    await eventually(lambda: len(provider.delivered) == 2)
    assert [d["payload"]["seq"] for d in provider.delivered] == [2, 4]


async def test_a_permanent_failure_is_marked_failed_with_its_reason_and_later_messages_still_go(
    gateway_factory: GatewayFactory, provider: FakeProvider, channel: HttpTestChannel
) -> None:
    gw = await gateway_factory(extra_adapters=[channel])
    provider.fail_next(Outcome(400, body={"ok": False, "description": "chat not found"}))
    result = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "m1"))
    await eventually(lambda: len(provider.received) == 1)
    await gw.runtime.ingest.receive(inbound("How do I reset my password?", "m2"))
    await eventually(lambda: len(provider.delivered) == 1)

    outbox = gw.runtime.store.outbox

    async def one_sent() -> bool:
        return await outbox.count_documents({"state": "sent"}) == 1

    await eventually(one_sent)
    failed = await outbox.find_one({"lane": result.conversation_id, "position": 2})
    assert failed["state"] == "failed"
    assert failed["last_error"] == "HTTP 400"
    assert failed["failed_at"] is not None
    assert provider.delivered[0]["payload"]["seq"] == 4


async def test_gives_up_after_the_configured_time_and_says_why(
    gateway_factory: GatewayFactory, provider: FakeProvider, channel: HttpTestChannel
) -> None:
    gw = await gateway_factory(extra_adapters=[channel], outbox_give_up_seconds=0.5)
    provider.fail_next(*[Outcome(503)] * 1000)
    result = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "m1"))
    outbox = gw.runtime.store.outbox

    async def failed() -> bool:
        job = await outbox.find_one({"lane": result.conversation_id})
        return job is not None and job["state"] == "failed"

    await eventually(failed)
    job = await outbox.find_one({"lane": result.conversation_id})
    assert job["last_error"].startswith("gave up after")
    assert job["attempts"] == len(provider.received) >= 2
    assert provider.delivered == []


async def test_pending_deliveries_resume_after_a_restart(
    gateway_factory: GatewayFactory, provider: FakeProvider, channel: HttpTestChannel
) -> None:
    first = await gateway_factory(extra_adapters=[channel])
    provider.fail_next(Outcome(503, retry_after=0.5))
    await first.runtime.ingest.receive(inbound("How much does shipping cost?", "m1"))
    await eventually(lambda: len(provider.received) == 1)
    await first.close()  # the gateway stops while the message waits for its retry
    assert provider.delivered == []

    second = await gateway_factory(extra_adapters=[channel])
    await eventually(lambda: len(provider.delivered) == 1)

    async def marked_sent() -> bool:
        return (await second.runtime.store.outbox.find_one({}))["state"] == "sent"

    await eventually(marked_sent)  # the provider answers before the job is marked
    job = await second.runtime.store.outbox.find_one({})
    assert job["state"] == "sent" and job["attempts"] == 2
    assert job["lease_owner"] is None


async def test_a_job_leased_by_a_process_that_died_is_taken_over_when_the_lease_lapses(
    gateway_factory: GatewayFactory, provider: FakeProvider, channel: HttpTestChannel
) -> None:
    gw = await gateway_factory(extra_adapters=[channel])
    ref = ConversationRef("testchan", "orphan")
    message = OutboundMessage("lane-orphan", 1, "ai", "left behind", utcnow(), message_id="orphan-1")
    job = job_document(
        ref=ref,
        message=message,
        idempotency_key="out:orphan",
        worker_id="dead-worker",
        lease_seconds=0.5,
        now=utcnow(),
    )
    await gw.runtime.store.outbox.insert_one(job)
    await gw.runtime.outbox.sweep_once()
    assert provider.received == [], "a live lease must not be taken over"

    await eventually(lambda: len(provider.delivered) == 1, timeout=5)

    async def marked_sent() -> bool:
        return (await gw.runtime.store.outbox.find_one({"_id": job["_id"]}))["state"] == "sent"

    await eventually(marked_sent)  # the provider answers before the job is marked
    stored = await gw.runtime.store.outbox.find_one({"_id": job["_id"]})
    assert stored["sent_at"] - job["created_at"] >= timedelta(seconds=0.45)


async def test_two_gateway_processes_deliver_each_job_exactly_once_and_in_lane_order(
    gateway_factory: GatewayFactory, provider: FakeProvider, channel: HttpTestChannel
) -> None:
    one = await gateway_factory(extra_adapters=[channel])
    two = await gateway_factory(extra_adapters=[channel])
    jobs = []
    for lane in range(5):
        for position in range(1, 9):
            message = OutboundMessage(
                f"lane-{lane}",
                position,
                "ai",
                f"{lane}/{position}",
                utcnow(),
                message_id=f"{lane}-{position}",
            )
            jobs.append(
                job_document(
                    ref=ConversationRef("testchan", f"chat-{lane}"),
                    message=message,
                    idempotency_key=f"out:{lane}-{position}",
                    worker_id=None,  # nobody's yet: both sweepers compete for every job
                    lease_seconds=30,
                    now=utcnow(),
                )
            )
    await one.runtime.store.outbox.insert_many(jobs)
    one.runtime.outbox.wake()
    two.runtime.outbox.wake()

    await eventually(lambda: len(provider.delivered) == 40, timeout=20)
    keys = [d["key"] for d in provider.received]
    assert len(keys) == len(set(keys)) == 40, "a job was sent twice"
    for lane in range(5):
        seqs = [d["payload"]["seq"] for d in provider.delivered if d["payload"]["chat_id"] == f"chat-{lane}"]
        assert seqs == list(range(1, 9)), f"lane {lane} out of order: {seqs}"


class GatedChannel:
    """Records the order of sends; the send of seq 1 waits until the test opens the gate."""

    name = "gated"
    label = "Gated"
    capabilities = Capabilities(max_text=4096)

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.gate = asyncio.Event()

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult:
        if message.seq == 1:
            await self.gate.wait()
        self.sent.append(message.seq)
        return SendResult(f"gated:{message.seq}")


async def test_a_new_reply_never_overtakes_a_released_job_of_a_lane_being_delivered(
    mongo: AsyncMongoClient, db_name: str
) -> None:
    """Found by the chaos run with Telegram: a sweep while a lane's head was in flight dropped the lane
    from the blocked set, so the next reply took the fast path past a job still waiting in the database."""
    store = ConversationStore(mongo, db_name)
    await store.ensure_indexes()
    channel = GatedChannel()
    worker = OutboxWorker(store, {"gated": channel}, poll_seconds=3600)
    ref = ConversationRef("gated", "1")

    def job(seq: int, *, leased: bool) -> dict:
        message = OutboundMessage(
            conversation_id="lane-1", seq=seq, author="ai", text=f"reply {seq}", created_at=utcnow()
        )
        made = worker.new_job(ref, message, f"out:{seq}")
        if not leased:  # as a blocked lane's release, or a restart's backlog, leaves it
            made["lease_owner"] = made["lease_until"] = None
        return made

    await store.outbox.insert_many([job(1, leased=False), job(2, leased=False)])
    assert await worker.sweep_once() == 1  # the head (seq 1) is claimed; its send is in flight
    await asyncio.sleep(0.05)
    await worker.sweep_once()  # a sweep while seq 1 is in flight
    channel.gate.set()
    await eventually(lambda: channel.sent == [1])
    await asyncio.sleep(0.1)  # the lane's task ends
    new = job(3, leased=True)  # a new reply this process enqueues and dispatches at once
    await store.outbox.insert_one(new)
    worker.dispatch(new)
    for _ in range(3):
        await worker.sweep_once()
        await asyncio.sleep(0.1)
    await worker.stop()
    assert channel.sent == [1, 2, 3]
