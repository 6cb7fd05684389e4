"""The Twilio REST API / webhook fake, proven against the real ``twilio`` client and RequestValidator."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.fakes.twilio_api import SIGNATURE_HEADER, FakeTwilioApi, num_segments

SID = "AC" + "a1" * 16
TOKEN = "b2" * 16
SHOP = "+15005550006"
CUSTOMER = "+14155550123"
WA_SHOP = f"whatsapp:{SHOP}"
WA_CUSTOMER = f"whatsapp:{CUSTOMER}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilioApi]:
    async with FakeTwilioApi(SID, TOKEN, callback_delay=0) as server:
        yield server


def client_for(fake: FakeTwilioApi, token: str = TOKEN) -> Client:
    client = Client(SID, token, http_client=AsyncTwilioHttpClient())
    client.api.base_url = fake.url
    return client


@pytest.fixture
async def client(fake: FakeTwilioApi) -> AsyncIterator[Client]:
    client = client_for(fake)
    try:
        yield client
    finally:
        await client.http_client.close()


class Receiver:
    """A tiny application endpoint: records Twilio's POSTs, answers 204 if the signature validates, else 403."""

    def __init__(self, token: str = TOKEN) -> None:
        self.validator = RequestValidator(token)
        self.requests: list[tuple[str, dict[str, str], str | None, bool]] = []
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        signature = request.headers.get(SIGNATURE_HEADER)
        # The form as a MultiDict, so repeated keys are validated the way Twilio signs them (getall).
        valid = signature is not None and self.validator.validate(str(request.url), form, signature)
        self.requests.append((str(request.url), params, signature, valid))
        return web.Response(status=204) if valid else web.Response(status=403, text="bad signature")

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    rec.server = TestServer(app, host="127.0.0.1")
    await rec.server.start_server()
    try:
        yield rec
    finally:
        await rec.server.close()


def basic_auth(login: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(login, password)}


async def dead_url() -> str:
    """A URL on a port that was just listening and is closed now."""
    server = TestServer(web.Application(), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/gone"))
    await server.close()
    return url


async def test_create_sms_returns_a_message_resource(fake: FakeTwilioApi, client: Client) -> None:
    message = await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="Hello from support")
    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.account_sid == SID
    assert (message.to, message.from_, message.body) == (CUSTOMER, SHOP, "Hello from support")
    assert message.status == "queued"
    assert (message.num_segments, message.num_media) == ("1", "0")
    assert message.direction == "outbound-api"
    assert isinstance(message.date_created, datetime) and message.date_created.tzinfo is not None
    assert message.uri == f"/2010-04-01/Accounts/{SID}/Messages/{message.sid}.json"
    assert message.subresource_uris == {"media": f"/2010-04-01/Accounts/{SID}/Messages/{message.sid}/Media.json"}
    assert message.error_code is None and message.error_message is None and message.price is None
    assert message.api_version == "2010-04-01" and message.messaging_service_sid is None

    [sent] = fake.messages
    assert (sent.sid, sent.to, sent.from_, sent.body, sent.media_urls) == (
        message.sid,
        CUSTOMER,
        SHOP,
        "Hello from support",
        [],
    )
    assert sent.params["To"] == [CUSTOMER] and sent.status_callback is None
    assert [(c.method, c.path, c.status, c.authorized) for c in fake.calls] == [
        ("POST", f"/2010-04-01/Accounts/{SID}/Messages.json", 201, True)
    ]

    await fake.wait_for_callbacks()  # no StatusCallback: the status still progresses, visible by fetch
    fetched = await client.messages(message.sid).fetch_async()
    assert fetched.status == "delivered" and fetched.date_sent is not None
    assert sent.status_history == ["sent", "delivered"]


async def test_media_template_and_messaging_service(fake: FakeTwilioApi, client: Client) -> None:
    urls = ["https://example.com/a.png", "https://example.com/b.pdf"]
    mms = await client.messages.create_async(to=CUSTOMER, from_=SHOP, media_url=urls)
    assert re.fullmatch(r"MM[0-9a-f]{32}", mms.sid) and mms.num_media == "2" and mms.body == ""
    assert fake.messages[0].media_urls == urls

    template = await client.messages.create_async(
        to=WA_CUSTOMER,
        messaging_service_sid="MG" + "c3" * 16,
        content_sid="HX" + "d4" * 16,
        content_variables='{"1": "Ada", "2": "#1234"}',
    )
    assert template.status == "accepted" and template.from_ is None  # the service picks the sender later
    assert template.messaging_service_sid == "MG" + "c3" * 16
    sent = fake.message(template.sid)
    assert sent is not None and sent.content_sid == "HX" + "d4" * 16
    assert sent.variables == {"1": "Ada", "2": "#1234"} and sent.channel == "whatsapp"

    with pytest.raises(TwilioRestException) as bad_json:
        await client.messages.create_async(to=CUSTOMER, from_=SHOP, content_sid="HX" + "d4" * 16, content_variables="{")
    assert bad_json.value.code == 21656


async def test_segments_are_counted_like_twilio(client: Client) -> None:
    assert (await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="a" * 160)).num_segments == "1"
    assert (await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="a" * 161)).num_segments == "2"
    assert (await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="é" * 70)).num_segments == "1"
    assert (await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="ł" * 71)).num_segments == "2"
    assert num_segments("[" * 80) == 1 and num_segments("[" * 81) == 2  # extension chars cost two septets
    assert num_segments("😀" * 35) == 1 and num_segments("😀" * 36) == 2  # UTF-16 surrogate pairs


async def test_wrong_credentials_answer_20003(fake: FakeTwilioApi) -> None:
    bad = client_for(fake, token="wrong")
    try:
        with pytest.raises(TwilioRestException) as exc:
            await bad.messages.create_async(to=CUSTOMER, from_=SHOP, body="hi")
    finally:
        await bad.http_client.close()
    assert (exc.value.status, exc.value.code) == (401, 20003)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.url}/2010-04-01/Accounts/{SID}/Messages.json", data={"To": CUSTOMER}) as response,
    ):
        assert response.status == 401
        assert await response.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }
    assert fake.messages == [] and [c.authorized for c in fake.calls] == [False, False]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "", "from_": SHOP, "body": "hi"}, 21604),
        ({"to": CUSTOMER, "body": "hi"}, 21603),
        ({"to": CUSTOMER, "from_": SHOP}, 21602),
        ({"to": "12345", "from_": SHOP, "body": "hi"}, 21211),
        ({"to": WA_CUSTOMER, "from_": SHOP, "body": "hi"}, 21910),
        ({"to": CUSTOMER, "from_": SHOP, "body": "x" * 1601}, 21617),
    ],
)
async def test_invalid_requests(fake: FakeTwilioApi, client: Client, kwargs: dict[str, str], code: int) -> None:
    with pytest.raises(TwilioRestException) as exc:
        await client.messages.create_async(**kwargs)
    assert (exc.value.status, exc.value.code) == (400, code)
    assert fake.messages == [] and fake.calls[-1].status == 400


async def test_fail_next_scripts_errors(fake: FakeTwilioApi, client: Client) -> None:
    fake.fail_next(20500, 500, times=2)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as exc:
            await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="hi")
        assert (exc.value.status, exc.value.code) == (500, 20500)
    assert (await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="hi")).status == "queued"

    fake.fail_next(30007, message="Message filtered")
    with pytest.raises(TwilioRestException) as filtered:
        await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="hi")
    assert (filtered.value.status, filtered.value.code) == (400, 30007) and "Message filtered" in filtered.value.msg

    fake.fail_next(20429, 429, retry_after=3)
    fake.fail_next(20503, 503)
    url = f"{fake.url}/2010-04-01/Accounts/{SID}/Messages.json"
    async with (
        aiohttp.ClientSession(headers=basic_auth(SID, TOKEN)) as http,
        http.post(url, data={"To": CUSTOMER, "From": SHOP, "Body": "x"}) as response,
    ):
        assert response.status == 429 and response.headers["Retry-After"] == "3"
        assert (await response.json())["more_info"] == "https://www.twilio.com/docs/errors/20429"
    with pytest.raises(TwilioRestException) as unavailable:
        await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="hi")
    assert (unavailable.value.status, unavailable.value.code) == (503, 20503)
    assert len(fake.messages) == 1


async def test_refuse_until_allowed(fake: FakeTwilioApi, client: Client) -> None:
    fake.refuse(CUSTOMER, 21610)
    for to in (CUSTOMER, WA_CUSTOMER):
        with pytest.raises(TwilioRestException) as exc:
            await client.messages.create_async(to=to, from_=WA_SHOP if to == WA_CUSTOMER else SHOP, body="hi")
        assert (exc.value.status, exc.value.code) == (400, 21610)
        assert "Attempt to send to unsubscribed recipient" in exc.value.msg
    fake.refuse(WA_CUSTOMER, 63016)
    fake.allow(CUSTOMER)
    assert (await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="hi")).status == "queued"
    with pytest.raises(TwilioRestException) as window:
        await client.messages.create_async(to=WA_CUSTOMER, from_=WA_SHOP, body="hi")
    assert window.value.code == 63016 and "outside the allowed window" in window.value.msg
    assert [m.to for m in fake.messages] == [CUSTOMER]


async def test_status_callbacks_are_signed(fake: FakeTwilioApi, client: Client, receiver: Receiver) -> None:
    callback = receiver.url("/twilio/status?channel=sms")
    message = await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="hi", status_callback=callback)
    await fake.wait_for_callbacks()
    assert [params["MessageStatus"] for _, params, _, _ in receiver.requests] == ["sent", "delivered"]
    assert all(valid for *_, valid in receiver.requests)
    url, params, signature, _ = receiver.requests[0]
    assert url == callback and RequestValidator(TOKEN).validate(callback, params, signature)
    assert params == {
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "AccountSid": SID,
        "From": SHOP,
        "To": CUSTOMER,
        "MessageStatus": "sent",
        "SmsStatus": "sent",
        "ApiVersion": "2010-04-01",
    }
    assert [r.status for r in fake.callback_results] == [204, 204]
    assert fake.message(message.sid).status == "delivered"  # type: ignore[union-attr]


async def test_scripted_outcomes_and_read_receipts(fake: FakeTwilioApi, client: Client, receiver: Receiver) -> None:
    callback = receiver.url("/status")
    fake.deliver_status(CUSTOMER)  # undelivered, 30003
    fake.deliver_status("+14155550999", "failed", 30008)
    fake.send_read_receipts = True
    await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="a", status_callback=callback)
    await client.messages.create_async(to="+14155550999", from_=SHOP, body="b", status_callback=callback)
    wa = await client.messages.create_async(
        to="whatsapp:+14155550777", messaging_service_sid="MG" + "c3" * 16, body="c", status_callback=callback
    )
    await fake.wait_for_callbacks()
    seen = [(p["To"], p["MessageStatus"], p.get("ErrorCode")) for _, p, _, _ in receiver.requests]
    assert sorted(seen, key=lambda s: (s[0], ["sent", "delivered", "read", "undelivered", "failed"].index(s[1]))) == [
        (CUSTOMER, "sent", None),
        (CUSTOMER, "undelivered", "30003"),
        ("+14155550999", "failed", "30008"),
        ("whatsapp:+14155550777", "sent", None),
        ("whatsapp:+14155550777", "delivered", None),
        ("whatsapp:+14155550777", "read", None),
    ]
    assert all(valid for *_, valid in receiver.requests)
    wa_params = next(p for _, p, _, _ in receiver.requests if p["To"].startswith("whatsapp:"))
    assert wa_params["From"] == f"whatsapp:{fake.service_from}" and wa_params["MessagingServiceSid"] == "MG" + "c3" * 16
    fetched = await client.messages(fake.messages[0].sid).fetch_async()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)
    assert (await client.messages(wa.sid).fetch_async()).from_ == f"whatsapp:{fake.service_from}"

    with pytest.raises(TwilioRestException) as missing:
        await client.messages("SM" + "0" * 32).fetch_async()
    assert (missing.value.status, missing.value.code) == (404, 20404)


async def test_post_status_forged_and_unreachable(fake: FakeTwilioApi, client: Client, receiver: Receiver) -> None:
    await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="hi")
    await fake.wait_for_callbacks()
    params = fake.status_params(fake.messages[0], "undelivered", 30005)
    url = receiver.url("/status")
    assert (await fake.post_status(url, params)).status == 204
    assert (await fake.post_status(url, params, forge=True)).status == 403
    unsigned = await fake.post_status(url, params, omit_signature=True)
    assert unsigned.status == 403 and unsigned.signature is None
    assert [valid for *_, valid in receiver.requests] == [True, False, False]
    assert receiver.requests[0][1]["ErrorCode"] == "30005"

    # A callback URL nobody listens on: recorded with the error, the progression carries on.
    dead = await dead_url()
    await client.messages.create_async(to=CUSTOMER, from_=SHOP, body="hi", status_callback=dead)
    await fake.wait_for_callbacks()
    failed = [r for r in fake.callback_results if r.url == dead]
    assert len(failed) == 2 and all(r.status is None and r.error for r in failed)
    assert fake.messages[-1].status == "delivered"


async def test_media_needs_basic_auth(fake: FakeTwilioApi) -> None:
    url = fake.add_media(b"\x89PNG fake", "image/png")
    assert re.fullmatch(
        rf"{re.escape(fake.url)}/2010-04-01/Accounts/{SID}/Messages/MM[0-9a-f]{{32}}/Media/ME[0-9a-f]{{32}}", url
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 401 and (await response.json())["code"] == 20003
        async with http.get(url, headers=basic_auth(SID, "nope")) as response:
            assert response.status == 401
        assert fake.media_gets[url] == 0
        for _ in range(2):
            async with http.get(url, headers=basic_auth(SID, TOKEN)) as response:
                assert response.status == 200 and response.content_type == "image/png"
                assert await response.read() == b"\x89PNG fake"
        async with http.get(url[:-4] + "0000", headers=basic_auth(SID, TOKEN)) as response:
            assert response.status == 404 and (await response.json())["code"] == 20404
    assert fake.media_gets[url] == 2
    sid = url.split("/Messages/")[1].split("/")[0]
    assert fake.add_media(b"%PDF", "application/pdf", message_sid=sid).startswith(url.split("/Media/")[0])


async def test_send_inbound_signatures(fake: FakeTwilioApi, receiver: Receiver) -> None:
    url = receiver.url("/twilio/sms")
    params = fake.sms_params(CUSTOMER, SHOP, "Where is my order?")
    status, body, headers = await fake.send_inbound(url, params)
    assert (status, body) == (204, "")
    assert isinstance(headers, dict)
    forged = await fake.send_inbound(url, params, forge=True)
    assert forged[:2] == (403, "bad signature")
    assert (await fake.send_inbound(url, params, omit_signature=True))[0] == 403
    proxied = receiver.url("/elsewhere")  # signed over the public URL, delivered to another
    assert (await fake.send_inbound(url, params, signature_url=proxied))[0] == 403
    assert [valid for *_, valid in receiver.requests] == [True, False, False, False]
    assert receiver.requests[2][2] is None
    received, signature = receiver.requests[3][1], receiver.requests[3][2]
    assert RequestValidator(TOKEN).validate(proxied, received, signature)
    assert not RequestValidator(TOKEN).validate(url, received, signature)
    assert not RequestValidator(TOKEN).validate(url, receiver.requests[1][1], receiver.requests[1][2])
    assert received == params and len(fake.inbound_results) == 4

    # Repeated keys are sent and signed as Twilio's validator expects (MultiDict getall).
    await fake.send_inbound(url, {"Body": "x", "Tag": ["b", "a"]})
    assert receiver.requests[-1][3] is True
    assert fake.inbound_results[-1].params == {"Body": ["x"], "Tag": ["b", "a"]}
    with pytest.raises(aiohttp.ClientError):  # unlike status callbacks, a refused connection raises
        await fake.send_inbound(await dead_url(), params)


def test_inbound_parameter_builders(fake: FakeTwilioApi) -> None:
    sms = fake.sms_params(CUSTOMER, SHOP, "hi", FromCountry="US")
    assert re.fullmatch(r"SM[0-9a-f]{32}", sms["MessageSid"])
    assert sms["SmsSid"] == sms["SmsMessageSid"] == sms["MessageSid"]
    assert sms | {"MessageSid": "", "SmsSid": "", "SmsMessageSid": ""} == {
        "MessageSid": "",
        "SmsSid": "",
        "SmsMessageSid": "",
        "AccountSid": SID,
        "From": CUSTOMER,
        "To": SHOP,
        "Body": "hi",
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        "FromCountry": "US",
    }

    photo = fake.add_media(b"jpg", "image/jpeg")
    wa = fake.whatsapp_params(CUSTOMER, SHOP, "look", profile_name="Cy", media=[(photo, "image/jpeg")])
    assert re.fullmatch(r"MM[0-9a-f]{32}", wa["MessageSid"])
    assert (wa["From"], wa["To"], wa["WaId"], wa["ProfileName"]) == (WA_CUSTOMER, WA_SHOP, "14155550123", "Cy")
    assert (wa["NumMedia"], wa["MediaUrl0"], wa["MediaContentType0"], wa["MessageType"]) == (
        "1",
        photo,
        "image/jpeg",
        "image",
    )

    where = fake.whatsapp_params(
        WA_CUSTOMER,
        WA_SHOP,
        latitude=52.52,
        longitude=13.405,
        address="Alexanderplatz",
        label="Shop",
        message_sid="SMx",
    )
    assert (where["MessageSid"], where["From"], where["Body"], where["MessageType"]) == (
        "SMx",
        WA_CUSTOMER,
        "",
        "location",
    )
    assert (where["Latitude"], where["Longitude"], where["Address"], where["Label"]) == (
        "52.52",
        "13.405",
        "Alexanderplatz",
        "Shop",
    )
    assert "MessagingServiceSid" not in where
    assert fake.sms_params(CUSTOMER, SHOP, "x", messaging_service_sid="MG1")["MessagingServiceSid"] == "MG1"
