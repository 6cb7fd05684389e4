"""The Slack bridge end to end: a real gateway, the real slack_sdk and slack-bolt, a local fake Slack.

Events reach the gateway signed the way Slack signs them (slack_sdk's SignatureVerifier); every Web API
call the gateway makes lands in the fake, which checks it against Slack's documented limits.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from bson import ObjectId

from agent_bridge.slack.card import ACTION_CLAIM, ACTION_RESOLVE, ACTION_RETURN
from gateway.models import Attachment, InboundMessage
from gateway.store import utcnow
from tests.conftest import GatewayFactory, receive_until
from tests.fakes.http_channel import HttpTestChannel
from tests.fakes.provider import FakeProvider, Outcome
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_api import Outcome as SlackOutcome
from tests.fakes.slack_events import (
    event_callback,
    message_changed,
    message_deleted,
    post_command,
    post_event,
    slash_command,
    thread_message,
    url_verification,
)
from tests.helpers import eventually, inbound
from tests.integration.slack_desk import PNG, SECRET, Desk, start_desk, texts, webchat_handoff


async def test_webchat_customer_reaches_an_agent_in_the_queue_channel_and_back(desk: Desk) -> None:
    cid, ws, _token = await webchat_handoff(desk, "I was charged twice for my order, I want a person")
    channel, thread_ts = await desk.card(cid)

    # The card: the billing queue's channel, Block Kit that passed the fake's checks, the three buttons.
    assert channel == "C0BILLING"
    card = desk.slack.message(channel, thread_ts)
    assert card is not None and card.blocks
    buttons = [e["action_id"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [ACTION_CLAIM, ACTION_RESOLVE, ACTION_RETURN]
    card_text = str(card.blocks)
    assert "billing team" in card_text and "Reply due" in card_text and "Trigger" in card_text
    assert card.unfurl_links is False
    # The transcript in the thread: the customer's words and the AI's handoff notice.
    thread = desk.slack.thread(channel, thread_ts)
    assert "charged twice" in texts(thread[1:]) and "billing team" in texts(thread[1:])

    # An agent replies in the thread: it reaches the customer's web chat, with the agent's name.
    reply = desk.agent_says(channel, thread_ts, "U0DANA", "Hi, I'm looking at the double charge now.")
    assert await desk.event(reply) == 200
    frames = await receive_until(ws, lambda f: f.get("type") == "message" and f.get("author") == "agent")
    assert frames[-1]["text"] == "Hi, I'm looking at the double charge now."
    assert frames[-1]["agent_name"] == "Dana"

    # Delivery status: a reaction on the agent's message once the customer's channel accepted it.
    await eventually(lambda: "white_check_mark" in desk.slack.message(channel, reply["ts"]).reactions)
    conversation = await desk.conversation(cid)
    assert conversation["status"] == "with_agent"
    assert conversation["assignee"]["id"] == "U0DANA"
    assert conversation["first_human_reply_at"] is not None

    # The customer writes again: mirrored live into the thread, escaped.
    await ws.send_json({"type": "message", "text": "Thanks! It was order NW-1234567", "client_msg_id": "m2"})
    await eventually(lambda: "NW-1234567" in texts(desk.slack.thread(channel, thread_ts)))
    await ws.close()


async def test_internal_notes_never_reach_the_customer(desk: Desk) -> None:
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    note = desk.agent_says(channel, thread_ts, "U0DANA", "Note: this customer asked for a refund last week too")
    assert await desk.event(note) == 200
    await eventually(lambda: "lock" in desk.slack.message(channel, note["ts"]).reactions)
    reply = desk.agent_says(channel, thread_ts, "U0DANA", "Hello! How can I help?")
    assert await desk.event(reply) == 200
    frames = await receive_until(ws, lambda f: f.get("author") == "agent")
    assert all("refund last week" not in str(f) for f in frames)
    store = desk.gateway.runtime.store
    assert store is not None
    assert await store.notes.count_documents({"conversation_id": ObjectId(cid)}) == 1
    stored = await store.messages.find({"conversation_id": ObjectId(cid)}).to_list()
    assert all("refund last week" not in m["text"] for m in stored)
    await ws.close()


async def test_slack_retries_are_handled_once_and_bot_messages_ignored(desk: Desk) -> None:
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    payload = event_callback(desk.agent_says(channel, thread_ts, "U0DANA", "Only once, please"))
    first = await post_event(desk.gateway.http, desk.events_url, SECRET, payload)
    retry = await post_event(desk.gateway.http, desk.events_url, SECRET, payload, retry_num=1)
    assert (first.status, retry.status) == (200, 200)
    # The app's own posts and other bots' messages come back as events too; none is relayed.
    bot = thread_message(channel, thread_ts, "U0BOT", "from the bot")
    bot["bot_id"] = "B0OTHER"
    assert await desk.event(bot) == 200
    await receive_until(ws, lambda f: f.get("author") == "agent")
    store = desk.gateway.runtime.store
    assert store is not None
    agent_messages = await store.messages.find({"conversation_id": ObjectId(cid), "author": "agent"}).to_list()
    assert [m["text"] for m in agent_messages] == ["Only once, please"]
    await ws.close()


async def test_a_retry_of_an_event_whose_first_delivery_failed_is_handled(desk: Desk) -> None:
    """The agent attaches a file; Slack's file host fails the first download (503), so the gateway
    answers 500 and keeps nothing; Slack's retry of the same event is then relayed, file included."""
    desk.slack.script("download", SlackOutcome.server_error(503))
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    file = desk.slack.add_user_file("label.png", "image/png", PNG, user="U0DANA")
    payload = event_callback(desk.agent_says(channel, thread_ts, "U0DANA", "Here is the label", files=[file]))
    first = await post_event(desk.gateway.http, desk.events_url, SECRET, payload)
    assert first.status == 500
    store = desk.gateway.runtime.store
    assert store is not None
    assert await store.messages.count_documents({"conversation_id": ObjectId(cid), "author": "agent"}) == 0
    retry = await post_event(desk.gateway.http, desk.events_url, SECRET, payload, retry_num=1)
    assert retry.status == 200
    frames = await receive_until(ws, lambda f: f.get("author") == "agent")
    assert frames[-1]["text"] == "Here is the label"
    [attachment] = frames[-1]["attachments"]
    assert attachment["name"] == "label.png" and attachment["content_type"] == "image/png"
    assert [c.status for c in desk.slack.calls("download")] == [503, 200]
    # The link is absolute on PUBLIC_BASE_URL; the test server listens elsewhere, so keep the path.
    served = desk.gateway.base_url + "/" + attachment["url"].split("/", 3)[3]
    async with desk.gateway.http.get(served) as response:
        assert response.status == 200 and await response.read() == PNG
    await ws.close()


async def test_forged_stale_and_unsigned_requests_are_refused(desk: Desk) -> None:
    http, url = desk.gateway.http, desk.events_url
    payload = event_callback(thread_message("C0SUPPORT", "1.0", "U0DANA", "forged"))
    forged = await post_event(http, url, SECRET, payload, signature="v0=" + "0" * 64)
    stale = await post_event(http, url, SECRET, payload, timestamp=int(utcnow().timestamp()) - 600)
    wrong_secret = await post_event(http, url, "not-the-secret", payload)
    async with http.post(url, json=payload) as unsigned:
        unsigned_status = unsigned.status
    assert [forged.status, stale.status, wrong_secret.status, unsigned_status] == [401, 401, 401, 401]
    challenge = await post_event(http, url, SECRET, url_verification("abc123"))
    assert challenge.status == 200 and (await challenge.json())["challenge"] == "abc123"


async def test_customer_text_cannot_mention_or_inject_links_in_slack(desk: Desk) -> None:
    hostile = "Talk to a human now @channel <!here> <@U0DANA> *urgent* <https://evil.example|click me>"
    cid, ws, _ = await webchat_handoff(desk, hostile)
    channel, thread_ts = await desk.card(cid)
    posted = [c for c in desk.slack.calls() if c.method in ("chat.postMessage", "chat.update")]
    everything = " ".join(str(c.params.get("text")) + str(c.params.get("blocks")) for c in posted)
    for token in ("<!here>", "<@U0DANA>", "<!channel>", "<https://evil.example|click me>", "@channel"):
        assert token not in everything
    assert "&lt;!here&gt;" in texts(desk.slack.thread(channel, thread_ts)[1:])
    await ws.close()


async def test_claim_resolve_with_csat(desk: Desk) -> None:
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)

    assert await desk.click(ACTION_CLAIM, cid, "U0SAM") == 200
    frames = await receive_until(ws, lambda f: f.get("author") == "system")
    assert frames[-1]["text"] == "Sam Okafor from our customer care team has joined the conversation."
    conversation = await desk.conversation(cid)
    assert conversation["status"] == "with_agent" and conversation["assignee"]["name"] == "Sam Okafor"
    await eventually(lambda: "Claimed" in str(desk.slack.message(channel, thread_ts).blocks))

    # A second claim by someone else is refused, privately.
    assert await desk.click(ACTION_CLAIM, cid, "U0DANA") == 200
    await eventually(lambda: any("already has" in str(e) for e in desk.slack.ephemerals))

    assert await desk.click(ACTION_RESOLVE, cid, "U0SAM") == 200
    frames = await receive_until(ws, lambda f: "1 (poor) to 5" in str(f.get("text")))
    assert any("resolved" in str(f.get("text")) for f in frames)
    await eventually(lambda: "Resolved" in str(desk.slack.message(channel, thread_ts).blocks))

    await ws.send_json({"type": "message", "text": "4", "client_msg_id": "rating"})
    frames = await receive_until(ws, lambda f: "rating us 4 out of 5" in str(f.get("text")))
    conversation = await desk.conversation(cid)
    assert conversation["status"] == "resolved" and conversation["csat"]["score"] == 4
    store = desk.gateway.runtime.store
    assert store is not None
    record = await store.handoffs.find_one({"conversation_id": ObjectId(cid)})
    assert record is not None
    assert record["csat"] == 4 and record["assignee"]["id"] == "U0SAM"
    assert record["handoff_at"] <= record["claimed_at"] <= record["resolved_at"]
    assert record["trigger"] and record["queue"] == "general"
    await eventually(lambda: "rated this conversation 4 out of 5" in texts(desk.slack.thread(channel, thread_ts)))
    await ws.close()


async def test_return_to_ai_resumes_with_the_thread_as_context(desk: Desk) -> None:
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    reply = desk.agent_says(channel, thread_ts, "U0DANA", "I've updated your address; anything else?")
    assert await desk.event(reply) == 200
    await receive_until(ws, lambda f: f.get("author") == "agent")
    # While a person owns the conversation the AI never answers.
    await ws.send_json({"type": "message", "text": "How much does shipping cost?", "client_msg_id": "q1"})
    await eventually(lambda: "How much does shipping cost?" in texts(desk.slack.thread(channel, thread_ts)))
    store = desk.gateway.runtime.store
    assert store is not None
    assert await store.messages.count_documents({"conversation_id": ObjectId(cid), "author": "ai"}) == 1

    # Return to AI: the customer is told, and the unanswered question gets the AI's answer.
    assert await desk.click(ACTION_RETURN, cid) == 200
    frames = await receive_until(ws, lambda f: f.get("type") == "message" and f.get("author") == "ai")
    assert any("virtual assistant" in str(f.get("text")) for f in frames)
    assert "shipping" in frames[-1]["text"].lower()
    conversation = await desk.conversation(cid)
    assert conversation["status"] == "ai" and conversation["assignee"] is None
    await eventually(lambda: "Back with AI" in str(desk.slack.message(channel, thread_ts).blocks))
    await ws.close()


async def test_sla_reminder_mentions_the_group_and_updates_the_customer(desk: Desk) -> None:
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    handoffs = desk.gateway.runtime.handoffs
    assert handoffs is not None
    conversation = await desk.conversation(cid)
    assert await handoffs.remind_overdue(now=conversation["sla_due_at"] - timedelta(seconds=1)) == 0
    assert await handoffs.remind_overdue(now=conversation["sla_due_at"] + timedelta(seconds=1)) == 1
    assert await handoffs.remind_overdue(now=conversation["sla_due_at"] + timedelta(hours=1)) == 0  # once
    frames = await receive_until(ws, lambda f: "Sorry for the wait" in str(f.get("text")))
    assert frames[-1]["author"] == "system"
    await eventually(lambda: "<!subteam^S0CARE>" in texts(desk.slack.thread(channel, thread_ts)))
    await ws.close()


async def test_agent_edit_and_delete_reach_the_web_chat(desk: Desk) -> None:
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    reply = desk.agent_says(channel, thread_ts, "U0DANA", "Your refund is 50 EUR")
    assert await desk.event(reply) == 200
    sent = (await receive_until(ws, lambda f: f.get("author") == "agent"))[-1]
    assert await desk.event(message_changed(channel, reply["ts"], thread_ts, "U0DANA", "Your refund is 60 EUR")) == 200
    edited = (await receive_until(ws, lambda f: f.get("type") == "message_edited"))[-1]
    assert edited["seq"] == sent["seq"] and edited["text"] == "Your refund is 60 EUR"
    previous = "Your refund is 60 EUR"
    assert await desk.event(message_deleted(channel, reply["ts"], thread_ts, "U0DANA", previous)) == 200
    deleted = (await receive_until(ws, lambda f: f.get("type") == "message_deleted"))[-1]
    assert deleted["seq"] == sent["seq"]
    await ws.close()


async def test_other_channels_get_corrections_and_failures_show_in_the_thread(
    gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path, provider: FakeProvider
) -> None:
    """A channel without edits gets a visible correction; a reply the channel refuses gets a warning
    with the reason in the thread; the customer's files are mirrored into the thread."""
    channel_adapter = HttpTestChannel(provider.url)

    async def photo(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def disguised_program(request: web.Request) -> web.Response:
        return web.Response(body=b"MZ\x90\x00binary", content_type="image/png")  # a Windows program, "as PNG"

    files_app = web.Application()
    files_app.router.add_get("/photo.png", photo)
    files_app.router.add_get("/tool.exe", disguised_program)
    host = TestServer(files_app, host="127.0.0.1")
    await host.start_server()
    try:
        desk = await start_desk(gateway_factory, slack, routing_file, extra_adapters=[channel_adapter])
        ingest = desk.gateway.runtime.ingest
        assert ingest is not None

        def said(text: str, key: str, attachments: tuple[Attachment, ...] = ()) -> InboundMessage:
            return inbound(text, key, chat="9", name="Robin Lee", attachments=attachments)

        result = await ingest.receive(said("The parcel came today and the vase inside is broken", "k1"))
        cid = result.conversation_id
        channel, thread_ts = await desk.card(cid)
        assert channel == "C0ORDERS"
        assert "Robin Lee" in str(slack.message(channel, thread_ts).blocks)

        photo = Attachment("photo.png", "image/png", url=str(host.make_url("/photo.png")))
        disguised = Attachment("tool.png", "image/png", url=str(host.make_url("/tool.exe")))
        await ingest.receive(said("Here are photos", "k2", (photo, disguised)))
        await eventually(
            lambda: any(f.filename == "photo.png" and f.thread_ts == thread_ts for f in slack.files.values())
        )
        await eventually(lambda: "was not posted here" in texts(slack.thread(channel, thread_ts)))
        assert not any(f.filename == "tool.png" for f in slack.files.values())

        reply = desk.agent_says(channel, thread_ts, "U0DANA", "Sorry about that! A replacment is on its way.")
        assert await desk.event(reply) == 200
        await eventually(lambda: any("replacment" in d["payload"]["text"] for d in provider.delivered))
        fix = message_changed(
            channel, reply["ts"], thread_ts, "U0DANA", "Sorry about that! A replacement is on its way."
        )
        assert await desk.event(fix) == 200
        await eventually(
            lambda: any(
                d["payload"]["text"].startswith("Correction to my previous message") for d in provider.delivered
            )
        )

        provider.fail_next(Outcome(status=403, body={"ok": False, "error": "bot was blocked by the user"}))
        refused = desk.agent_says(channel, thread_ts, "U0DANA", "Are you still there?")
        assert await desk.event(refused) == 200
        await eventually(lambda: "did not reach the customer: HTTP 403" in texts(slack.thread(channel, thread_ts)))
        await eventually(lambda: "warning" in slack.message(channel, refused["ts"]).reactions)
    finally:
        await host.close()
        await channel_adapter.close()


async def test_support_command_lists_the_queues(desk: Desk) -> None:
    cid, ws, _ = await webchat_handoff(desk)
    await desk.card(cid)
    fields = slash_command("/support", "", user_id="U0DANA", channel_id="C0SUPPORT")
    response = await post_command(desk.gateway.http, desk.events_url, SECRET, fields)
    assert response.status == 200
    body = await response.text()
    assert "customer care team" in body and "1 waiting" in body
    await ws.close()


async def test_socket_mode_without_a_public_url(
    gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path
) -> None:
    gateway = await gateway_factory(
        slack_bot_token=slack.token,
        slack_app_token=slack.app_token,
        slack_api_url=f"{slack.url}/api/",
        slack_default_channel="#support",
        routing_file=routing_file,
    )
    desk = Desk(gateway, slack)
    async with gateway.http.post(f"{gateway.base_url}/slack/events", json={}) as response:
        assert response.status == 404  # no HTTP endpoint without a signing secret
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    await asyncio.wait_for(slack.socket_connected.wait(), 10)
    event = desk.agent_says(channel, thread_ts, "U0DANA", "Hello over Socket Mode")
    ack = await slack.socket_send("events_api", event_callback(event))
    assert ack["envelope_id"]
    frames = await receive_until(ws, lambda f: f.get("author") == "agent")
    assert frames[-1]["text"] == "Hello over Socket Mode"
    await ws.close()


async def test_a_reconnecting_web_chat_learns_of_edits_made_while_it_was_away(desk: Desk) -> None:
    cid, ws, token = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    reply = desk.agent_says(channel, thread_ts, "U0DANA", "Delivery on Monday")
    assert await desk.event(reply) == 200
    seen = (await receive_until(ws, lambda f: f.get("author") == "agent"))[-1]["seq"]
    await ws.close()  # the phone drops off
    store = desk.gateway.runtime.store
    assert store is not None
    assert await desk.event(message_changed(channel, reply["ts"], thread_ts, "U0DANA", "Delivery on Tuesday")) == 200

    async def edit_delivered() -> bool:
        return await store.outbox.count_documents({"lane": cid, "message.extra.op": "edit", "state": "sent"}) == 1

    await eventually(edit_delivered)
    back = await desk.gateway.connect(token, after_seq=seen)
    frames = await receive_until(back, lambda f: f.get("type") == "message_edited")
    assert frames[-1]["seq"] == seen and frames[-1]["text"] == "Delivery on Tuesday"
    await back.close()


async def test_a_long_transcript_goes_to_the_thread_as_a_file(desk: Desk) -> None:
    story = "I want to talk to a human. " + " ".join(f"Step {n}: I tried again and it failed." for n in range(95))
    cid, ws, _ = await webchat_handoff(desk, story[:3990])
    channel, thread_ts = await desk.card(cid)
    [upload] = [f for f in desk.slack.files.values() if f.thread_ts == thread_ts]
    assert upload.filename == f"transcript-{cid}.txt"
    assert b"Step 94" in (upload.data or b"")
    assert "attached as" in texts(desk.slack.thread(channel, thread_ts)[1:])
    await ws.close()


async def test_a_second_handoff_reuses_the_thread(desk: Desk) -> None:
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    assert await desk.click(ACTION_RETURN, cid) == 200
    await receive_until(ws, lambda f: "virtual assistant" in str(f.get("text")))
    await ws.send_json({"type": "message", "text": "Actually, a real person please", "client_msg_id": "again"})
    await receive_until(ws, lambda f: f.get("type") == "status" and f.get("status") == "waiting_for_agent")
    await eventually(lambda: "Handed to people again" in texts(desk.slack.thread(channel, thread_ts)))
    await eventually(lambda: "a real person please" in texts(desk.slack.thread(channel, thread_ts)))
    assert len(desk.slack.messages(channel)) == 1  # one card per conversation, brought up to date
    await eventually(lambda: "Needs a person" in str(desk.slack.message(channel, thread_ts).blocks))
    store = desk.gateway.runtime.store
    assert store is not None
    assert await store.handoffs.count_documents({"conversation_id": ObjectId(cid)}) == 2
    await ws.close()
