"""Every acknowledged customer message gets answered: after a killed process, a failed turn, a
re-send, a reply batch that failed half-way, or a database that lost its counter.

"Killing" a process here means cancelling its AI turn mid-flight: no more writes, no more renewals
of its hold, exactly what a kill -9 leaves in the database. The chaos test (tests/chaos) does it
with real processes and signals.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from pymongo import ASCENDING, IndexModel

from agent_bridge.ai.responder import Reply, Turn
from bench.webchat_roundtrip import answered_questions
from gateway.store import utcnow
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.http_channel import HttpTestChannel
from tests.fakes.provider import FakeProvider
from tests.helpers import eventually, inbound

FAST = {"recovery_lease_seconds": 1.0}


class HangingResponder:
    """A turn that never ends by itself: the process holding it is then 'killed'."""

    name = "hanging"

    async def respond(self, turn: Turn) -> Reply:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def kill_turns(gw: RunningGateway) -> None:
    """What kill -9 does to the turns in flight: they stop, and write nothing more."""
    turns = list(gw.runtime.ingest._turns)
    for task in turns:
        task.cancel()
    await asyncio.gather(*turns, return_exceptions=True)


async def ai_replies(gw: RunningGateway, customer_id: Any) -> list[dict[str, Any]]:
    return await gw.runtime.store.messages.find({"author": "ai", "meta.in_reply_to": customer_id}).to_list()


@pytest.fixture
async def stuck(gateway_factory: GatewayFactory, channel: HttpTestChannel) -> RunningGateway:
    """A gateway whose AI turn hangs, and whose own sweep stays out of the way."""
    return await gateway_factory(
        extra_adapters=[channel], responder=HangingResponder(), recovery_sweep_seconds=300, recovery_lease_seconds=60
    )


async def lapse_holds(gw: RunningGateway) -> None:
    """Time passing: the holds of the killed process's turns run out (60 s, not waited for here)."""
    past = utcnow().replace(year=2000)
    await gw.runtime.store.messages.update_many(
        {"turn_lease_until": {"$ne": None}}, {"$set": {"turn_lease_until": past}}
    )


async def test_a_resend_changes_nothing_in_the_conversation(
    gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    gw = await gateway_factory(extra_adapters=[channel])
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)
    before = await gw.runtime.store.conversations.find_one({})
    await asyncio.sleep(0.01)  # a changed timestamp would show
    again = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    assert again.duplicate
    assert await gw.runtime.store.conversations.find_one({}) == before  # no seq burned, no time moved


async def test_a_resend_of_a_message_whose_process_died_gets_it_answered(
    stuck: RunningGateway, gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    first = await stuck.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await kill_turns(stuck)
    customer = first.message
    assert customer["reply_seq"] == customer["seq"] + 1

    other = await gateway_factory(extra_adapters=[channel], recovery_sweep_seconds=300, **FAST)
    # While the hold is fresh, the turn may still be running somewhere: a re-send only re-acknowledges.
    assert (await other.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))).duplicate
    await asyncio.sleep(0.3)
    assert provider.delivered == []

    await lapse_holds(other)
    again = await other.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    assert again.duplicate and again.message["_id"] == customer["_id"]
    await eventually(lambda: len(provider.delivered) == 1)
    replies = await ai_replies(other, customer["_id"])
    assert len(replies) == 1 and replies[0]["seq"] == customer["reply_seq"]  # the number reserved for it
    stored = await other.runtime.store.messages.find_one({"_id": customer["_id"]})
    assert "awaiting_reply_since" not in stored

    # Answered: more re-sends change nothing.
    await other.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await asyncio.sleep(0.3)
    assert len(provider.received) == 1


async def test_the_sweep_answers_what_a_dead_process_left_without_any_resend(
    stuck: RunningGateway, gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    first = await stuck.runtime.ingest.receive(inbound("How do I reset my password?", "1"))
    await kill_turns(stuck)
    other = await gateway_factory(extra_adapters=[channel], recovery_sweep_seconds=0.1, **FAST)
    await asyncio.sleep(0.3)
    assert provider.delivered == []  # the hold is fresh: the turn may still be running somewhere
    await lapse_holds(other)
    await eventually(lambda: len(provider.delivered) == 1, timeout=5)
    assert "password" in provider.delivered[0]["payload"]["text"].lower()
    assert len(await ai_replies(other, first.message["_id"])) == 1
    await asyncio.sleep(1.5)  # several more sweeps, and lapsed leases: still one answer
    assert len(provider.received) == 1


async def test_two_processes_sweeping_answer_once(
    stuck: RunningGateway, gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    for n in range(5):
        await stuck.runtime.ingest.receive(inbound("How much does shipping cost?", str(n), chat=f"c{n}"))
    await kill_turns(stuck)
    a = await gateway_factory(extra_adapters=[channel], recovery_sweep_seconds=0.05, **FAST)
    await gateway_factory(extra_adapters=[channel], recovery_sweep_seconds=0.05, **FAST)
    await lapse_holds(a)
    await eventually(lambda: len(provider.delivered) == 5, timeout=8)
    await asyncio.sleep(1.5)
    assert len(provider.received) == 5
    assert await a.runtime.store.messages.count_documents({"author": "ai"}) == 5
    assert await a.runtime.store.messages.count_documents({"awaiting_reply_since": {"$exists": True}}) == 0


async def test_a_failed_turn_is_run_again_not_dropped(
    gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    gw = await gateway_factory(extra_adapters=[channel], recovery_sweep_seconds=0.1, **FAST)
    triage = gw.runtime.ingest.triage
    failures = []

    class FailingOnce:
        """The real triage, except that its first assessment raises (a bug, a database blip)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(triage, name)

        def assess(self, *args: Any, **kwargs: Any) -> Any:
            if not failures:
                failures.append(1)
                raise RuntimeError("triage blew up")
            return triage.assess(*args, **kwargs)

    gw.runtime.ingest.triage = FailingOnce()  # type: ignore[assignment]
    first = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1, timeout=5)
    assert failures == [1]
    assert len(await ai_replies(gw, first.message["_id"])) == 1


async def test_a_reply_batch_failing_half_way_writes_nothing_and_is_answered_later(
    gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    gw = await gateway_factory(extra_adapters=[channel], recovery_sweep_seconds=0.1, **FAST)
    store = gw.runtime.store
    first = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)
    cid = first.message["conversation_id"]
    # Make the reply's outbox job (third write of the batch) collide: the guard and the AI message
    # before it succeed, then the batch fails in the middle.
    await store.outbox.create_indexes([IndexModel([("lane", ASCENDING), ("position", ASCENDING)], unique=True)])
    blocker = {"lane": str(cid), "position": 4, "idempotency_key": "blocker", "state": "test", "created_at": utcnow()}
    await store.outbox.insert_one(blocker)

    second = await gw.runtime.ingest.receive(inbound("How do I reset my password?", "2"))
    customer = second.message
    await asyncio.sleep(0.5)
    # All or nothing: no AI message without its job, and the conversation not marked answered.
    assert await ai_replies(gw, customer["_id"]) == []
    conversation = await store.conversations.find_one({"_id": cid})
    assert conversation["answered_message_id"] == first.message["_id"]
    assert (await store.messages.find_one({"_id": customer["_id"]}))["awaiting_reply_since"] is not None

    await store.outbox.delete_one({"idempotency_key": "blocker"})
    await eventually(lambda: len(provider.delivered) == 2, timeout=5)
    replies = await ai_replies(gw, customer["_id"])
    assert len(replies) == 1 and replies[0]["seq"] == 4
    assert (await store.conversations.find_one({"_id": cid}))["answered_message_id"] == customer["_id"]


async def test_a_counter_that_went_back_never_gives_a_number_twice(
    gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    """A database that lost its last writes may hand back an older counter: the message is numbered
    after what is stored, not rejected, and nothing is numbered twice."""
    gw = await gateway_factory(extra_adapters=[channel])
    store = gw.runtime.store
    first = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)
    await store.conversations.update_one({"_id": first.message["conversation_id"]}, {"$set": {"seq": 0}})

    second = await gw.runtime.ingest.receive(inbound("How do I reset my password?", "2"))
    assert not second.duplicate and second.message["seq"] == 3
    await eventually(lambda: len(provider.delivered) == 2)
    seqs = [m["seq"] for m in await store.messages.find({}).sort("seq").to_list()]
    assert seqs == [1, 2, 3, 4]


async def test_quick_messages_in_one_conversation_are_all_answered_without_waiting_for_the_sweep(
    gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    """Each reply's transaction races the numbering of the next message on the same conversation
    document: a write conflict must make the transaction run again, not fail the turn."""
    gw = await gateway_factory(extra_adapters=[channel], recovery_sweep_seconds=300)
    questions, _handed_off = answered_questions()  # different questions the AI answers, none handed off
    for n, question in enumerate(questions[:10]):
        await gw.runtime.ingest.receive(inbound(question, str(n)))
    await eventually(lambda: len(provider.delivered) == 10, timeout=8)
    assert await gw.runtime.store.messages.count_documents({"author": "ai"}) == 10
    assert await gw.runtime.store.messages.count_documents({"awaiting_reply_since": {"$exists": True}}) == 0


HOLD_TRANSACTION = """
import asyncio, sys
from pymongo import AsyncMongoClient

async def main():
    client = AsyncMongoClient(sys.argv[1])
    session = client.start_session()
    await session.start_transaction()
    await client[sys.argv[2]].conversations.update_one({"ref.chat_id": "chat-1"}, {"$set": {"x": 1}}, session=session)
    print("holding", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_transaction_left_open_by_a_killed_process_does_not_block_its_conversation(
    gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider, mongo_uri: str, db_name: str
) -> None:
    """A process killed between a reply's writes and its commit leaves a transaction holding the
    conversation. A process starting afterwards ends it, so the conversation goes on."""
    gw = await gateway_factory(extra_adapters=[channel])
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)

    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_TRANSACTION, mongo_uri, db_name, stdout=asyncio.subprocess.PIPE
    )
    assert holder.stdout is not None
    assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"holding\n"
    holder.kill()  # kill -9, in the middle of the transaction
    await holder.wait()

    replacement = await gateway_factory(extra_adapters=[channel])
    await asyncio.wait_for(replacement.runtime.ingest.receive(inbound("How do I reset my password?", "2")), 10)
    await eventually(lambda: len(provider.delivered) == 2, timeout=10)
