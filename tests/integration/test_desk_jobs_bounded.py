"""Desk jobs stay bounded: one receipt per agent reply, and keys that never collide across conversations.

Uses the Slack desk fixtures (tests/integration/slack_desk.py): a real gateway, the real slack_sdk, a local fake Slack.
"""

from __future__ import annotations

import asyncio

from bson import ObjectId

from agent_bridge.slack.card import ACTION_RESOLVE
from tests.conftest import receive_until
from tests.helpers import eventually
from tests.integration.slack_desk import Desk, webchat_handoff


async def test_one_agent_reply_costs_one_reaction_and_one_receipt(desk: Desk) -> None:
    """A receipt job's own delivery must not ask for a receipt of the receipt (an endless chain)."""
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    store = desk.gateway.runtime.store
    assert store is not None

    for text in ("First answer from a person.", "Second answer from a person."):
        reply = desk.agent_says(channel, thread_ts, "U0DANA", text)
        assert await desk.event(reply) == 200
        await receive_until(ws, lambda f, text=text: f.get("author") == "agent" and f.get("text") == text)
        await eventually(lambda reply=reply: "white_check_mark" in desk.slack.message(channel, reply["ts"]).reactions)

    # Give a runaway chain time to show itself: the sweeper polls every 50 ms in tests.
    await asyncio.sleep(1.5)
    assert len(desk.slack.calls("reactions.add")) == 2
    receipts = await store.outbox.find({"message.extra.kind": "receipt"}).to_list()
    assert len(receipts) == 2
    # Each receipt is about a reply to the customer, never about another desk job.
    replies = await store.outbox.find({"channel": "webchat", "message.author": "agent"}).to_list()
    assert {r["message"]["extra"]["desk_ref"]["ts"] for r in receipts} == {
        r["message"]["extra"]["desk_ref"]["ts"] for r in replies
    }
    assert not [c for c in desk.slack.calls("chat.postMessage") if "did not reach" in str(c.params)]
    await ws.close()


async def test_two_conversations_resolved_at_the_same_seq_both_get_their_cards_redrawn(desk: Desk) -> None:
    """Desk job keys name their conversation: `resolve` at seq N in two conversations are two jobs."""
    first, ws1, _ = await webchat_handoff(desk)
    second, ws2, _ = await webchat_handoff(desk)
    store = desk.gateway.runtime.store
    assert store is not None
    for cid in (first, second):
        await desk.card(cid)
    seqs = {(await desk.conversation(cid))["seq"] for cid in (first, second)}
    assert len(seqs) == 1, "both conversations must stand at the same seq for this test"

    for cid in (first, second):
        assert await desk.click(ACTION_RESOLVE, cid, "U0SAM") == 200
    for cid in (first, second):
        channel, thread_ts = await desk.card(cid)
        await eventually(
            lambda channel=channel, ts=thread_ts: "Resolved" in str(desk.slack.message(channel, ts).blocks)
        )
        assert (await desk.conversation(cid))["status"] == "resolved"
    cards = await store.outbox.find({"message.extra.kind": "card"}).to_list()
    assert {c["message"]["conversation_id"] for c in cards} == {first, second}

    async def all_sent() -> bool:  # marked sent just after Slack answered the redraw
        return await store.outbox.count_documents({"message.extra.kind": "card", "state": {"$ne": "sent"}}) == 0

    await eventually(all_sent)
    keys = [j["idempotency_key"] for j in await store.outbox.find({"channel": "slack"}).to_list()]
    assert all(str(ObjectId(first)) in k or str(ObjectId(second)) in k for k in keys), keys
    await ws1.close()
    await ws2.close()
