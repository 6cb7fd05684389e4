"""An agent's edit or deletion of a sent reply, through the outbox to a real web chat socket, and in replay."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import RunningGateway, receive_until
from tests.webchat_revisions import revise, send_agent_message


async def replay(gw: RunningGateway, token: str, count: int) -> list[dict[str, Any]]:
    """The message frames a fresh connection with after_seq=0 receives (status frames left out)."""
    ws = await gw.connect(token, after_seq=0)
    frames: list[dict[str, Any]] = []
    while len(frames) < count:
        frame = await ws.receive_json(timeout=10)
        if frame["type"] != "status":
            frames.append(frame)
    await ws.close()
    return frames


async def test_an_agents_edit_reaches_every_open_tab_and_a_replay_shows_the_new_text(
    gateway: RunningGateway,
) -> None:
    session = await gateway.new_session()
    tabs = [await gateway.connect(session["token"]) for _ in range(2)]
    for ws in tabs:
        await receive_until(ws, lambda f: f["type"] == "status")

    sent = await send_agent_message(gateway, session["conversation_id"], "Your order ships on Monday.")
    for ws in tabs:
        original = (await receive_until(ws, lambda f: f["type"] == "message"))[-1]
        assert (original["seq"], original["text"]) == (sent.seq, "Your order ships on Monday.")
        assert "edited" not in original

    job = await revise(gateway, sent, "edit", "Your order ships on Tuesday.")

    for ws in tabs:
        frame = (await receive_until(ws, lambda f: f["type"] == "message_edited"))[-1]
        assert frame["seq"] == sent.seq and frame["text"] == "Your order ships on Tuesday."
        assert frame["edited_at"].endswith("Z")
        await ws.close()
    # The edit keeps pointing at the message it changed, for a later edit or delete from Slack.
    assert job["provider_message_id"] == sent.provider_message_id

    [replayed] = await replay(gateway, session["token"], 1)
    assert replayed["seq"] == sent.seq and replayed["text"] == "Your order ships on Tuesday."
    assert replayed["edited"] is True and replayed["edited_at"].endswith("Z")
    assert replayed["attachments"][0]["name"] == "label-10423.pdf"


async def test_an_agents_deletion_removes_the_message_live_and_from_every_replay(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    await receive_until(ws, lambda f: f["type"] == "status")
    secret = "Oops, wrong customer: order NW-9999999"
    sent = await send_agent_message(gateway, session["conversation_id"], secret)
    await receive_until(ws, lambda f: f["type"] == "message")

    await revise(gateway, sent, "delete")

    frame = (await receive_until(ws, lambda f: f["type"] == "message_deleted"))[-1]
    assert frame == {"type": "message_deleted", "seq": sent.seq, "deleted_at": frame["deleted_at"]}
    assert frame["deleted_at"].endswith("Z")
    await ws.close()

    [replayed] = await replay(gateway, session["token"], 1)
    assert replayed["seq"] == sent.seq and replayed["deleted"] is True
    assert replayed["text"] == "" and "attachments" not in replayed
    assert "NW-9999999" not in json.dumps(replayed) and "label-10423" not in json.dumps(replayed)


async def test_a_customer_offline_during_an_edit_and_a_delete_gets_the_final_state_on_reconnect(
    gateway: RunningGateway,
) -> None:
    session = await gateway.new_session()
    kept = await send_agent_message(gateway, session["conversation_id"], "First draft")
    dropped = await send_agent_message(gateway, session["conversation_id"], "Never mind this")

    # No socket is open: delivery still succeeds, the stored messages carry the change.
    await revise(gateway, kept, "edit", "Second draft")
    await revise(gateway, kept, "edit", "Final answer")
    await revise(gateway, dropped, "delete")

    frames = await replay(gateway, session["token"], 2)
    assert [(f["seq"], f["text"], f.get("edited"), f.get("deleted")) for f in frames] == [
        (kept.seq, "Final answer", True, None),
        (dropped.seq, "", None, True),
    ]
    # Edits are not messages of their own: nothing else is replayed.
    assert await gateway.runtime.store.messages.count_documents({"conversation_id": kept.conversation_id}) == 2
