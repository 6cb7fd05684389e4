"""The web chat channel over a real socket: sessions, replay, dedupe, token isolation, bad frames."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from bson import ObjectId

from agent_bridge.ai.knowledge_base import KnowledgeBase
from agent_bridge.ai.offline import OfflineResponder
from agent_bridge.ai.responder import Reply, Turn
from channels.webchat.tokens import TokenSigner
from tests.conftest import ROOT, GatewayFactory, RunningGateway, receive_until
from tests.helpers import eventually


def is_ai_message(frame: dict) -> bool:
    return frame["type"] == "message" and frame["author"] == "ai"


def is_error(frame: dict) -> bool:
    return frame["type"] == "error"


async def until_handed_off(ws: aiohttp.ClientWebSocketResponse) -> list[dict]:
    """Frames up to both the handoff notice and the status change (either may come first)."""
    frames = await receive_until(ws, lambda f: is_ai_message(f) or f["type"] == "status")
    if frames[-1]["type"] == "status":
        return frames + await receive_until(ws, is_ai_message)
    return frames + await receive_until(ws, lambda f: f["type"] == "status")


async def ask(ws: aiohttp.ClientWebSocketResponse, text: str, client_msg_id: str) -> list[dict]:
    await ws.send_json({"type": "message", "text": text, "client_msg_id": client_msg_id})
    return await receive_until(ws, is_ai_message)


async def test_a_shipping_question_gets_the_knowledge_base_answer_with_its_source(
    gateway: RunningGateway,
) -> None:
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    assert (await ws.receive_json()) == {"type": "status", "status": "ai"}

    frames = await ask(ws, "How much does shipping cost?", "c-1")

    own = [f for f in frames if f["type"] == "message" and f["author"] == "customer"]
    assert own[0]["client_msg_id"] == "c-1" and own[0]["seq"] == 1
    assert {"type": "typing", "author": "ai", "active": True} in frames
    answer = frames[-1]
    assert answer["seq"] == 2
    assert "Source: Shipping" in answer["text"]
    assert answer["created_at"].endswith("Z")
    stored = await gateway.runtime.store.messages.find_one({"seq": 2, "author": "ai"})
    assert stored["meta"]["articles"][0]["article_id"] == "shipping"
    assert stored["meta"]["answered"] is True
    await ws.close()


async def test_a_question_the_kb_cannot_answer_goes_to_people_not_a_guess(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    await ws.send_json({"type": "message", "text": "What is the capital of Mongolia?", "client_msg_id": "c-1"})
    frames = await until_handed_off(ws)
    assert {"type": "status", "status": "waiting_for_agent"} in frames
    notice = next(f for f in frames if is_ai_message(f))
    assert "customer care team" in notice["text"]
    assert "Mongolia" not in notice["text"] and "Source:" not in notice["text"]
    conversation = await gateway.runtime.store.conversations.find_one({})
    assert conversation["status"] == "waiting_for_agent" and conversation["queue"] == "general"
    assert conversation["handoff"]["trigger"] == "low_confidence"
    stored = await gateway.runtime.store.messages.find_one({"author": "ai"})
    assert stored["meta"]["answered"] is False and stored["meta"]["articles"] == []
    assert stored["meta"]["decision"]["trigger"] == "low_confidence"
    await ws.close()


async def test_asking_for_a_person_hands_off_tells_what_happens_next_and_the_ai_goes_quiet(
    gateway: RunningGateway,
) -> None:
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    await ws.send_json(
        {
            "type": "message",
            "text": "My order NW-1234567 is late. I want to talk to a real person",
            "client_msg_id": "p",
        }
    )
    frames = await until_handed_off(ws)
    assert {"type": "status", "status": "waiting_for_agent"} in frames
    notice = next(f for f in frames if is_ai_message(f))["text"]
    assert "team" in notice and ("minutes" in notice or "back" in notice)
    assert "repeat" in notice  # the customer is told they need not say it all again

    conversation = await gateway.runtime.store.conversations.find_one({})
    assert conversation["handoff"]["trigger"] == "human_request"
    assert conversation["details"]["order_number"].upper().replace(" ", "-") == "NW-1234567"
    assert conversation["handoff_at"] is not None

    await ws.send_json({"type": "message", "text": "How much does shipping cost?", "client_msg_id": "q"})
    await receive_until(ws, lambda f: f["type"] == "message" and f.get("client_msg_id") == "q")
    await gateway.runtime.ingest.drain()
    assert await gateway.runtime.store.messages.count_documents({"author": "ai"}) == 1
    await ws.close()


async def test_reconnecting_with_after_seq_replays_exactly_what_was_missed(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    first = await gateway.connect(session["token"])
    await first.receive_json()
    await ask(first, "How much does shipping cost?", "c-1")
    await first.close()

    # While the customer is away, another tab of theirs asks something.
    other_tab = await gateway.connect(session["token"], after_seq=2)
    await other_tab.receive_json()
    await ask(other_tab, "How do I reset my password?", "c-2")
    await other_tab.close()

    back = await gateway.connect(session["token"], after_seq=2)
    frames = await receive_until(back, lambda f: f.get("seq") == 4)
    frames = [f for f in frames if f["type"] == "message"]
    # Messages stored in the last minutes at or below after_seq come again (a late reply may be among
    # them: docs/webchat.md); in seq order, and once each.
    assert [(f["seq"], f["author"]) for f in frames] == [(1, "customer"), (2, "ai"), (3, "customer"), (4, "ai")]

    full = await gateway.connect(session["token"], after_seq=0)
    frames = [await full.receive_json() for _ in range(5)]
    assert [f["seq"] for f in frames[1:]] == [1, 2, 3, 4]
    await back.close()
    await full.close()


async def test_a_resent_client_msg_id_is_stored_once_and_acknowledged_again(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    await ask(ws, "How much does shipping cost?", "same-id")

    await ws.send_json({"type": "message", "text": "How much does shipping cost?", "client_msg_id": "same-id"})
    ack = await receive_until(ws, lambda f: f["type"] == "message")
    assert ack[-1]["author"] == "customer" and ack[-1]["seq"] == 1 and ack[-1]["client_msg_id"] == "same-id"

    messages = gateway.runtime.store.messages
    conversation_id = ObjectId(session["conversation_id"])
    assert await messages.count_documents({"conversation_id": conversation_id, "author": "customer"}) == 1
    assert await messages.count_documents({"conversation_id": conversation_id, "author": "ai"}) == 1
    await ws.close()


async def test_a_token_opens_only_its_own_conversation(gateway: RunningGateway) -> None:
    alice = await gateway.new_session()
    bob = await gateway.new_session()
    ws = await gateway.connect(alice["token"])
    await ws.receive_json()
    await ask(ws, "How do I reset my password?", "a-1")
    await ws.close()

    bob_ws = await gateway.connect(bob["token"])
    assert (await bob_ws.receive_json())["type"] == "status"
    await bob_ws.send_json({"type": "message", "text": "hello", "client_msg_id": "b-1"})
    frames = await receive_until(bob_ws, is_ai_message)
    assert all("password" not in f.get("text", "").lower() for f in frames)
    await bob_ws.close()

    # Alice's token with Bob's conversation id swapped in: the signature no longer matches.
    _, alice_mac = alice["token"].split(".")
    forged_payload = TokenSigner(b"x" * 32, 60).issue(bob["conversation_id"], "v").split(".")[0]
    for token in (
        f"{forged_payload}.{alice_mac}",
        TokenSigner(b"y" * 40, 60).issue(bob["conversation_id"], "v"),
        "junk",
    ):
        forged = await gateway.connect(token)
        closing = await forged.receive()
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4401, (token, closing)


async def test_an_expired_token_is_refused(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    signer = gateway.runtime.channels["webchat"].signer
    old = signer.issue(session["conversation_id"], "v", now=0)
    ws = await gateway.connect(old)
    closing = await ws.receive()
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4401


async def test_bad_frames_get_error_frames_and_the_connection_stays_up(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    bad = [
        ("not json", "bad_frame"),
        (json.dumps([1, 2]), "bad_frame"),
        (json.dumps({"type": "hello"}), "bad_frame"),
        (json.dumps({"type": "message", "text": 5, "client_msg_id": "x"}), "bad_frame"),
        (json.dumps({"type": "message", "text": "hi"}), "bad_frame"),
        (json.dumps({"type": "message", "text": "   ", "client_msg_id": "x"}), "empty_text"),
        (json.dumps({"type": "message", "text": "a" * 4001, "client_msg_id": "x"}), "text_too_long"),
        (json.dumps({"type": "message", "text": "a" * 70_000, "client_msg_id": "x"}), "frame_too_large"),
    ]
    for raw, code in bad:
        await ws.send_str(raw)
        frame = await ws.receive_json()
        assert frame["type"] == "error" and frame["code"] == code, (raw[:40], frame)
    await ws.send_bytes(b"\x00\x01")
    assert (await ws.receive_json())["code"] == "bad_frame"

    frames = await ask(ws, "How much does shipping cost?", "ok-1")
    assert "Shipping" in frames[-1]["text"]
    assert await gateway.runtime.store.messages.count_documents({}) == 2
    await ws.close()


async def test_a_bad_after_seq_is_refused_with_a_clear_close(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    ws = await gateway.http.ws_connect(f"{gateway.base_url}/webchat/ws?token={session['token']}&after_seq=abc")
    closing = await ws.receive()
    assert closing.data == 4400


async def test_sessions_answer_cors_for_embedding_sites(gateway: RunningGateway) -> None:
    origin = {"Origin": "https://shop.example.com"}
    async with gateway.http.options(f"{gateway.base_url}/webchat/sessions", headers=origin) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    async with gateway.http.post(f"{gateway.base_url}/webchat/sessions", data="[1]", headers=origin) as response:
        assert response.status == 400


async def test_an_origin_outside_the_allow_list_is_refused(gateway_factory) -> None:
    gw = await gateway_factory(webchat_allowed_origins="https://shop.example.com")
    evil = {"Origin": "https://evil.example.net"}
    async with gw.http.post(f"{gw.base_url}/webchat/sessions", headers=evil) as response:
        assert response.status == 403
    async with gw.http.post(
        f"{gw.base_url}/webchat/sessions", headers={"Origin": "https://shop.example.com"}
    ) as response:
        assert response.status == 201
        token = (await response.json())["token"]
    ws = await gw.http.ws_connect(f"{gw.base_url}/webchat/ws?token={token}", headers=evil)
    assert (await ws.receive()).data == 4403


async def test_the_widget_and_demo_page_are_served(gateway: RunningGateway) -> None:
    async with gateway.http.get(f"{gateway.base_url}/webchat/widget.js") as response:
        assert response.status == 200
        assert "javascript" in response.headers["Content-Type"]
        assert "webchat/ws" in await response.text()
    async with gateway.http.get(f"{gateway.base_url}/") as response:
        assert response.status == 200
        assert "/webchat/widget.js" in await response.text()


async def test_health_and_readiness(gateway: RunningGateway) -> None:
    async with gateway.http.get(f"{gateway.base_url}/healthz") as response:
        assert response.status == 200
    async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
        assert response.status == 200
        assert (await response.json())["checks"] == {"database": "ok", "outbox_worker": "ok"}
    await gateway.runtime.outbox.stop()
    async with gateway.http.get(f"{gateway.base_url}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["checks"]["outbox_worker"] == "not running"


async def test_a_reply_stored_after_a_later_message_still_reaches_the_client(
    gateway_factory: GatewayFactory,
) -> None:
    """The reply to a first message takes its number (2) when that message is numbered; a second
    message sent meanwhile is echoed as 3 first. Reply 2 must still reach the socket, and a client
    that reconnects with after_seq=4 before it is stored gets it by replay."""
    release = asyncio.Event()

    class SlowFirstAnswer(OfflineResponder):
        async def respond(self, turn: Turn) -> Reply:
            if "shipping" in turn.text:
                await release.wait()
            return await super().respond(turn)

    gateway = await gateway_factory(responder=SlowFirstAnswer(KnowledgeBase.load(ROOT / "config" / "kb")))
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    await ws.send_json({"type": "message", "text": "How much does shipping cost?", "client_msg_id": "c-1"})
    await ws.send_json({"type": "message", "text": "How do I reset my password?", "client_msg_id": "c-2"})
    frames = await receive_until(ws, lambda f: is_ai_message(f) and f["seq"] == 4)
    assert [f["seq"] for f in frames if f.get("type") == "message"] == [1, 3, 4]
    release.set()
    late = await receive_until(ws, is_ai_message)
    assert late[-1]["seq"] == 2 and "shipping" in late[-1]["text"].lower()
    await ws.close()

    # Again, with the client away while the late reply is stored.
    release.clear()
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    await ws.send_json({"type": "message", "text": "How much does shipping cost?", "client_msg_id": "c-1"})
    await ws.send_json({"type": "message", "text": "How do I reset my password?", "client_msg_id": "c-2"})
    await receive_until(ws, lambda f: is_ai_message(f) and f["seq"] == 4)
    await ws.close()
    release.set()
    store = gateway.runtime.store
    assert store is not None
    conversation_id = ObjectId(session["conversation_id"])
    await eventually(lambda: store.messages.find_one({"conversation_id": conversation_id, "seq": 2}))
    back = await gateway.connect(session["token"], after_seq=4)
    frames = await receive_until(back, lambda f: is_ai_message(f) and f["seq"] == 2)
    assert "shipping" in frames[-1]["text"].lower()
    await back.close()
