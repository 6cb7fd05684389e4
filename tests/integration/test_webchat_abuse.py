"""Abuse limits of the web chat: per-conversation message rate, sockets per conversation, sessions per
client address (X-Forwarded-For only from trusted proxies), and expiry of what was never used."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
import pytest
from bson import ObjectId

from gateway.store import utcnow
from tests.conftest import GatewayFactory, RunningGateway, receive_until
from tests.helpers import eventually

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"


def own_ack(client_msg_id: str):
    return lambda f: f["type"] == "message" and f.get("client_msg_id") == client_msg_id


async def opened(gateway: RunningGateway, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await gateway.connect(token)
    assert (await ws.receive_json())["type"] == "status"
    return ws


async def post_session(gateway: RunningGateway, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    async with gateway.http.post(f"{gateway.base_url}/webchat/sessions", headers=headers or {}) as response:
        await response.read()
        return response


# messages per conversation


async def test_the_message_limit_is_per_conversation_across_all_its_sockets(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(webchat_rate_max_messages=3, webchat_rate_window_seconds=60)
    session = await gw.new_session()
    first, second = await opened(gw, session["token"]), await opened(gw, session["token"])
    for ws, cid in [(first, "m-1"), (second, "m-2"), (first, "m-3")]:
        await ws.send_json({"type": "message", "text": "Which payment methods do you accept?", "client_msg_id": cid})
        await receive_until(ws, own_ack(cid))

    await second.send_json({"type": "message", "text": "one more", "client_msg_id": "m-4"})
    frames = await receive_until(second, lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "rate_limited" and frames[-1]["client_msg_id"] == "m-4"
    assert await gw.runtime.store.messages.count_documents({"author": "customer"}) == 3

    # Another conversation has its own budget.
    other = await gw.new_session()
    third = await opened(gw, other["token"])
    await third.send_json({"type": "message", "text": "Which payment methods do you accept?", "client_msg_id": "o-1"})
    await receive_until(third, own_ack("o-1"))
    for ws in (first, second, third):
        await ws.close()


# sockets per conversation


async def test_past_the_socket_cap_the_oldest_socket_is_closed_with_4409(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(webchat_max_sockets_per_conversation=2)
    session = await gw.new_session()
    oldest = await opened(gw, session["token"])
    middle = await opened(gw, session["token"])
    other = await opened(gw, (await gw.new_session())["token"])  # another conversation: not counted
    newest = await opened(gw, session["token"])

    closing = await asyncio.wait_for(oldest.receive(), 5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4409
    assert closing.extra == "replaced by a newer connection"
    assert gw.runtime.channels["webchat"].hub.connection_count == 3
    # The survivors still get every frame of the conversation.
    await newest.send_json({"type": "message", "text": "Can I pay with PayPal?", "client_msg_id": "s-1"})
    await receive_until(middle, own_ack("s-1"))
    await receive_until(newest, own_ack("s-1"))
    assert not other.closed
    for ws in (middle, newest, other):
        await ws.close()


# sessions per client address


async def test_new_sessions_are_limited_per_client_address_with_retry_after(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(webchat_sessions_per_ip_per_hour=3)
    statuses = [(await post_session(gw)).status for _ in range(3)]
    assert statuses == [201, 201, 201]
    refused = await post_session(gw)
    assert refused.status == 429
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    # Without TRUSTED_PROXIES, X-Forwarded-For is the client's own claim and changes nothing.
    assert (await post_session(gw, {"X-Forwarded-For": "203.0.113.9"})).status == 429
    assert await gw.runtime.store.conversations.count_documents({}) == 3


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(webchat_sessions_per_ip_per_hour=2, trusted_proxies="10.0.0.0/8, 127.0.0.1")
    # The proxy appends the address it saw; whatever the client wrote to its left is ignored.
    alice = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5, 10.1.2.3"}
    spoofed = {"X-Forwarded-For": "198.51.100.77, 203.0.113.5"}
    assert (await post_session(gw, alice)).status == 201
    assert (await post_session(gw, spoofed)).status == 201
    assert (await post_session(gw, alice)).status == 429
    assert (await post_session(gw, {"X-Forwarded-For": "203.0.113.6"})).status == 201


# expiry of what was never used


async def test_empty_conversations_and_their_contacts_expire_used_ones_stay(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(webchat_empty_session_ttl_hours=2)
    store, expiry = gw.runtime.store, gw.runtime.channels["webchat"].expiry
    empty = await gw.new_session()
    used = await gw.new_session()
    live = await gw.new_session()
    ws = await opened(gw, used["token"])
    await ws.send_json({"type": "message", "text": "Can I pay with PayPal?", "client_msg_id": "u-1"})
    await receive_until(ws, own_ack("u-1"))
    await ws.close()
    live_ws = await opened(gw, live["token"])

    assert await expiry.sweep(utcnow() + timedelta(hours=1)) == (0, 0)  # not old enough yet
    assert await expiry.sweep(utcnow() + timedelta(hours=3)) == (1, 0)

    ids = {d["_id"] async for d in store.conversations.find({}, {"_id": 1})}
    assert ids == {ObjectId(used["conversation_id"]), ObjectId(live["conversation_id"])}
    assert await store.contacts.count_documents({}) == 2
    # The expired session's token now opens nothing: the client starts over with a new session.
    stale = await gw.connect(empty["token"])
    assert (await stale.receive()).data == 4401
    # A sweep is idempotent, and a second gateway's sweep at the same time changes nothing more.
    assert await expiry.sweep(utcnow() + timedelta(hours=3)) == (0, 0)
    await live_ws.close()


async def test_uploads_never_attached_expire_attached_ones_stay(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(webchat_unattached_upload_ttl_hours=1)
    session = await gw.new_session()
    headers = {"Authorization": f"Bearer {session['token']}"}

    async def upload() -> dict:
        form = aiohttp.FormData()
        form.add_field("file", PNG, filename="mug.png", content_type="image/png")
        async with gw.http.post(f"{gw.base_url}/webchat/files", data=form, headers=headers) as response:
            assert response.status == 201
            return await response.json()

    kept, dropped, late = await upload(), await upload(), await upload()
    ws = await opened(gw, session["token"])
    await ws.send_json(
        {"type": "message", "text": "", "client_msg_id": "f-1", "attachments": [{"file_id": kept["file_id"]}]}
    )
    await receive_until(ws, own_ack("f-1"))

    assert await gw.runtime.channels["webchat"].expiry.sweep(utcnow() + timedelta(hours=2)) == (0, 2)
    db = gw.runtime.store.db
    assert [str(d["_id"]) async for d in db["files.files"].find({})] == [kept["file_id"]]
    assert await db["files.chunks"].count_documents({"files_id": {"$ne": ObjectId(kept["file_id"])}}) == 0
    parts = urlsplit(kept["url"])
    async with gw.http.get(f"{gw.base_url}{parts.path}?{parts.query}") as served:
        assert served.status == 200 and await served.read() == PNG
    # A message naming an expired upload is refused, not stored with a dead link.
    await ws.send_json(
        {"type": "message", "text": "x", "client_msg_id": "f-2", "attachments": [{"file_id": late["file_id"]}]}
    )
    frame = (await receive_until(ws, lambda f: f["type"] == "error"))[-1]
    assert frame["code"] == "bad_attachment" and frame["client_msg_id"] == "f-2"
    assert dropped["file_id"] != kept["file_id"]
    await ws.close()


async def test_the_sweep_runs_on_its_own(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(webchat_empty_session_ttl_hours=0.0001)  # 0.36 s
    await gw.new_session()
    expiry = gw.runtime.channels["webchat"].expiry
    await expiry.stop()
    await asyncio.sleep(0.5)
    expiry.start(every=0.2)

    async def all_gone() -> bool:
        # The sweep deletes the conversation, then its contact: two writes, so wait for both.
        store = gw.runtime.store
        return await store.conversations.count_documents({}) == 0 and await store.contacts.count_documents({}) == 0

    await eventually(all_gone, timeout=10)


# surfaces


async def test_the_demo_page_and_widget_send_security_headers_and_no_server_version(gateway: RunningGateway) -> None:
    async with gateway.http.get(f"{gateway.base_url}/") as page:
        assert page.status == 200
        csp = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'self'" in csp and "default-src 'none'" in csp and "script-src 'self' 'sha256-" in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "no-referrer"
    async with gateway.http.get(f"{gateway.base_url}/webchat/widget.js") as widget:
        assert widget.headers["X-Content-Type-Options"] == "nosniff"
        assert widget.headers["Referrer-Policy"] == "no-referrer"
    for path in ("/", "/healthz", "/nowhere", "/webchat/widget.js"):
        async with gateway.http.get(f"{gateway.base_url}{path}") as response:
            assert response.headers["Server"] == "support-gateway", path
    async with gateway.http.post(f"{gateway.base_url}/webchat/sessions") as response:
        assert "aiohttp" not in response.headers["Server"] and "Python" not in response.headers["Server"]


async def test_the_demo_page_can_be_turned_off(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(webchat_demo_page=False)
    async with gw.http.get(f"{gw.base_url}/") as page:
        assert page.status == 404
    async with gw.http.get(f"{gw.base_url}/webchat/widget.js") as widget:
        assert widget.status == 200


async def test_access_logs_never_show_session_tokens(gateway: RunningGateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.access")
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    await ws.close()
    await asyncio.sleep(0.2)  # the access line is written once the socket's request ends
    lines = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert any("/webchat/ws?token=[redacted]" in r.getMessage() for r in lines)
    for record in lines:
        assert session["token"] not in record.getMessage()
        assert session["token"] not in str(record.__dict__)
