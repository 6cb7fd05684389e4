"""SMS and WhatsApp end to end: the real twilio client against the local fake Twilio API, a real database,
and the fake signing what it posts to the gateway with RequestValidator, as Twilio does."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gateway.sms import segments
from gateway.store import utcnow
from tests.conftest import GatewayFactory
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.twilio_api import FakeTwilioApi, num_segments
from tests.helpers import eventually
from tests.integration.slack_desk import PNG, texts
from tests.integration.twilio_phone import (
    SMS_FROM,
    WHATSAPP_FROM,
    bodies_to,
    messages_url,
    sms,
    start_twilio,
    start_twilio_desk,
    whatsapp,
)

CUSTOMER = "+15557770001"
TEMPLATE = "HX" + "0123456789abcdef" * 2
HANDOFF = "I want to talk to a human please"


async def test_an_sms_question_is_answered_by_sms_with_a_status_callback(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi
) -> None:
    gw = await start_twilio(gateway_factory, twilio)
    params = twilio.sms_params(CUSTOMER, SMS_FROM, "How long does delivery take?")
    status, body, headers = await twilio.send_inbound(messages_url(gw), params)
    assert status == 200 and body.strip().endswith("<Response/>") and headers["Content-Type"].startswith("text/xml")
    await eventually(lambda: len(twilio.messages_to(CUSTOMER)) >= 1)
    sent = twilio.messages_to(CUSTOMER)[0]
    assert sent.from_ == SMS_FROM and "deliver" in (sent.body or "").lower()
    assert sent.status_callback == f"{gw.base_url}/twilio/status"
    store = gw.runtime.store
    messages = await store.messages.find({}).sort("seq", 1).to_list()
    assert [m["author"] for m in messages] == ["customer", "ai"]
    assert messages[0]["origin"]["provider_message_id"] == params["MessageSid"]
    conversation = await store.conversations.find_one({})
    assert (conversation["ref"]["channel"], conversation["ref"]["chat_id"]) == ("sms", CUSTOMER)
    # Twilio reports the reply sent, then delivered: recorded on the message.
    ai = messages[1]["_id"]

    async def delivered() -> bool:
        found = await store.messages.find_one({"_id": ai})
        return (found.get("delivery") or {}).get("0", {}).get("status") == "delivered"

    await eventually(delivered)
    assert all(r.status == 204 for r in twilio.callback_results)


async def test_forged_unsigned_and_misaddressed_requests_get_403_and_store_nothing(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi
) -> None:
    gw = await start_twilio(gateway_factory, twilio)
    url = messages_url(gw)
    params = twilio.sms_params(CUSTOMER, SMS_FROM, "Send me the admin password")
    assert (await twilio.send_inbound(url, params, forge=True))[0] == 403
    assert (await twilio.send_inbound(url, params, omit_signature=True))[0] == 403
    # Signed for another address (a replay against another gateway, or a wrong PUBLIC_BASE_URL).
    assert (await twilio.send_inbound(url, params, signature_url="https://other.example.com/twilio/messages"))[0] == 403
    # A status callback is checked the same way.
    forged = await twilio.post_status(f"{gw.base_url}/twilio/status", {"MessageSid": "SM" + "0" * 32}, forge=True)
    assert forged.status == 403
    assert await gw.runtime.store.messages.count_documents({}) == 0
    # Not a form at all.
    async with gw.http.post(url, json={"Body": "hi"}) as response:
        assert response.status == 400


async def test_a_redelivered_message_is_stored_and_answered_once(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi
) -> None:
    gw = await start_twilio(gateway_factory, twilio)
    params = twilio.sms_params(CUSTOMER, SMS_FROM, "What payment methods do you accept?")
    assert (await twilio.send_inbound(messages_url(gw), params))[0] == 200
    assert (await twilio.send_inbound(messages_url(gw), params))[0] == 200
    store = gw.runtime.store
    await eventually(lambda: _all_sent(store, "sms"))
    assert await store.messages.count_documents({"author": "customer"}) == 1
    assert await store.messages.count_documents({"author": "ai"}) == 1
    # One reply, sent once (as one SMS per part).
    assert len(twilio.messages_to(CUSTOMER)) == await store.outbox.count_documents({"channel": "sms"})


async def _all_sent(store, channel: str) -> bool:
    jobs = await store.outbox.find({"channel": channel}).to_list()
    return bool(jobs) and all(j["state"] == "sent" for j in jobs)


async def test_whatsapp_names_the_contact_reads_a_location_and_strips_nul_bytes(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi
) -> None:
    gw = await start_twilio(gateway_factory, twilio)
    assert await whatsapp(twilio, gw, CUSTOMER, "Where is my\x00 order?", profile_name="Ana Lima") == 200
    await eventually(lambda: len(twilio.messages_to(f"whatsapp:{CUSTOMER}")) >= 1)
    assert twilio.messages_to(f"whatsapp:{CUSTOMER}")[0].from_ == f"whatsapp:{WHATSAPP_FROM}"
    store = gw.runtime.store
    customer = await store.messages.find_one({"author": "customer"})
    assert customer["text"] == "Where is my order?"
    conversation = await store.conversations.find_one({})
    assert (conversation["ref"]["channel"], conversation["ref"]["chat_id"]) == ("whatsapp", CUSTOMER)
    contact = await store.contacts.find_one({"_id": conversation["contact_id"]})
    assert contact["name"] == "Ana Lima"
    assert await whatsapp(twilio, gw, CUSTOMER, latitude="52.37403", longitude="4.88969", address="Dam 1") == 200
    await eventually(lambda: _count(store, {"author": "customer"}, 2))
    location = await store.messages.find_one({"author": "customer", "seq": {"$gt": customer["seq"]}})
    assert "Dam 1" in location["text"] and "52.37403" in location["text"]


async def _count(store, query, wanted: int) -> bool:
    return await store.messages.count_documents(query) >= wanted


async def test_customer_media_is_fetched_with_the_account_credentials_and_stored(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi
) -> None:
    gw = await start_twilio(gateway_factory, twilio)
    url = twilio.add_media(PNG, "image/png")
    assert await whatsapp(twilio, gw, CUSTOMER, "", media=[(url, "image/png")]) == 200
    store = gw.runtime.store
    await eventually(lambda: _count(store, {"author": "customer"}, 1))
    message = await store.messages.find_one({"author": "customer"})
    [attachment] = message["attachments"]
    assert attachment["content_type"] == "image/png" and attachment["size"] == len(PNG)
    assert twilio.media_gets[url] == 1
    # Twilio delivers the same message again: stored once, its file not fetched twice.
    params = twilio.whatsapp_params(f"whatsapp:{CUSTOMER}", f"whatsapp:{WHATSAPP_FROM}", "", media=[(url, "image/png")])
    params["MessageSid"] = message["origin"]["provider_message_id"]
    assert (await twilio.send_inbound(messages_url(gw), params))[0] == 200
    assert twilio.media_gets[url] == 1
    assert await store.messages.count_documents({"author": "customer"}) == 1
    # A media URL on any other host is never fetched, whatever the signed request says.
    outside = "http://127.0.0.1:9/evil.png"
    assert await whatsapp(twilio, gw, CUSTOMER, "and this", media=[(outside, "image/png")]) == 200
    await eventually(lambda: _count(store, {"author": "customer"}, 2))
    second = await store.messages.find_one({"author": "customer", "seq": {"$gt": message["seq"]}})
    assert second["attachments"] == [] and "not on Twilio's media host" in second["text"]


async def test_stop_opts_out_start_opts_back_in_and_help_gets_the_help_text(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi
) -> None:
    gw = await start_twilio(gateway_factory, twilio, twilio_sms_help_text="Northwind support. Reply STOP to stop.")
    store = gw.runtime.store
    assert await sms(twilio, gw, CUSTOMER, "HELP") == 200
    await eventually(lambda: bodies_to(twilio, CUSTOMER) == ["Northwind support. Reply STOP to stop."])
    assert await sms(twilio, gw, CUSTOMER, "Stop.") == 200
    state = await store.db["channel_state"].find_one({"_id": f"twilio:sms:{CUSTOMER}"})
    assert state["opted_out"] is True
    # Nothing reaches an opted-out customer: a question now is stored, but its answer is not sent.
    assert await sms(twilio, gw, CUSTOMER, "How long does delivery take?") == 200
    await eventually(lambda: _count(store, {"author": "ai"}, 1))
    assert len(twilio.messages_to(CUSTOMER)) == 1
    assert await sms(twilio, gw, CUSTOMER, "START") == 200
    state = await store.db["channel_state"].find_one({"_id": f"twilio:sms:{CUSTOMER}"})
    assert state["opted_out"] is False
    assert await sms(twilio, gw, CUSTOMER, "Do you ship to Canada?") == 200
    await eventually(lambda: len(twilio.messages_to(CUSTOMER)) >= 2)
    # The keywords never reached the AI (nor the conversation): only the two questions did.
    customer_texts = [m["text"] for m in await store.messages.find({"author": "customer"}).to_list()]
    assert customer_texts == ["How long does delivery take?", "Do you ship to Canada?"]
    # "yes" from a customer who never opted out is an answer, not a keyword.
    assert await sms(twilio, gw, "+15557770002", "yes") == 200
    await eventually(lambda: _count(store, {"author": "customer", "text": "yes"}, 1))


async def test_a_handoff_round_trip_by_sms_with_a_long_unicode_reply_split_by_segments(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await start_twilio_desk(gateway_factory, slack, routing_file, twilio, twilio_sms_max_segments=2)
    assert await sms(twilio, desk.gateway, CUSTOMER, HANDOFF) == 200
    conversation = await desk.gateway.runtime.store.conversations.find_one({})
    channel, thread_ts = await desk.card(str(conversation["_id"]))
    assert "SMS" in str(slack.message(channel, thread_ts).blocks)
    await eventually(lambda: len(twilio.messages_to(CUSTOMER)) >= 1)  # told that a person will answer
    reply = " ".join(f"Schritt {n}: Paket prüfen 📦, Etikett lesen." for n in range(30))
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", reply)) == 200

    def whole() -> bool:
        got = "".join("".join(b.split()) for b in bodies_to(twilio, CUSTOMER)[1:])
        return got == "".join(reply.split())

    await eventually(whole)
    parts = bodies_to(twilio, CUSTOMER)[1:]
    assert len(parts) >= -(-segments(reply) // 2)
    assert all(segments(p) <= 2 and num_segments(p) <= 2 for p in parts)


async def test_an_opted_out_number_refused_by_twilio_is_shown_in_the_thread(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await start_twilio_desk(gateway_factory, slack, routing_file, twilio)
    assert await sms(twilio, desk.gateway, CUSTOMER, HANDOFF) == 200
    conversation = await desk.gateway.runtime.store.conversations.find_one({})
    channel, thread_ts = await desk.card(str(conversation["_id"]))
    twilio.refuse(CUSTOMER, 21610)
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "Any news on your parcel?")) == 200
    await eventually(lambda: "opted out" in texts(slack.thread(channel, thread_ts)))
    state = await desk.gateway.runtime.store.db["channel_state"].find_one({"_id": f"twilio:sms:{CUSTOMER}"})
    assert state["opted_out"] is True


async def test_a_closed_whatsapp_window_without_a_template_tells_the_agent(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await start_twilio_desk(gateway_factory, slack, routing_file, twilio)
    channel, thread_ts = await _whatsapp_handoff(desk, twilio)
    await _close_window(desk)
    sent = len(twilio.messages_to(f"whatsapp:{CUSTOMER}"))
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "Your refund went out today")) == 200
    await eventually(lambda: "24-hour window is closed" in texts(slack.thread(channel, thread_ts)))
    assert len(twilio.messages_to(f"whatsapp:{CUSTOMER}")) == sent


async def test_a_closed_whatsapp_window_sends_the_template_and_the_reply_when_the_customer_answers(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await start_twilio_desk(gateway_factory, slack, routing_file, twilio, twilio_whatsapp_template_sid=TEMPLATE)
    channel, thread_ts = await _whatsapp_handoff(desk, twilio)
    await _close_window(desk)
    to = f"whatsapp:{CUSTOMER}"
    sent = len(twilio.messages_to(to))
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "Your refund went out today")) == 200
    await eventually(lambda: len(twilio.messages_to(to)) == sent + 1)
    template = twilio.messages_to(to)[-1]
    assert template.content_sid == TEMPLATE and template.body in (None, "")
    assert template.variables == {"1": "Dana"}
    await eventually(lambda: "approved template was sent" in texts(slack.thread(channel, thread_ts)))
    # The customer answers the template: the held reply goes at once.
    assert await whatsapp(twilio, desk.gateway, CUSTOMER, "Hi, what is it?") == 200
    await eventually(lambda: "Your refund went out today" in bodies_to(twilio, to))
    assert bodies_to(twilio, to).count("Your refund went out today") == 1


async def _whatsapp_handoff(desk, twilio: FakeTwilioApi) -> tuple[str, str]:
    assert await whatsapp(twilio, desk.gateway, CUSTOMER, HANDOFF) == 200
    store = desk.gateway.runtime.store
    await eventually(lambda: _has_conversation(store))
    conversation = await store.conversations.find_one({})
    return await desk.card(str(conversation["_id"]))


async def _has_conversation(store) -> bool:
    return await store.conversations.count_documents({}) == 1


async def _close_window(desk) -> None:
    """The customer's last message was 25 hours ago."""
    await desk.gateway.runtime.store.db["channel_state"].update_one(
        {"_id": f"twilio:whatsapp:{CUSTOMER}"}, {"$set": {"last_inbound_at": utcnow() - timedelta(hours=25)}}
    )


async def test_an_agent_file_goes_to_whatsapp_as_media_url_and_to_sms_as_a_link(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await start_twilio_desk(gateway_factory, slack, routing_file, twilio)
    channel, thread_ts = await _whatsapp_handoff(desk, twilio)
    file = slack.add_user_file("label.png", "image/png", PNG, user="U0DANA")
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "Here is the label", files=[file])) == 200
    to = f"whatsapp:{CUSTOMER}"
    await eventually(lambda: any(m.media_urls for m in twilio.messages_to(to)))
    [with_media] = [m for m in twilio.messages_to(to) if m.media_urls]
    assert with_media.body == "Here is the label" and "/files/" in with_media.media_urls[0]
    # The link is the gateway's signed one: it serves the file.
    async with desk.gateway.http.get(with_media.media_urls[0]) as response:
        assert response.status == 200 and await response.read() == PNG


async def test_garbage_gets_a_clear_4xx_and_stores_nothing(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi
) -> None:
    gw = await start_twilio(gateway_factory, twilio)
    url = messages_url(gw)
    # Signed by Twilio but not a message: no MessageSid, a malformed one, no From.
    for broken in ({"From": CUSTOMER, "Body": "hi"}, {"MessageSid": "SM123", "From": CUSTOMER, "Body": "hi"}):
        status, text, _ = await twilio.send_inbound(url, broken)
        assert status == 400 and "MessageSid" in text
    no_sender = twilio.sms_params(CUSTOMER, SMS_FROM, "hi")
    del no_sender["From"]
    assert (await twilio.send_inbound(url, no_sender))[0] == 400
    # Counts and fields that are not what they say.
    odd = twilio.sms_params(
        CUSTOMER, SMS_FROM, "Do you ship to Canada?", NumMedia="abc", MediaUrl0="file:///etc/passwd"
    )
    assert (await twilio.send_inbound(url, odd))[0] == 200
    # Far larger than any webhook Twilio sends.
    async with gw.http.post(url, data={"Body": "x" * 100_000}) as response:
        assert response.status == 413
    store = gw.runtime.store
    await eventually(lambda: len(twilio.messages_to(CUSTOMER)) >= 1)
    assert [m["text"] for m in await store.messages.find({"author": "customer"}).to_list()] == [
        "Do you ship to Canada?"
    ]


async def test_a_twilio_outage_delays_the_reply_and_never_drops_it(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi
) -> None:
    gw = await start_twilio(gateway_factory, twilio, outbox_backoff_base_seconds=0.05, outbox_backoff_max_seconds=0.2)
    twilio.fail_next(20500, status=500, times=2)
    twilio.fail_next(20429, status=429)
    assert await sms(twilio, gw, CUSTOMER, "How long does delivery take?") == 200
    outbox = gw.runtime.store.outbox
    await eventually(lambda: _all_sent(gw.runtime.store, "sms"))
    failed = [c for c in twilio.calls if c.path.endswith("/Messages.json") and c.status >= 400]
    assert len(failed) == 3
    # The reply may go as several SMS (one job each): together they took the three failures.
    jobs = await outbox.find({"channel": "sms"}).to_list()
    assert sum(j["attempts"] for j in jobs) == len(jobs) + 3
    assert len(twilio.messages_to(CUSTOMER)) == len(jobs)


async def test_a_failed_delivery_reported_by_status_callback_and_a_stop_are_told_in_the_thread(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await start_twilio_desk(gateway_factory, slack, routing_file, twilio)
    assert await sms(twilio, desk.gateway, CUSTOMER, HANDOFF) == 200
    conversation = await desk.gateway.runtime.store.conversations.find_one({})
    channel, thread_ts = await desk.card(str(conversation["_id"]))
    # Twilio accepts the reply, then the carrier cannot deliver it.
    twilio.deliver_status(CUSTOMER, "undelivered", 30003)
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "Is the parcel with you now?")) == 200
    await eventually(lambda: "handset is unreachable" in texts(slack.thread(channel, thread_ts)))
    assert "Twilio error 30003" in texts(slack.thread(channel, thread_ts))
    # The customer texts STOP: the agent learns it in the thread, once, however often Twilio sends it.
    params = twilio.sms_params(CUSTOMER, SMS_FROM, "STOP")
    assert (await twilio.send_inbound(messages_url(desk.gateway), params))[0] == 200
    assert (await twilio.send_inbound(messages_url(desk.gateway), params))[0] == 200
    await eventually(lambda: "texted stop and opted out" in texts(slack.thread(channel, thread_ts)).lower())
    assert texts(slack.thread(channel, thread_ts)).lower().count("opted out") == 1


async def test_agent_files_go_as_mms_when_sms_media_is_on(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    desk = await start_twilio_desk(gateway_factory, slack, routing_file, twilio, twilio_sms_media=True)
    assert await sms(twilio, desk.gateway, CUSTOMER, HANDOFF) == 200
    conversation = await desk.gateway.runtime.store.conversations.find_one({})
    channel, thread_ts = await desk.card(str(conversation["_id"]))
    file = slack.add_user_file("label.png", "image/png", PNG, user="U0DANA")
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "The label", files=[file])) == 200
    await eventually(lambda: any(m.media_urls for m in twilio.messages_to(CUSTOMER)))
    [mms] = [m for m in twilio.messages_to(CUSTOMER) if m.media_urls]
    assert mms.body == "The label" and mms.sid.startswith("MM") and "/files/" in mms.media_urls[0]


async def test_a_63016_reported_after_sending_is_handled_like_a_closed_window(
    gateway_factory: GatewayFactory, twilio: FakeTwilioApi, slack: FakeSlackApi, routing_file: Path
) -> None:
    """Real Twilio accepts a free-form WhatsApp message outside the window and fails it afterwards, in a
    status callback with ErrorCode 63016: the reply is sent again behind the template."""
    desk = await start_twilio_desk(gateway_factory, slack, routing_file, twilio, twilio_whatsapp_template_sid=TEMPLATE)
    channel, thread_ts = await _whatsapp_handoff(desk, twilio)
    to = f"whatsapp:{CUSTOMER}"
    twilio.deliver_status(CUSTOMER, "failed", 63016)  # our record says the window is open; WhatsApp disagrees
    assert await desk.event(desk.agent_says(channel, thread_ts, "U0DANA", "Your refund went out today")) == 200
    await eventually(lambda: any(m.content_sid == TEMPLATE for m in twilio.messages_to(to)))
    twilio.deliver_status(CUSTOMER, "delivered")
    await eventually(lambda: "approved template was sent" in texts(slack.thread(channel, thread_ts)))
    assert "24-hour window is closed" in texts(slack.thread(channel, thread_ts))  # the failure, in words
    assert await whatsapp(twilio, desk.gateway, CUSTOMER, "ok?") == 200
    await eventually(lambda: bodies_to(twilio, to).count("Your refund went out today") == 2)  # failed, then again
    await twilio.wait_for_callbacks()
    assert sum(1 for m in twilio.messages_to(to) if m.content_sid == TEMPLATE) == 1
