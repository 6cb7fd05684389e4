"""The model responder through the real `openai` SDK against a local fake OpenAI-compatible server."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent_bridge.ai.knowledge_base import KnowledgeBase
from agent_bridge.ai.model import (
    AGENT_PREFIX,
    GROUNDED_CONFIDENCE,
    UNAVAILABLE_TEXT,
    UNGROUNDED_CONFIDENCE,
    ModelResponder,
    build_model_responder,
    cited_articles,
)
from agent_bridge.ai.offline import OfflineResponder
from agent_bridge.ai.responder import ArticleRef, HistoryItem, Turn
from tests.fakes.openai_server import (
    Completion,
    Delay,
    FakeOpenAI,
    HttpError,
    ScriptedToolCall,
    tool_call,
)

KB_DIR = Path(__file__).resolve().parents[2] / "config" / "kb"
MODEL = "test-model"
API_KEY = "sk-test-123"
QUEUES = ("billing", "technical", "general")
SHIPPING_TITLE = "Shipping options and costs"


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load(KB_DIR)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI(api_key=API_KEY).start()
    try:
        yield server
    finally:
        await server.close()


_open: list[ModelResponder] = []


@pytest.fixture(autouse=True)
async def close_responders() -> AsyncIterator[None]:
    """Every responder a test builds is closed, so no SDK connection outlives its test."""
    yield
    while _open:
        await _open.pop().close()


def tracked(responder: ModelResponder) -> ModelResponder:
    _open.append(responder)
    return responder


def make(
    fake: FakeOpenAI,
    kb: KnowledgeBase,
    *,
    fallback: bool = True,
    timeout_s: float = 5.0,
    max_tool_rounds: int = 4,
) -> ModelResponder:
    return tracked(
        build_model_responder(
            API_KEY,
            fake.url + "/v1",
            MODEL,
            kb,
            OfflineResponder(kb) if fallback else None,
            timeout_s=timeout_s,
            max_tool_rounds=max_tool_rounds,
            shop_name="Northwind",
        )
    )


def turn(text: str, **kwargs: Any) -> Turn:
    return Turn(conversation_id="c-1", text=text, queues=kwargs.pop("queues", QUEUES), **kwargs)


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


# --- answers from the knowledge base ------------------------------------------------------------


async def test_kb_answer_searches_then_cites_the_article(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(
        tool_call("search_knowledge_base", {"query": "shipping cost"}, id="call_search"),
        Completion(content=f"Standard shipping is $5.95 per order.\n\nSource: {SHIPPING_TITLE}"),
    )
    reply = await make(fake, kb).respond(turn("How much does shipping cost?"))

    assert reply.text.endswith(f"Source: {SHIPPING_TITLE}")
    assert reply.answered
    assert reply.confidence == GROUNDED_CONFIDENCE
    assert [a.article_id for a in reply.articles] == ["shipping"]
    assert reply.articles[0].title == SHIPPING_TITLE and reply.articles[0].score > 0
    assert reply.responder == "openai" and reply.fallback_reason == ""
    assert reply.handoff is None
    assert [c.name for c in reply.tool_calls] == ["search_knowledge_base"]
    assert reply.tool_calls[0].arguments == {"query": "shipping cost"}
    assert "shipping" in reply.tool_calls[0].result

    first, second = fake.bodies
    assert fake.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    assert first["model"] == MODEL and first["tool_choice"] == "auto"
    names = [t["function"]["name"] for t in first["tools"]]
    assert names == ["search_knowledge_base", "handoff_to_human", "record_customer_detail"]
    assert all(t["type"] == "function" for t in first["tools"])
    assert first["messages"][0]["role"] == "system" and "Northwind" in first["messages"][0]["content"]
    assert first["messages"][-1] == {"role": "user", "content": "How much does shipping cost?"}
    # The second request carries the assistant's tool call and the tool result answering it.
    echoed = second["messages"][-2]
    assert echoed["role"] == "assistant"
    assert echoed["tool_calls"][0]["id"] == "call_search"
    assert json.loads(echoed["tool_calls"][0]["function"]["arguments"]) == {"query": "shipping cost"}
    (result,) = tool_messages(second)
    assert result["tool_call_id"] == "call_search"
    assert SHIPPING_TITLE in result["content"] and "$5.95" in result["content"]


async def test_answer_without_citation_claims_no_article(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(
        tool_call("search_knowledge_base", {"query": "shipping cost"}),
        Completion(content="It depends on the speed you pick at checkout."),
    )
    reply = await make(fake, kb).respond(turn("How much does shipping cost?"))
    assert reply.answered and reply.articles == ()
    assert reply.confidence == UNGROUNDED_CONFIDENCE
    assert reply.tool_calls[0].name == "search_knowledge_base"  # what was retrieved stays visible


async def test_no_answer_tag_is_removed_and_marks_unanswered(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(
        tool_call("search_knowledge_base", {"query": "gift wrapping"}),
        Completion(content="Sorry, our help articles don't cover gift wrapping. [no-answer]"),
    )
    reply = await make(fake, kb).respond(turn("Do you gift wrap?"))
    assert not reply.answered and reply.confidence == 0.0
    assert reply.text == "Sorry, our help articles don't cover gift wrapping."


async def test_dont_know_phrasing_marks_unanswered_without_tag(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(Completion(content="I'm sorry, I don't know whether we ship to Mars."))
    reply = await make(fake, kb).respond(turn("Do you ship to Mars?"))
    assert not reply.answered and reply.confidence == 0.0
    assert reply.fallback_reason == ""


def test_cited_articles_matches_titles_and_whole_word_ids() -> None:
    shipping = ArticleRef("shipping", SHIPPING_TITLE, 3.0)
    fees = ArticleRef("cancellation-fees", "Cancelling orders and subscriptions", 2.0)
    assert cited_articles(f"... Source: {SHIPPING_TITLE.lower()}", [shipping, fees]) == (shipping,)
    assert cited_articles("see cancellation-fees", [shipping, fees]) == (fees,)
    assert cited_articles("no fees apply", [shipping, fees]) == ()


# --- tools: handoff and details -----------------------------------------------------------------


async def test_handoff_to_a_valid_queue(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(
        tool_call(
            "handoff_to_human",
            {"reason": "billing dispute", "queue": "billing", "summary": "Charged twice", "urgency": "high"},
        ),
        Completion(content="A member of our billing team will take over."),
    )
    reply = await make(fake, kb).respond(turn("You charged me twice, I want a person"))
    assert reply.handoff is not None
    assert reply.handoff.queue == "billing"
    assert reply.handoff.urgency == "high"
    assert reply.handoff.reason == "billing dispute" and reply.handoff.summary == "Charged twice"
    assert reply.text == "A member of our billing team will take over."
    assert not reply.answered and reply.confidence == 0.0
    # The schema only offers the configured queues.
    handoff_tool = next(t for t in fake.bodies[0]["tools"] if t["function"]["name"] == "handoff_to_human")
    assert handoff_tool["function"]["parameters"]["properties"]["queue"]["enum"] == list(QUEUES)


async def test_handoff_with_content_in_the_same_message_needs_no_extra_round(
    fake: FakeOpenAI, kb: KnowledgeBase
) -> None:
    fake.add(
        Completion(
            content="I'll get a colleague for you.",
            tool_calls=[ScriptedToolCall("handoff_to_human", {"reason": "asked for a person"})],
        )
    )
    reply = await make(fake, kb).respond(turn("human please"))
    assert reply.handoff is not None and reply.handoff.queue is None
    assert reply.text == "I'll get a colleague for you."
    assert len(fake.requests) == 1


@pytest.mark.parametrize("second_try", [None, "technical", "vip"])
async def test_handoff_to_unknown_queue_never_routes_there(
    fake: FakeOpenAI, kb: KnowledgeBase, second_try: str | None
) -> None:
    fake.add(tool_call("handoff_to_human", {"reason": "wants VIP", "queue": "vip", "summary": "VIP"}))
    if second_try is not None:
        fake.add(tool_call("handoff_to_human", {"reason": "wants VIP", "queue": second_try, "summary": "VIP"}))
    fake.add(Completion(content="Someone from our team will take over."))
    reply = await make(fake, kb).respond(turn("Put me through to VIP support"))

    assert reply.handoff is not None
    assert reply.handoff.queue in (None, *QUEUES)
    assert reply.handoff.queue == ("technical" if second_try == "technical" else None)
    (result,) = tool_messages(fake.bodies[1])
    assert "'vip' does not exist" in result["content"]
    for queue in QUEUES:
        assert queue in result["content"]


async def test_record_customer_detail(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(
        Completion(
            tool_calls=[
                ScriptedToolCall("record_customer_detail", {"name": "email", "value": "ann@example.com"}),
                ScriptedToolCall("record_customer_detail", {"name": "Order Number", "value": " 10042 "}),
            ]
        ),
        Completion(content="Thanks, I've noted that."),
    )
    reply = await make(fake, kb).respond(turn("I'm ann@example.com, order 10042"))
    assert reply.details == {"email": "ann@example.com", "order_number": "10042"}
    assert [c.name for c in reply.tool_calls] == ["record_customer_detail"] * 2
    assert len(tool_messages(fake.bodies[1])) == 2  # one tool result per call id


# --- what the model is sent ---------------------------------------------------------------------


async def test_history_is_mapped_to_chat_roles(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(Completion(content="Hello again!"))
    history = [
        HistoryItem("customer", "Hi"),
        HistoryItem("ai", "Hello! How can I help?"),
        HistoryItem("system", "Conversation handed to billing"),
        HistoryItem("agent", "This is Sam from billing."),
    ]
    await make(fake, kb).respond(turn("Thanks Sam", history=history, details={"email": "ann@example.com"}))
    messages = fake.bodies[0]["messages"]
    assert "ann@example.com" in messages[0]["content"]  # known details go in the system prompt
    assert messages[1:] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "system", "content": "Conversation handed to billing"},
        {"role": "assistant", "content": AGENT_PREFIX + "This is Sam from billing."},
        {"role": "user", "content": "Thanks Sam"},
    ]


async def test_history_is_bounded(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(Completion(content="ok"))
    history = [HistoryItem("customer", f"message {i} " + "x" * 3000) for i in range(50)]
    await make(fake, kb).respond(turn("latest", history=history))
    messages = fake.bodies[0]["messages"]
    assert 1 + 1 < len(messages) <= 1 + 20 + 1
    assert messages[-2]["content"].startswith("message 49")  # the newest history survives
    assert len(json.dumps(fake.bodies[0])) < 60_000


# --- failures -----------------------------------------------------------------------------------


async def test_timeout_falls_back_to_offline(
    fake: FakeOpenAI, kb: KnowledgeBase, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add(Delay(3.0), Delay(3.0))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="agent_bridge.ai.model"):
        reply = await make(fake, kb, timeout_s=0.4).respond(turn("How much does shipping cost?"))
    assert time.monotonic() - started < 2.0
    assert reply.fallback_reason == "timeout"
    assert reply.responder == "offline"
    assert reply.answered and [a.article_id for a in reply.articles] == ["shipping"]
    (record,) = [r for r in caplog.records if r.getMessage() == "ai_model_failed"]
    assert record.reason == "timeout" and record.conversation_id == "c-1"  # type: ignore[attr-defined]
    assert "shipping" not in json.dumps(record.__dict__, default=str).lower()  # no message bodies


@pytest.mark.parametrize(
    ("status", "reason"), [(429, "rate_limited"), (503, "server_error: 503"), (500, "server_error: 500")]
)
async def test_http_errors_fall_back_after_one_sdk_retry(
    fake: FakeOpenAI, kb: KnowledgeBase, status: int, reason: str
) -> None:
    error = HttpError(status, "Rate limit reached" if status == 429 else "overloaded", retry_after=0.01)
    fake.add(error, error)
    reply = await make(fake, kb).respond(turn("How much does shipping cost?"))
    assert reply.fallback_reason == reason
    assert reply.responder == "offline" and reply.answered
    assert len(fake.requests) == 2  # max_retries=1: one retry, then the fallback


async def test_connection_error_falls_back(kb: KnowledgeBase) -> None:
    closed = await FakeOpenAI().start()
    url = closed.url
    await closed.close()
    responder = tracked(build_model_responder(None, url + "/v1", MODEL, kb, OfflineResponder(kb), max_retries=0))
    reply = await responder.respond(turn("How much does shipping cost?"))
    assert reply.fallback_reason == "connection_error" and reply.responder == "offline"


async def test_without_fallback_failures_hand_off(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(HttpError(503), HttpError(503))
    reply = await make(fake, kb, fallback=False).respond(turn("How much does shipping cost?"))
    assert reply.text == UNAVAILABLE_TEXT
    assert not reply.answered and reply.confidence == 0.0
    assert reply.handoff is not None and reply.handoff.reason == "ai_unavailable"
    assert "server_error: 503" in reply.handoff.summary
    assert reply.handoff.queue is None
    assert reply.fallback_reason == "server_error: 503"


async def test_bad_tool_json_gets_one_error_result_then_recovers(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(
        tool_call("search_knowledge_base", '{"query": "shipping', id="call_bad"),
        tool_call("search_knowledge_base", {"query": "shipping cost"}),
        Completion(content=f"Standard shipping is $5.95. Source: {SHIPPING_TITLE}"),
    )
    reply = await make(fake, kb).respond(turn("shipping cost?"))
    assert reply.fallback_reason == "" and reply.answered
    (error_result,) = tool_messages(fake.bodies[1])
    assert error_result["tool_call_id"] == "call_bad"
    assert error_result["content"].startswith("Error:")
    # The broken call is echoed with "{}" so strict servers accept the history.
    assert fake.bodies[1]["messages"][-2]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert reply.tool_calls[0].result.startswith("error:")


async def test_repeated_bad_tool_json_falls_back(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(tool_call("search_knowledge_base", "not json"), tool_call("search_knowledge_base", "{oops"))
    reply = await make(fake, kb).respond(turn("How much does shipping cost?"))
    assert reply.fallback_reason == "bad_response" and reply.responder == "offline"
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    "raw",
    [
        {"id": "x", "object": "chat.completion", "created": 0, "model": MODEL, "choices": []},
        {"id": "x", "object": "chat.completion", "created": 0, "model": MODEL},
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ""}}],
        },
    ],
    ids=["no-choices", "no-choices-key", "empty-content"],
)
async def test_malformed_completion_falls_back(fake: FakeOpenAI, kb: KnowledgeBase, raw: Any) -> None:
    fake.add(Completion(raw=raw))
    reply = await make(fake, kb).respond(turn("How much does shipping cost?"))
    assert reply.fallback_reason == "bad_response" and reply.responder == "offline"


async def test_max_tool_rounds_exceeded_falls_back(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    # A server that ignores tool_choice="none" keeps calling tools forever.
    fake.add(*[tool_call("search_knowledge_base", {"query": f"shipping {i}"}) for i in range(3)])
    fake.add(tool_call("record_customer_detail", {"name": "email", "value": "ann@example.com"}))
    reply = await make(fake, kb, max_tool_rounds=2).respond(turn("How much does shipping cost?"))
    assert reply.fallback_reason == "max_tool_rounds" and reply.responder == "offline"
    assert len(fake.requests) == 3
    assert [b["tool_choice"] for b in fake.bodies] == ["auto", "auto", "none"]
    assert len(fake.script) == 1  # nothing requested after giving up


async def test_details_survive_a_later_failure(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    fake.add(
        tool_call("record_customer_detail", {"name": "email", "value": "ann@example.com"}),
        HttpError(500),
        HttpError(500),
    )
    reply = await make(fake, kb).respond(turn("I'm ann@example.com, where is my parcel?"))
    assert reply.fallback_reason == "server_error: 500"
    assert reply.details["email"] == "ann@example.com"


async def test_wrong_api_key_falls_back(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    responder = tracked(build_model_responder("sk-wrong", fake.url + "/v1", MODEL, kb, OfflineResponder(kb)))
    reply = await responder.respond(turn("How much does shipping cost?"))
    assert reply.fallback_reason == "api_error: 401"
    assert fake.script == [] and len(fake.requests) == 1  # 401 is not retried


async def test_fake_serves_models_list(fake: FakeOpenAI, kb: KnowledgeBase) -> None:
    models = await make(fake, kb).client.models.list()
    assert [m.id for m in models.data] == ["gpt-4o-mini"]
