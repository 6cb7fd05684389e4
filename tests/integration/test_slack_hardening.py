"""The Slack bridge under bad input and a failing Slack: hostile requests to /slack/events, users.info
down, file URLs that point away from Slack, and a customer flooding a handoff thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from bson import ObjectId
from slack_bolt.request.async_request import AsyncBoltRequest

from gateway.models import Attachment, ConversationRef, InboundMessage, OutboundMessage
from gateway.store import utcnow
from tests.conftest import GatewayFactory, receive_until
from tests.fakes.http_channel import HttpTestChannel
from tests.fakes.provider import FakeProvider
from tests.fakes.slack_api import FakeSlackApi, Outcome
from tests.fakes.slack_events import event_callback, post_event, signed_headers, thread_message, url_verification
from tests.helpers import eventually, inbound
from tests.integration.slack_desk import PNG, SECRET, Desk, start_desk, texts, webchat_handoff

MARKER = "CUSTOMER-SECRET-4417-do-not-log"


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record, message and extra fields, as one string."""
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


# --- /slack/events: bad requests are 401, and never logged with their bodies ---------------------


async def test_malformed_and_forged_requests_are_401_and_their_bodies_are_never_logged(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps(event_callback(thread_message("C0SUPPORT", "1.0", "U0DANA", f"my card is {MARKER}")))
    now = str(int(time.time()))
    forged = "v0=" + "0" * 64
    cases = {
        "letters": {"X-Slack-Request-Timestamp": "abc"},
        "letters, signed": {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": forged},
        "arabic digits": {"X-Slack-Request-Timestamp": "١٧٣٣٠٠٠٠٠٠", "X-Slack-Signature": forged},
        "underscores": {"X-Slack-Request-Timestamp": "1_733_000_000", "X-Slack-Signature": forged},
        "huge": {"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": forged},
        "forged": {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": forged},
        "signature not hex": {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=é" + "0" * 63},
        "unsigned": {},
    }
    for name, headers in cases.items():
        async with desk.gateway.http.post(
            desk.events_url, data=body.encode(), headers={"Content-Type": "application/json", **headers}
        ) as response:
            assert response.status == 401, name
            assert await response.json() == {"error": "invalid request"}
    # A body that is not UTF-8 at all, correctly signed: still no traceback.
    raw = b'{"type": "event_callback", "x": "\xff\xfe"}'
    headers = signed_headers(SECRET, "", content_type="application/json")
    basestring = b"v0:" + headers["X-Slack-Request-Timestamp"].encode() + b":" + raw
    headers["X-Slack-Signature"] = "v0=" + hmac.new(SECRET.encode(), basestring, hashlib.sha256).hexdigest()
    async with desk.gateway.http.post(desk.events_url, data=raw, headers=headers) as response:
        assert response.status == 401
    assert MARKER not in logged(caplog)
    refusals = [r for r in caplog.records if r.getMessage() == "slack_request_refused"]
    assert len(refusals) == len(cases) + 1
    assert {getattr(r, "reason", None) for r in refusals} >= {"malformed_timestamp", "bad_signature"}
    assert not [r for r in caplog.records if r.exc_info], "no traceback for bad input"
    # The real thing still gets through.
    good = await post_event(desk.gateway.http, desk.events_url, SECRET, url_verification("c1"))
    assert good.status == 200 and (await good.json())["challenge"] == "c1"


async def test_bolt_itself_never_logs_a_refused_body(desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    """Bolt checks signatures again behind the gateway's own check; when it refuses (a request at the
    edge of the five-minute window), its 'Invalid request signature detected (… body: …)' line must
    not carry the body either."""
    caplog.set_level(logging.DEBUG)
    bridge = desk.gateway.runtime.slack
    assert bridge is not None
    body = json.dumps(event_callback(thread_message("C0SUPPORT", "1.0", "U0DANA", f"refund to {MARKER}")))
    headers = {"x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": "v0=" + "0" * 64}
    response = await bridge.app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
    assert response.status == 401
    assert MARKER not in logged(caplog)


# --- users.info failing -------------------------------------------------------------------------


async def test_a_reply_reaches_the_customer_when_users_info_fails(desk: Desk) -> None:
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    desk.slack.script("users.info", Outcome.server_error(500))
    first = desk.agent_says(channel, thread_ts, "U0DANA", "Looking into it now.")
    assert await desk.event(first) == 200  # not a 500 that Slack would retry and then drop
    frames = await receive_until(ws, lambda f: f.get("author") == "agent")
    assert frames[-1]["text"] == "Looking into it now."
    assert frames[-1]["agent_name"] == "Support team"

    desk.slack.script("users.info", Outcome.fail("user_not_visible"))
    second = desk.agent_says(channel, thread_ts, "U0DANA", "Still on it.")
    assert await desk.event(second) == 200
    frames = await receive_until(ws, lambda f: f.get("author") == "agent")
    assert (frames[-1]["text"], frames[-1]["agent_name"]) == ("Still on it.", "Support team")

    # No answer at all: slack_sdk (and aiohttp, for a reused connection) retry a dropped connection,
    # then raise aiohttp's error.
    desk.slack.script("users.info", *[Outcome.disconnect()] * 10)
    third = desk.agent_says(channel, thread_ts, "U0DANA", "One moment.")
    assert await desk.event(third) == 200
    frames = await receive_until(ws, lambda f: f.get("author") == "agent")
    assert (frames[-1]["text"], frames[-1]["agent_name"]) == ("One moment.", "Support team")
    desk.slack.unscript("users.info")

    # Slack is back: the fallback was not cached, the next reply has the agent's name.
    fourth = desk.agent_says(channel, thread_ts, "U0DANA", "Found it!")
    assert await desk.event(fourth) == 200
    frames = await receive_until(ws, lambda f: f.get("author") == "agent")
    assert (frames[-1]["text"], frames[-1]["agent_name"]) == ("Found it!", "Dana")
    assert desk.slack.calls("users.info")[-1].ok
    await ws.close()


async def test_a_claim_when_users_info_fails_names_no_one(desk: Desk) -> None:
    from agent_bridge.slack.card import ACTION_CLAIM

    cid, ws, _ = await webchat_handoff(desk)
    await desk.card(cid)
    desk.slack.script("users.info", Outcome.server_error(503))
    assert await desk.click(ACTION_CLAIM, cid, "U0SAM") == 200
    frames = await receive_until(ws, lambda f: f.get("author") == "system" and "joined" in str(f.get("text")))
    assert frames[-1]["text"].startswith("Someone from our")
    await ws.close()


# --- the bot token goes to Slack's file host only ---------------------------------------------------


async def test_the_bot_token_is_never_sent_to_a_file_url_outside_slack(desk: Desk) -> None:
    seen: list[dict[str, str]] = []

    async def collect(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", collect)
    elsewhere = TestServer(app, host="127.0.0.1")
    await elsewhere.start_server()
    try:
        cid, ws, _ = await webchat_handoff(desk)
        channel, thread_ts = await desk.card(cid)
        url = str(elsewhere.make_url("/steal.png"))
        bad = {"id": "F0EVIL", "name": "steal.png", "mimetype": "image/png", "size": len(PNG), "mode": "hosted"}
        bad |= {"url_private": url, "url_private_download": url}
        good = desk.slack.add_user_file("label.png", "image/png", PNG, user="U0DANA")
        reply = desk.agent_says(channel, thread_ts, "U0DANA", "Two files for you", files=[bad, good])
        assert await desk.event(reply) == 200
        frames = await receive_until(ws, lambda f: f.get("author") == "agent")
        assert frames[-1]["text"] == "Two files for you"
        assert [a["name"] for a in frames[-1]["attachments"]] == ["label.png"]
        await eventually(lambda: "steal.png: not hosted by Slack" in texts(desk.slack.thread(channel, thread_ts)))
        assert seen == []  # not a single request, so certainly no token
        assert [c.params["authorised"] for c in desk.slack.calls("download")] == [True]
        await ws.close()
    finally:
        await elsewhere.close()


def test_which_hosts_may_see_the_token() -> None:
    from agent_bridge.slack.file_hosts import SlackFileHosts

    production = SlackFileHosts("https://slack.com/api/")
    assert production.may_send_token("https://files.slack.com/files-pri/T1-F1/download/a.png")
    for url in (
        "http://files.slack.com/files-pri/T1-F1/a.png",  # plain http
        "https://files.slack.com:8443/files-pri/T1-F1/a.png",
        "https://files.slack.com.evil.example/a.png",
        "https://files.slack.com@evil.example/a.png",  # userinfo trick: the host is evil.example
        "https://evil.example/files.slack.com/a.png",
        "https://files.slack.com:bad/a.png",
        "file:///etc/passwd",
        "",
    ):
        assert not production.may_send_token(url), url
    gov = SlackFileHosts("https://slack-gov.com/api/")
    assert gov.may_send_token("https://files.slack-gov.com/files-pri/T1-F1/a.png")
    assert gov.may_send_token("https://files.slack.com/files-pri/T1-F1/a.png")
    assert not gov.may_send_token("https://files.evil.example/files-pri/T1-F1/a.png")
    local = SlackFileHosts("http://127.0.0.1:4321/api/")
    assert local.may_send_token("http://127.0.0.1:4321/files-pri/T1-F1/a.png")
    assert not local.may_send_token("http://127.0.0.1:4322/files-pri/T1-F1/a.png")


# --- a burst of customer messages is coalesced in the thread -----------------------------------------


def said(text: str, key: str, attachments: tuple[Attachment, ...] = ()) -> InboundMessage:
    return inbound(text, key, chat="7", name="Robin Lee", attachments=attachments)


async def test_a_burst_of_customer_messages_is_coalesced_and_each_text_appears_once_in_order(
    gateway_factory: GatewayFactory,
    slack: FakeSlackApi,
    routing_file: Path,
    provider: FakeProvider,
) -> None:
    async def photo(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    files_app = web.Application()
    files_app.router.add_get("/photo.png", photo)
    host = TestServer(files_app, host="127.0.0.1")
    await host.start_server()
    channel_adapter = HttpTestChannel(provider.url)
    try:
        desk = await start_desk(gateway_factory, slack, routing_file, extra_adapters=[channel_adapter])
        ingest = desk.gateway.runtime.ingest
        assert ingest is not None
        cid = (await ingest.receive(said("The vase arrived broken, I want a person", "start"))).conversation_id
        channel, thread_ts = await desk.card(cid)
        posts_before = len(slack.thread(channel, thread_ts))

        slack.slow("chat.postMessage", 0.3)  # a busy Slack: the burst queues up behind each post
        n = 50
        photo_at = {10, 30}
        for i in range(n):
            attachments = (Attachment("photo.png", "image/png", url=str(host.make_url("/photo.png"))),)
            await ingest.receive(said(f"burst <{i:02d}> *hi* @here", f"b{i}", attachments if i in photo_at else ()))

        def thread_text() -> str:
            return texts(slack.thread(channel, thread_ts))

        await eventually(lambda: "burst &lt;49&gt;" in thread_text(), timeout=30)
        store = desk.gateway.runtime.store
        assert store is not None

        async def all_sent() -> bool:
            pending = {"lane": f"slack:{cid}", "state": {"$ne": "sent"}, "message.extra.kind": "customer_message"}
            return await store.outbox.count_documents(pending) == 0

        await eventually(all_sent, timeout=30)
        slack.slow("chat.postMessage", 0)

        new_posts = slack.thread(channel, thread_ts)[posts_before:]
        burst_posts = [m for m in new_posts if "burst" in (m.text or "")]
        assert 1 <= len(burst_posts) <= n // 5, f"{len(burst_posts)} posts for {n} messages"
        seen = re.findall(r"burst &lt;(\d\d)&gt;", thread_text())
        assert seen == [f"{i:02d}" for i in range(n)]  # every text exactly once, in order
        # Escaping still applies to each line: no mention, no formatting.
        assert "@here" not in thread_text() and "*hi*" not in thread_text()
        assert all(len(m.text or "") <= 4000 for m in burst_posts)
        uploads = [f for f in slack.files.values() if f.thread_ts == thread_ts and f.filename == "photo.png"]
        assert len(uploads) == len(photo_at)
        assert await store.messages.count_documents({"conversation_id": ObjectId(cid), "slack_mirror.files": True}) == n
    finally:
        await channel_adapter.close()
        await host.close()


async def test_a_message_stored_after_a_later_one_was_mirrored_is_still_mirrored(desk: Desk) -> None:
    """Two ingests of one conversation take seq 8 and 9; 9's insert (and its mirror job) lands first.
    A watermark ("everything up to 9 is in the thread") would then skip 8 for good."""
    cid, ws, _ = await webchat_handoff(desk)
    channel, thread_ts = await desk.card(cid)
    store, adapter = desk.gateway.runtime.store, desk.gateway.runtime.adapters["slack"]
    assert store is not None
    seq = int((await desk.conversation(cid))["seq"])

    async def arrive(offset: int, text: str) -> OutboundMessage:
        message = {
            "_id": ObjectId(),
            "conversation_id": ObjectId(cid),
            "seq": seq + offset,
            "author": "customer",
            "text": text,
            "attachments": [],
            "idempotency_key": f"test:{cid}:{offset}",
            "created_at": utcnow(),
        }
        await store.messages.insert_one(message)
        job = OutboundMessage(
            conversation_id=cid,
            seq=seq + offset,
            author="system",
            text="",
            created_at=utcnow(),
            extra={"kind": "customer_message", "message_id": str(message["_id"])},
        )
        await adapter.send(ConversationRef("slack", cid), job)
        return job

    await arrive(2, "the later one")
    earlier = await arrive(1, "the earlier one")
    thread = texts(desk.slack.thread(channel, thread_ts))
    assert thread.count("the later one") == 1 and thread.count("the earlier one") == 1
    # The outbox delivers a job again after a crash: a message already in the thread costs no call.
    calls = len(desk.slack.calls())
    await adapter.send(ConversationRef("slack", cid), earlier)
    assert len(desk.slack.calls()) == calls
    await ws.close()
