"""Ingest and routing on the real database: dedupe, contact and conversation resolution, ownership."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from pymongo import monitoring

from agent_bridge.ai.responder import Reply, Turn
from gateway.models import ConversationRef
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.http_channel import HttpTestChannel
from tests.fakes.provider import FakeProvider
from tests.helpers import eventually, inbound


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, channel: HttpTestChannel) -> RunningGateway:
    return await gateway_factory(extra_adapters=[channel])


async def test_a_provider_retry_is_a_no_op(gw: RunningGateway, provider: FakeProvider) -> None:
    first = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "update-1"))
    await eventually(lambda: len(provider.delivered) == 1)
    again = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "update-1"))

    assert not first.duplicate and again.duplicate
    assert again.message["_id"] == first.message["_id"]
    await asyncio.sleep(0.2)  # give a wrongly scheduled second AI turn the time to show up
    assert len(provider.received) == 1
    store = gw.runtime.store
    assert await store.messages.count_documents({}) == 2
    assert await store.outbox.count_documents({}) == 1


async def test_contact_and_conversation_are_resolved_once_per_thread(gw: RunningGateway, provider) -> None:
    store = gw.runtime.store
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1", chat="alpha"))
    await gw.runtime.ingest.receive(inbound("And returns?", "2", chat="alpha"))
    await gw.runtime.ingest.receive(inbound("Hi", "3", chat="beta"))
    await eventually(lambda: len(provider.delivered) == 3)

    assert await store.conversations.count_documents({}) == 2
    assert await store.contacts.count_documents({}) == 2
    alpha = await store.conversations.find_one({"ref.chat_id": "alpha"})
    contact = await store.contacts.find_one({"_id": alpha["contact_id"]})
    assert contact["identity_keys"] == ["testchan|user-alpha"]
    assert contact["identities"] == [{"channel": "testchan", "address": "user-alpha"}]
    seqs = [m["seq"] async for m in store.messages.find({"conversation_id": alpha["_id"]}).sort("seq")]
    assert seqs == [1, 2, 3, 4]


async def test_no_ai_reply_while_a_human_owns_the_conversation(gw: RunningGateway, provider: FakeProvider) -> None:
    store = gw.runtime.store
    first = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)
    for status in ("waiting_for_agent", "with_agent"):
        await store.conversations.update_one({"ref.chat_id": "chat-1"}, {"$set": {"status": status}})
        result = await gw.runtime.ingest.receive(inbound("Still there? shipping cost?", f"h-{status}"))
        assert not result.duplicate
    await asyncio.sleep(0.3)
    assert len(provider.received) == 1
    history = store.messages.find({"conversation_id": first.message["conversation_id"]}).sort("seq")
    assert [(m["seq"], m["author"]) async for m in history] == [
        (1, "customer"),
        (2, "ai"),
        (3, "customer"),
        (4, "customer"),
    ]
    conversation = await store.conversations.find_one({"ref.chat_id": "chat-1"})
    assert conversation["seq"] == 4  # no number reserved for an AI reply that cannot happen


async def test_the_ai_reply_is_dropped_when_a_human_takes_over_while_it_thinks(
    gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    release = asyncio.Event()

    class SlowResponder:
        name = "slow"

        async def respond(self, turn: Turn) -> Reply:
            await release.wait()
            return Reply(text="late answer", answered=True, confidence=1.0, responder=self.name)

    gw = await gateway_factory(extra_adapters=[channel], responder=SlowResponder())
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await gw.runtime.store.conversations.update_one({"ref.chat_id": "chat-1"}, {"$set": {"status": "with_agent"}})
    release.set()
    await gw.runtime.ingest.drain()
    assert await gw.runtime.store.messages.count_documents({"author": "ai"}) == 0
    assert await gw.runtime.store.outbox.count_documents({}) == 0
    assert provider.received == []


async def test_a_failing_responder_gets_the_customer_an_answer_not_silence(
    gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    class BrokenResponder:
        name = "broken"

        async def respond(self, turn: Turn) -> Reply:
            raise RuntimeError("model exploded")

    gw = await gateway_factory(extra_adapters=[channel], responder=BrokenResponder())
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)
    assert "passing your conversation" in provider.delivered[0]["payload"]["text"]
    conversation = await gw.runtime.store.conversations.find_one({})
    assert conversation["status"] == "waiting_for_agent"
    assert conversation["handoff"]["trigger"] == "ai_unavailable"


async def test_a_resolved_conversation_reopens_but_not_for_a_retried_message(
    gw: RunningGateway, provider: FakeProvider
) -> None:
    store = gw.runtime.store
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)
    await store.conversations.update_one({"ref.chat_id": "chat-1"}, {"$set": {"status": "resolved"}})

    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))  # a late provider retry
    conversation = await store.conversations.find_one({"ref.chat_id": "chat-1"})
    assert conversation["status"] == "resolved" and conversation["reopen_count"] == 0

    await gw.runtime.ingest.receive(inbound("One more question: how do I reset my password?", "2"))
    conversation = await store.conversations.find_one({"ref.chat_id": "chat-1"})
    assert conversation["status"] == "ai" and conversation["reopen_count"] == 1
    assert conversation["reopened_at"] is not None
    await eventually(lambda: len(provider.delivered) == 2)


class CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in ("ping", "hello", "isMaster", "endSessions"):
            self.counts[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_the_round_trips_of_an_ai_turn(
    gateway_factory: GatewayFactory, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    """Six: the duplicate check, numbering, the customer's message, the reply with its job in one
    transaction (bulkWrite + commit), and marking the job sent. docs/benchmarks.md counts them.
    A channel with its own message ids adds two inserts into the provider-id map: the customer
    message's id and the reply's (web chat has none, so its turns stay at six)."""
    counter = CommandCounter()
    # Slow sweepers keep their background queries out of the count.
    gw = await gateway_factory(
        extra_adapters=[channel], command_listeners=[counter], outbox_poll_seconds=30, recovery_sweep_seconds=30
    )
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "warm-up"))
    await eventually(lambda: len(provider.delivered) == 1)
    await asyncio.sleep(0.1)

    counter.counts.clear()
    await gw.runtime.ingest.receive(inbound("How do I reset my password?", "measured"))
    await eventually(lambda: len(provider.delivered) == 2)
    await asyncio.sleep(0.1)

    assert counter.counts == Counter(
        {"find": 1, "findAndModify": 1, "insert": 3, "bulkWrite": 1, "commitTransaction": 1, "update": 1}
    )


async def test_a_second_turn_for_an_answered_message_changes_nothing(gw: RunningGateway, provider) -> None:
    """A restart's resume (or any second turn) for a message the AI already answered: the guarded
    write stops before touching the conversation, so nothing half-written is left behind."""
    store = gw.runtime.store
    first = await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)
    conversation = await store.conversations.find_one({})
    customer = first.message
    seq = await store.allocate_seq(conversation["_id"])
    before = await store.conversations.find_one({"_id": conversation["_id"]})
    gw.runtime.ingest.start_turn(ConversationRef.from_doc(conversation["ref"]), {**before, "seq": seq}, customer)
    await gw.runtime.ingest.drain()
    after = await store.conversations.find_one({"_id": conversation["_id"]})
    assert after == before
    assert await store.messages.count_documents({"author": "ai"}) == 1
    assert len(provider.received) == 1
