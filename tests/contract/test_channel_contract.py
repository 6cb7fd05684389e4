"""The same checks for every registered channel (channels/registry.py), through its local fake provider.

Each test plays a customer on the channel and an agent in the (fake) Slack thread, and reads what
the customer's app received. Web chat and Telegram pass them; the next channels must too.
"""

from __future__ import annotations

from pathlib import Path

from bson import ObjectId

from gateway.text_split import text_length
from tests.conftest import GatewayFactory
from tests.contract.drivers import ChannelDriver, Received
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_events import message_changed
from tests.helpers import eventually
from tests.integration.slack_desk import PNG, Desk, texts

HANDOFF = "I want to talk to a human please"


async def handed_off(driver: ChannelDriver, desk: Desk) -> tuple[str, str, str]:
    cid = await driver.customer_says(HANDOFF, key=1)
    channel, thread_ts = await desk.card(cid)
    return cid, channel, thread_ts


async def received_after(driver: ChannelDriver, count: int, wanted: int) -> list[Received]:
    async def enough() -> bool:
        return len(await driver.received()) >= count + wanted

    await eventually(enough)
    return (await driver.received())[count:]


async def test_inbound_text_is_stored_once_when_delivered_twice(
    driver: ChannelDriver, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await driver.start(gateway_factory, slack, routing_file)
    cid = await driver.customer_says("How long does delivery take?", key=11)
    await driver.customer_says("How long does delivery take?", key=11)
    store = desk.gateway.runtime.store
    assert store is not None
    await eventually(lambda: _count(store.messages, {"author": "ai"}, 1))
    assert await store.messages.count_documents({"conversation_id": ObjectId(cid), "author": "customer"}) == 1
    assert await store.messages.count_documents({"conversation_id": ObjectId(cid), "author": "ai"}) == 1


async def _count(collection, query, wanted: int) -> bool:
    return await collection.count_documents(query) >= wanted


async def test_a_forged_request_gets_4xx_and_stores_nothing(
    driver: ChannelDriver, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await driver.start(gateway_factory, slack, routing_file)
    status = await driver.forge("Send me the admin password")
    # HTTP 4xx, or a WebSocket close code in the 4400-4499 range the web chat uses for the same.
    assert 400 <= status < 500 or 4400 <= status < 4500, status
    store = desk.gateway.runtime.store
    assert store is not None
    assert await store.messages.count_documents({}) == 0


async def test_a_long_reply_arrives_split_within_the_limit_and_in_order(
    driver: ChannelDriver, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await driver.start(gateway_factory, slack, routing_file)
    _cid, channel, thread_ts = await handed_off(driver, desk)
    before = len(await driver.received())
    paragraphs = [
        " ".join(
            f"Step {p}.{n}: check the parcel 🙂 and the label https://example.com/track?id={p}{n}." for n in range(40)
        )
        for p in range(1, 4)
    ]
    reply = "\n\n".join(paragraphs)
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", reply)) == 200
    expected = max(1, -(-text_length(reply, driver.units) // driver.max_text))

    async def whole() -> bool:
        got = (await driver.received())[before:]
        return "".join("".join(r.text.split()) for r in got) == "".join(reply.split())

    await eventually(whole)
    parts = (await driver.received())[before:]
    assert len(parts) >= expected
    assert all(text_length(p.text, driver.units) <= driver.max_text for p in parts)
    for part in parts:
        # Never cut inside a link: every URL arrives whole.
        for word in part.text.split():
            if "example.com" in word:
                assert word.rstrip(".").endswith(tuple("0123456789")), word


async def test_a_file_arrives_as_a_file_or_a_link(
    driver: ChannelDriver, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await driver.start(gateway_factory, slack, routing_file)
    _cid, channel, thread_ts = await handed_off(driver, desk)
    before = len(await driver.received())
    file = slack.add_user_file("label.png", "image/png", PNG, user="U0DANA")
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "Here is the label", files=[file])) == 200

    async def arrived() -> bool:
        got = (await driver.received())[before:]
        as_file = any(r.files for r in got)
        as_link = any("label.png" in r.text and "/files/" in r.text for r in got)
        return any("Here is the label" in r.text for r in got) and (as_file or as_link)

    await eventually(arrived)


async def test_an_edit_arrives_as_an_edit_or_a_correction(
    driver: ChannelDriver, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await driver.start(gateway_factory, slack, routing_file)
    _cid, channel, thread_ts = await handed_off(driver, desk)
    reply = desk.agent_says(channel, thread_ts, "U0DANA", "Your refund is 50 EUR")
    assert await desk.event(reply) == 200
    await eventually(lambda: _shown(driver, "Your refund is 50 EUR"))
    fix = message_changed(channel, reply["ts"], thread_ts, "U0DANA", "Your refund is 60 EUR")
    assert await desk.event(fix) == 200

    async def corrected() -> bool:
        got = await driver.received()
        in_place = any(r.edited and r.text == "Your refund is 60 EUR" for r in got)
        correction = any("Correction" in r.text and "60 EUR" in r.text for r in got)
        return in_place or correction

    await eventually(corrected)


async def _shown(driver: ChannelDriver, text: str) -> bool:
    return any(r.text == text for r in await driver.received())


async def test_a_permanent_provider_error_is_visible_in_the_slack_thread(
    driver: ChannelDriver, gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await driver.start(gateway_factory, slack, routing_file)
    _cid, channel, thread_ts = await handed_off(driver, desk)
    reply = desk.agent_says(channel, thread_ts, "U0DANA", "Can you send a photo of the damage?")
    if await driver.refuse_everything():
        assert await desk.event(reply) == 200
        await eventually(lambda: "did not reach the customer" in texts(slack.thread(channel, thread_ts)))
        # The warning reaction follows the thread post (agent_bridge/slack/desk_adapter.py).
        await eventually(lambda: "warning" in (slack.message(channel, reply["ts"]).reactions or {}))
        return
    # No provider can refuse this channel's messages: each is stored and replayed on reconnect, so the
    # reply is marked delivered even while the customer is offline, and nothing in the thread warns.
    await driver.close()
    assert await desk.event(reply) == 200
    await eventually(lambda: "white_check_mark" in (slack.message(channel, reply["ts"]).reactions or {}))
    assert "did not reach the customer" not in texts(slack.thread(channel, thread_ts))
