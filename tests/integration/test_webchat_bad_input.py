"""Hostile and broken input on the web chat: a clear error frame or 4xx, never a poisoned conversation or a 500."""

from __future__ import annotations

import json
from urllib.parse import quote

import aiohttp
import pytest

from tests.conftest import RunningGateway, receive_until

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
# Half of an emoji, as a buggy client's JSON encoder writes it: valid JSON, not valid Unicode text.
LONE = "\\ud83d"


def is_ai_message(frame: dict) -> bool:
    return frame["type"] == "message" and frame["author"] == "ai"


async def opened(gateway: RunningGateway) -> tuple[dict, aiohttp.ClientWebSocketResponse]:
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    assert (await ws.receive_json())["type"] == "status"
    return session, ws


async def test_a_lone_surrogate_in_text_gets_an_error_frame_and_writes_nothing(gateway: RunningGateway) -> None:
    _, ws = await opened(gateway)
    conversations = gateway.runtime.store.conversations
    oid = (await conversations.find_one({}))["_id"]
    await conversations.update_one({"_id": oid}, {"$set": {"status": "resolved"}})
    before = await conversations.find_one({"_id": oid})

    await ws.send_str(f'{{"type": "message", "text": "hi {LONE}", "client_msg_id": "c-1"}}')

    frame = await ws.receive_json()
    assert frame["type"] == "error" and frame["code"] == "malformed_text"
    assert frame["client_msg_id"] == "c-1"  # the client can give up on exactly this message
    assert not ws.closed
    after = await conversations.find_one({"_id": oid})
    assert after["status"] == "resolved" and after["seq"] == before["seq"]  # not reopened, no seq burned
    assert after["last_customer_message_at"] is None
    assert await gateway.runtime.store.messages.count_documents({}) == 0

    # The same socket still works.
    await ws.send_json({"type": "message", "text": "How much does shipping cost?", "client_msg_id": "c-2"})
    frames = await receive_until(ws, is_ai_message)
    assert [f["seq"] for f in frames if f["type"] == "message"] == [1, 2]
    await ws.close()


async def test_a_lone_surrogate_in_client_msg_id_is_refused_and_echoed_back_escaped(gateway: RunningGateway) -> None:
    _, ws = await opened(gateway)
    await ws.send_str(f'{{"type": "message", "text": "hello", "client_msg_id": "id-{LONE}"}}')
    raw = await ws.receive_str()
    # Escaped as \ud83d: the frame is ASCII and valid JSON, and parses back into the id the client sent.
    assert "\\ud83d" in raw
    frame = json.loads(raw)
    assert frame["code"] == "bad_frame" and frame["client_msg_id"] == "id-\ud83d"
    assert not ws.closed
    assert await gateway.runtime.store.messages.count_documents({}) == 0
    assert (await gateway.runtime.store.conversations.find_one({}))["seq"] == 0
    await ws.close()


async def test_every_refusal_of_a_readable_message_names_its_client_msg_id(gateway: RunningGateway) -> None:
    _, ws = await opened(gateway)
    for raw, code in [
        (json.dumps({"type": "message", "text": " ", "client_msg_id": "e-1"}), "empty_text"),
        (json.dumps({"type": "message", "text": "a" * 4001, "client_msg_id": "e-2"}), "text_too_long"),
        (json.dumps({"type": "message", "text": 5, "client_msg_id": "e-3"}), "bad_frame"),
    ]:
        await ws.send_str(raw)
        frame = await ws.receive_json()
        assert frame["code"] == code and frame["client_msg_id"] == json.loads(raw)["client_msg_id"]
    await ws.close()


async def test_json_nested_thousands_deep_is_a_bad_frame_not_a_dropped_socket(gateway: RunningGateway) -> None:
    _, ws = await opened(gateway)
    await ws.send_str("[" * 20_000 + "]" * 20_000)
    frame = await ws.receive_json()
    assert frame["type"] == "error" and frame["code"] == "bad_frame"
    await ws.send_str('{"type": "message", "text": ' + "[" * 20_000 + "]" * 20_000 + ', "client_msg_id": "n"}')
    assert (await ws.receive_json())["code"] == "bad_frame"
    assert not ws.closed
    await ws.close()


async def test_a_session_body_nested_thousands_deep_is_a_400(gateway: RunningGateway) -> None:
    body = '{"name": ' * 100_000 + "1" + "}" * 100_000
    async with gateway.http.post(
        f"{gateway.base_url}/webchat/sessions", data=body, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "bad_request"
    assert await gateway.runtime.store.conversations.count_documents({}) == 0


async def test_a_session_name_with_a_lone_surrogate_is_a_400(gateway: RunningGateway) -> None:
    async with gateway.http.post(
        f"{gateway.base_url}/webchat/sessions",
        data=f'{{"name": "Ada {LONE}"}}',
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
    assert await gateway.runtime.store.contacts.count_documents({}) == 0


@pytest.mark.parametrize(
    "after_seq",
    ["9223372036854775808", "99999999999999999999999", "1_0", "+3", "-1", " 3", "\u0663", "\uff13", "3.0", ""],
)
async def test_an_after_seq_that_is_not_plain_ascii_digits_in_range_closes_4400(
    gateway: RunningGateway, after_seq: str
) -> None:
    session = await gateway.new_session()
    ws = await gateway.http.ws_connect(
        f"{gateway.base_url}/webchat/ws?token={session['token']}&after_seq={quote(after_seq)}"
    )
    closing = await ws.receive()
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4400
    assert "after_seq" in closing.extra


async def test_the_largest_after_seq_is_accepted(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"], after_seq=2**63 - 1)
    assert (await ws.receive_json()) == {"type": "status", "status": "ai"}
    await ws.close()


def multipart(boundary: str, disposition: bytes, data: bytes = PNG, closing: str | None = None) -> bytes:
    return (
        f"--{boundary}\r\n".encode()
        + b"Content-Disposition: form-data; "
        + disposition
        + b"\r\nContent-Type: image/png\r\n\r\n"
        + data
        + f"\r\n--{closing or boundary}--\r\n".encode()
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (multipart("xyz", b'name="file"; filename="a\x00b.png"'), "multipart/form-data; boundary=xyz"),
        (multipart("xyz", b'name="file"; filename="a\r\nb.png"'), "multipart/form-data; boundary=xyz"),
        (multipart("xyz", b'name="file"; filename="a\nb.png"'), "multipart/form-data; boundary=xyz"),
        (multipart("xyz", b'name="file"; filename="a\rb.png"'), "multipart/form-data; boundary=xyz"),
        (multipart("xyz", b'name="file"; filename="a%00b%0D%0A.png"'), "multipart/form-data; boundary=xyz"),
        (multipart("xyz", b'name="file"; filename="caf\xe9.png"'), "multipart/form-data; boundary=xyz"),
        (multipart("xyz", b'name="file"; filename="a.png"'), "multipart/form-data; boundary=abc"),
        (multipart("xyz", b'name="file"; filename="a.png"', closing="nope"), "multipart/form-data; boundary=xyz"),
        (multipart("xyz", b'name="file"; filename="a.png"'), "multipart/form-data"),
        (multipart("xyz", b'name="file"; filename="a.png"'), 'multipart/form-data; boundary=""'),
        (multipart("x" * 200, b'name="file"; filename="a.png"'), "multipart/form-data; boundary=" + "x" * 200),
        (b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n', "multipart/form-data; boundary=xyz"),
        (b"garbage", "multipart/form-data; boundary=xyz"),
    ],
)
async def test_broken_multipart_uploads_get_a_4xx_or_a_clean_name_never_a_500(
    gateway: RunningGateway, body: bytes, content_type: str
) -> None:
    session = await gateway.new_session()
    async with gateway.http.post(
        f"{gateway.base_url}/webchat/files",
        data=body,
        headers={"Authorization": f"Bearer {session['token']}", "Content-Type": content_type},
    ) as response:
        answer = await response.json()
        assert response.status < 500, answer
    if response.status == 201:
        # Stored under a name fit to show: no control characters, valid UTF-8.
        assert not any(c in answer["name"] for c in "\x00\r\n")
        answer["name"].encode("utf-8")
    else:
        assert 400 <= response.status < 500 and answer["error"] in ("bad_request", "empty_file")
