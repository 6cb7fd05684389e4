"""The gateway with OPENAI_BASE_URL set: the real SDK talks to a local fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import GatewayFactory
from tests.fakes.http_channel import HttpTestChannel
from tests.fakes.openai_server import Completion, Delay, FakeOpenAI, tool_call
from tests.fakes.provider import FakeProvider
from tests.helpers import eventually, inbound


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.close()


async def test_the_model_answers_from_the_knowledge_base_with_queues_and_history(
    gateway_factory: GatewayFactory, fake_openai: FakeOpenAI, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    fake_openai.add(
        tool_call("search_knowledge_base", {"query": "shipping cost"}),
        Completion(content="Standard shipping is $5.95. Source: Shipping options and costs"),
    )
    gw = await gateway_factory(
        extra_adapters=[channel], openai_base_url=f"{fake_openai.url}/v1", openai_api_key="sk-test"
    )
    assert gw.runtime.responder.name == "openai"
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)

    assert provider.delivered[0]["payload"]["text"].startswith("Standard shipping is $5.95")
    first = fake_openai.bodies[0]
    tools = {t["function"]["name"] for t in first["tools"]}
    assert tools == {"search_knowledge_base", "handoff_to_human", "record_customer_detail"}
    handoff = next(t for t in first["tools"] if t["function"]["name"] == "handoff_to_human")
    assert set(handoff["function"]["parameters"]["properties"]["queue"]["enum"]) == {
        "general",
        "billing",
        "orders",
        "accounts",
    }
    stored = await gw.runtime.store.messages.find_one({"author": "ai"})
    assert stored["meta"]["responder"] == "openai"
    assert stored["meta"]["articles"][0]["article_id"] == "shipping"
    assert stored["meta"]["tool_calls"][0]["name"] == "search_knowledge_base"

    # A follow-up carries the conversation so far, so the model can answer "and to Canada?".
    fake_openai.add(Completion(content="Shipping to Canada is $19.95. Source: Shipping options and costs"))
    await gw.runtime.ingest.receive(inbound("And to Canada?", "2"))
    await eventually(lambda: len(provider.delivered) == 2)
    sent = [m.get("content") for m in fake_openai.bodies[-1]["messages"]]
    assert "How much does shipping cost?" in sent
    assert any(c and c.startswith("Standard shipping is $5.95") for c in sent)


async def test_hard_triggers_fire_without_asking_the_model(
    gateway_factory: GatewayFactory, fake_openai: FakeOpenAI, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    fake_openai.add(Completion(content="I can help with that myself!"))
    gw = await gateway_factory(extra_adapters=[channel], openai_base_url=f"{fake_openai.url}/v1")
    await gw.runtime.ingest.receive(inbound("I want to speak to a real person right now", "1"))
    await eventually(lambda: len(provider.delivered) == 1)
    assert fake_openai.requests == []
    conversation = await gw.runtime.store.conversations.find_one({})
    assert conversation["status"] == "waiting_for_agent"
    assert conversation["handoff"]["trigger"] == "human_request"


async def test_the_model_hands_off_only_to_a_queue_that_exists(
    gateway_factory: GatewayFactory, fake_openai: FakeOpenAI, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    fake_openai.add(
        tool_call("handoff_to_human", {"reason": "warranty claim", "queue": "warranty", "summary": "lamp"}),
        tool_call("handoff_to_human", {"reason": "warranty claim", "queue": "legal-dept", "summary": "lamp"}),
        Completion(content="I'll get a colleague to look at this."),
    )
    gw = await gateway_factory(extra_adapters=[channel], openai_base_url=f"{fake_openai.url}/v1")
    await gw.runtime.ingest.receive(inbound("Does the warranty cover my lamp's dimmer?", "1"))
    await eventually(lambda: len(provider.delivered) == 1)
    conversation = await gw.runtime.store.conversations.find_one({})
    assert conversation["status"] == "waiting_for_agent"
    assert conversation["queue"] in {"general", "billing", "orders", "accounts"}
    assert conversation["handoff"]["trigger"] == "model_request"


async def test_a_model_that_times_out_falls_back_to_the_offline_answer(
    gateway_factory: GatewayFactory, fake_openai: FakeOpenAI, channel: HttpTestChannel, provider: FakeProvider
) -> None:
    fake_openai.add(Delay(5.0, Completion(content="too late")), Delay(5.0, Completion(content="too late")))
    gw = await gateway_factory(
        extra_adapters=[channel], openai_base_url=f"{fake_openai.url}/v1", ai_timeout_seconds=0.5
    )
    await gw.runtime.ingest.receive(inbound("How much does shipping cost?", "1"))
    await eventually(lambda: len(provider.delivered) == 1, timeout=15)
    assert "Source: Shipping" in provider.delivered[0]["payload"]["text"]
    stored = await gw.runtime.store.messages.find_one({"author": "ai"})
    assert stored["meta"]["fallback_reason"] == "timeout"
    assert stored["meta"]["responder"] == "offline"
