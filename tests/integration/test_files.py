"""Files against the real database and real sockets: the store, signed links, remote fetches, web chat uploads."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from bson import ObjectId

from gateway.files import FileFetchError, FileRejected, FileStore
from gateway.models import Attachment
from tests.conftest import GatewayFactory, RunningGateway, receive_until

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64


def local(gateway: RunningGateway, url: str) -> str:
    """The signed URL names settings.base_url; the test server listens on another port."""
    parts = urlsplit(url)
    return f"{gateway.base_url}{parts.path}?{parts.query}"


def store(gateway: RunningGateway) -> FileStore:
    assert gateway.runtime.files is not None
    return gateway.runtime.files


async def upload(
    gateway: RunningGateway,
    token: str | None,
    data: bytes,
    *,
    name: str = "photo.png",
    content_type: str = "image/png",
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=content_type)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with gateway.http.post(f"{gateway.base_url}/webchat/files", data=form, headers=headers) as response:
        await response.read()
        return response


# the store


async def test_put_stores_the_bytes_with_their_metadata_and_returns_a_signed_attachment(
    gateway: RunningGateway,
) -> None:
    files = store(gateway)
    attachment = await files.put(
        PNG, name="../receipts/scan.png", content_type="image/png", conversation_id="c-1", source="customer"
    )
    assert attachment.name == "scan.png"
    assert attachment.content_type == "image/png" and attachment.size == len(PNG)
    assert ObjectId.is_valid(attachment.file_id)
    assert attachment.url == (
        f"http://127.0.0.1:8080/files/{attachment.file_id}/scan.png?sig={files.signature(attachment.file_id)}"
    )
    assert len(files.signature(attachment.file_id)) == 32

    doc, data = await files.read(attachment.file_id)
    assert data == PNG
    assert doc["filename"] == "scan.png" and doc["length"] == len(PNG)
    assert doc["metadata"] == {
        "conversation_id": "c-1",
        "source": "customer",
        "content_type": "image/png",
        "sha256": hashlib.sha256(PNG).hexdigest(),
    }
    stored = await gateway.runtime.store.db["files.files"].find_one({"_id": ObjectId(attachment.file_id)})
    assert stored["metadata"]["conversation_id"] == "c-1"


async def test_put_refuses_before_storing_anything(gateway: RunningGateway) -> None:
    files = store(gateway)
    with pytest.raises(FileRejected) as caught:
        await files.put(EXE, name="photo.png", content_type="image/png", conversation_id="c-1", source="agent")
    assert caught.value.code == "unsupported_type"
    assert await gateway.runtime.store.db["files.files"].count_documents({}) == 0
    with pytest.raises(FileRejected) as caught:
        await files.read(str(ObjectId()))
    assert caught.value.code == "not_found"


async def test_links_use_the_public_base_url(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(public_base_url="https://support.example.com/")
    attachment = await store(gw).put(
        PDF, name="label.pdf", content_type="application/pdf", conversation_id="c", source="agent"
    )
    assert attachment.url.startswith(f"https://support.example.com/files/{attachment.file_id}/label.pdf?sig=")


# serving


async def test_a_signed_link_serves_the_file_with_safe_headers(gateway: RunningGateway) -> None:
    attachment = await store(gateway).put(
        PNG, name="Quittung für Ada.png", content_type="image/png", conversation_id="c", source="customer"
    )
    async with gateway.http.get(local(gateway, attachment.url)) as response:
        assert response.status == 200
        assert await response.read() == PNG
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["Content-Disposition"] == (
            "inline; filename=\"Quittung f_r Ada.png\"; filename*=UTF-8''Quittung%20f%C3%BCr%20Ada.png"
        )
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "sandbox"
        assert response.headers["Cache-Control"] == "private, max-age=86400"


async def test_text_is_served_as_a_download_with_its_charset(gateway: RunningGateway) -> None:
    html_ish = b"<script>alert(1)</script> plain text, really\n"
    attachment = await store(gateway).put(
        html_ish, name="notes.txt", content_type="text/plain", conversation_id="c", source="agent"
    )
    async with gateway.http.get(local(gateway, attachment.url)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["Content-Disposition"].startswith("attachment; ")
        assert await response.read() == html_ish


async def test_bad_signatures_are_refused_and_unknown_files_are_not_found(gateway: RunningGateway) -> None:
    files = store(gateway)
    attachment = await files.put(PNG, name="a.png", content_type="image/png", conversation_id="c", source="agent")
    base = f"{gateway.base_url}/files/{attachment.file_id}/a.png"
    good = files.signature(attachment.file_id)
    for query in ("", "?sig=", f"?sig={good[:-1]}", f"?sig={good[:-1]}A" if good[-1] != "A" else f"?sig={good[:-1]}B"):
        async with gateway.http.get(base + query) as response:
            assert response.status == 403, query
    # Another file's signature does not open this one.
    other = await files.put(PDF, name="b.pdf", content_type="application/pdf", conversation_id="c", source="agent")
    async with gateway.http.get(f"{base}?sig={files.signature(other.file_id)}") as response:
        assert response.status == 403
    # The name in the path is cosmetic: the stored name is what the download is called.
    async with gateway.http.get(f"{gateway.base_url}/files/{attachment.file_id}/evil.exe?sig={good}") as response:
        assert response.status == 200
        assert "a.png" in response.headers["Content-Disposition"]
        assert "evil" not in response.headers["Content-Disposition"]
    missing = str(ObjectId())
    async with gateway.http.get(f"{gateway.base_url}/files/{missing}/x.png?sig={files.signature(missing)}") as response:
        assert response.status == 404
    async with gateway.http.get(f"{gateway.base_url}/files/not-an-id/x.png?sig={files.signature('not-an-id')}") as r:
        assert r.status == 404


# read_attachment


@pytest.fixture
async def remote() -> AsyncIterator[str]:
    """A provider's file server: plain, chunked without a length, endless, failing and slow files."""

    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]), content_type="application/octet-stream")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(int(request.match_info["n"])):
            await response.write(b"y" * 1000)
        await response.write_eof()
        return response

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        while True:  # until the client hangs up
            await response.write(b"z" * 65536)

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=b"late")

    async def needs_auth(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer xoxb-test":
            return web.Response(status=401)
        return web.Response(body=b"secret file")

    app = web.Application()
    app.router.add_get("/sized/{n}", sized)
    app.router.add_get("/chunked/{n}", chunked)
    app.router.add_get("/endless", endless)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/auth", needs_auth)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def remote_file(url: str) -> Attachment:
    return Attachment(name="remote.bin", content_type="application/octet-stream", url=url)


async def test_read_attachment_fetches_over_http_within_the_cap(gateway: RunningGateway, remote: str) -> None:
    files = store(gateway)
    assert await files.read_attachment(remote_file(f"{remote}/sized/5000"), max_bytes=5000) == b"x" * 5000
    assert await files.read_attachment(remote_file(f"{remote}/chunked/3"), max_bytes=5000) == b"y" * 3000
    got = await files.read_attachment(
        remote_file(f"{remote}/auth?token=abc"), max_bytes=100, headers={"Authorization": "Bearer xoxb-test"}
    )
    assert got == b"secret file"


async def test_read_attachment_enforces_the_cap_with_or_without_a_length(gateway: RunningGateway, remote: str) -> None:
    files = store(gateway)
    for path in ("/sized/5001", "/chunked/6"):
        with pytest.raises(FileRejected) as caught:
            await files.read_attachment(remote_file(remote + path), max_bytes=5000)
        assert caught.value.code == "file_too_large", path
    # An endless body is abandoned at the cap instead of filling memory.
    async with asyncio.timeout(10):
        with pytest.raises(FileRejected) as caught:
            await files.read_attachment(remote_file(f"{remote}/endless"), max_bytes=200_000)
    assert caught.value.code == "file_too_large"


async def test_read_attachment_reports_http_errors_and_timeouts_clearly(gateway: RunningGateway, remote: str) -> None:
    files = store(gateway)
    with pytest.raises(FileFetchError) as caught:
        await files.read_attachment(remote_file(f"{remote}/status/404?token=hidden"), max_bytes=100)
    assert caught.value.permanent is True
    assert caught.value.reason == f"{remote}/status/404: HTTP 404 Not Found"  # no query string: it may hold tokens
    with pytest.raises(FileFetchError) as caught:
        await files.read_attachment(remote_file(f"{remote}/status/503"), max_bytes=100)
    assert caught.value.permanent is False and "HTTP 503" in caught.value.reason
    with pytest.raises(FileFetchError) as caught:
        await files.read_attachment(remote_file(f"{remote}/auth"), max_bytes=100)
    assert caught.value.permanent is True and "HTTP 401" in caught.value.reason
    with pytest.raises(FileFetchError) as caught:
        await files.read_attachment(remote_file(f"{remote}/slow"), max_bytes=100, timeout=0.3)
    assert caught.value.permanent is False and "0.3 s" in caught.value.reason
    with pytest.raises(FileFetchError) as caught:
        await files.read_attachment(remote_file("file:///etc/passwd"), max_bytes=100)
    assert caught.value.permanent is True


async def test_read_attachment_reads_own_files_from_the_store(gateway: RunningGateway) -> None:
    files = store(gateway)
    attachment = await files.put(PDF, name="a.pdf", content_type="application/pdf", conversation_id="c", source="agent")
    assert await files.read_attachment(attachment, max_bytes=len(PDF)) == PDF
    with pytest.raises(FileRejected) as caught:
        await files.read_attachment(attachment, max_bytes=len(PDF) - 1)
    assert caught.value.code == "file_too_large"


# web chat uploads


async def test_a_customer_uploads_a_file_and_gets_its_link(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="C:\\fakepath\\broken-mug.png", content_type="image/png")
    async with gateway.http.post(
        f"{gateway.base_url}/webchat/files", data=form, headers={"Authorization": f"Bearer {session['token']}"}
    ) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    assert body["name"] == "broken-mug.png"
    assert body["content_type"] == "image/png" and body["size"] == len(PNG)
    assert set(body) == {"file_id", "name", "content_type", "size", "url"}
    doc, data = await store(gateway).read(body["file_id"])
    assert data == PNG
    assert doc["metadata"]["conversation_id"] == session["conversation_id"]
    assert doc["metadata"]["source"] == "customer"
    async with gateway.http.get(local(gateway, body["url"])) as served:
        assert served.status == 200 and await served.read() == PNG


async def test_refused_uploads_say_why(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(files_max_mb=0.01)  # 10485 bytes
    token = (await gw.new_session())["token"]

    response = await upload(gw, token, EXE, name="photo.exe", content_type="application/x-msdownload")
    assert response.status == 415
    assert await response.json() == {
        "error": "unsupported_type",
        "message": "photo.exe: type application/x-msdownload is not accepted",
    }
    response = await upload(gw, token, PDF, name="photo.png", content_type="image/png")
    assert response.status == 415 and (await response.json())["error"] == "type_mismatch"
    response = await upload(gw, token, b"a" * 20_000, name="big.txt", content_type="text/plain")
    assert response.status == 413
    assert await response.json() == {"error": "file_too_large", "message": "big.txt: files can be at most 10 KB"}
    response = await upload(gw, token, b"", name="empty.png")
    assert response.status == 400 and (await response.json())["error"] == "empty_file"
    assert await gw.runtime.store.db["files.files"].count_documents({}) == 0


async def test_a_declared_length_over_the_limit_is_refused_before_reading(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(files_max_mb=0.01)
    token = (await gw.new_session())["token"]
    async with gw.http.post(
        f"{gw.base_url}/webchat/files",
        data=b"x" * 200_000,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=b"},
    ) as response:
        assert response.status == 413
        assert (await response.json())["error"] == "file_too_large"


async def test_uploads_need_a_valid_session_token_and_a_file_field(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    for token in (None, "junk", session["token"] + "x"):
        response = await upload(gateway, token, PNG)
        assert response.status == 401, token
    headers = {"Authorization": f"Bearer {session['token']}"}
    async with gateway.http.post(f"{gateway.base_url}/webchat/files", json={"file": "x"}, headers=headers) as r:
        assert r.status == 400 and (await r.json())["error"] == "bad_request"
    form = aiohttp.FormData()
    form.add_field("document", PNG, filename="a.png", content_type="image/png")
    async with gateway.http.post(f"{gateway.base_url}/webchat/files", data=form, headers=headers) as r:
        assert r.status == 400 and (await r.json())["error"] == "bad_request"


async def test_uploads_answer_cors_and_publish_their_policy(gateway: RunningGateway) -> None:
    origin = {"Origin": "https://shop.example.com", "Access-Control-Request-Headers": "authorization"}
    async with gateway.http.options(f"{gateway.base_url}/webchat/files", headers=origin) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
    async with gateway.http.get(f"{gateway.base_url}/webchat/files", headers=origin) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
        policy = await response.json()
    assert policy["max_bytes"] == 10 * 1024 * 1024
    assert policy["max_attachments"] == 5
    assert "image/png" in policy["allowed_types"] and "application/pdf" in policy["allowed_types"]


async def test_uploads_from_an_origin_outside_the_allow_list_are_refused(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(webchat_allowed_origins="https://shop.example.com")
    token = (await gw.new_session())["token"]
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="a.png", content_type="image/png")
    async with gw.http.post(
        f"{gw.base_url}/webchat/files",
        data=form,
        headers={"Authorization": f"Bearer {token}", "Origin": "https://evil.example.net"},
    ) as response:
        assert response.status == 403


async def test_uploads_are_rate_limited_per_conversation(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    statuses = [(await upload(gateway, session["token"], PNG)).status for _ in range(11)]
    assert statuses == [201] * 10 + [429]
    other = await gateway.new_session()
    assert (await upload(gateway, other["token"], PNG)).status == 201


# attachments on web chat messages


async def test_a_message_with_an_attachment_is_stored_acknowledged_and_replayed(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    response = await upload(gateway, session["token"], PNG, name="broken-mug.png")
    assert response.status == 201
    uploaded = await response.json()
    file_id = uploaded["file_id"]

    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    await ws.send_json({"type": "message", "text": "", "client_msg_id": "f-1", "attachments": [{"file_id": file_id}]})
    frames = await receive_until(ws, lambda f: f["type"] == "message" and f.get("client_msg_id") == "f-1")
    mine = frames[-1]
    assert mine["author"] == "customer" and mine["text"] == ""
    assert len(mine["attachments"]) == 1
    shown = mine["attachments"][0]
    assert shown["name"] == "broken-mug.png" and shown["content_type"] == "image/png"
    assert shown["url"] == uploaded["url"] == store(gateway).signed_url(file_id, "broken-mug.png")
    await gateway.runtime.ingest.drain()
    await ws.close()

    stored = await gateway.runtime.store.messages.find_one({"client_msg_id": "f-1"})
    assert stored["attachments"] == [
        {
            "name": "broken-mug.png",
            "content_type": "image/png",
            "url": shown["url"],
            "size": len(PNG),
            "file_id": file_id,
        }
    ]

    replay = await gateway.connect(session["token"])
    frames = await receive_until(replay, lambda f: f["type"] == "message" and f.get("client_msg_id") == "f-1")
    assert frames[-1]["attachments"] == mine["attachments"]
    await replay.close()
    async with gateway.http.get(local(gateway, shown["url"])) as served:
        assert served.status == 200 and await served.read() == PNG


async def test_text_and_several_attachments_travel_together(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    ids = []
    for data, name, kind in ((PNG, "a.png", "image/png"), (PDF, "b.pdf", "application/pdf")):
        response = await upload(gateway, session["token"], data, name=name, content_type=kind)
        assert response.status == 201
    async for doc in gateway.runtime.store.db["files.files"].find({}).sort("_id", 1):
        ids.append(str(doc["_id"]))
    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    await ws.send_json(
        {
            "type": "message",
            "text": "My order arrived broken, photo and invoice attached",
            "client_msg_id": "f-2",
            "attachments": [{"file_id": i} for i in ids],
        }
    )
    frames = await receive_until(ws, lambda f: f["type"] == "message" and f.get("client_msg_id") == "f-2")
    assert [a["name"] for a in frames[-1]["attachments"]] == ["a.png", "b.pdf"]
    assert frames[-1]["text"] == "My order arrived broken, photo and invoice attached"
    await gateway.runtime.ingest.drain()
    await ws.close()


async def test_another_conversations_file_cannot_be_attached(gateway: RunningGateway) -> None:
    alice = await gateway.new_session()
    bob = await gateway.new_session()
    assert (await upload(gateway, alice["token"], PNG)).status == 201
    alice_file = str((await gateway.runtime.store.db["files.files"].find_one({}))["_id"])

    ws = await gateway.connect(bob["token"])
    await ws.receive_json()
    for client_msg_id, file_id in (("b-1", alice_file), ("b-2", str(ObjectId())), ("b-3", "not-an-id")):
        await ws.send_json(
            {"type": "message", "text": "look", "client_msg_id": client_msg_id, "attachments": [{"file_id": file_id}]}
        )
        frame = await ws.receive_json()
        assert frame["type"] == "error" and frame["code"] == "bad_attachment", frame
        assert frame["client_msg_id"] == client_msg_id
        assert alice["conversation_id"] not in frame["message"]
    assert await gateway.runtime.store.messages.count_documents({}) == 0
    await ws.close()


async def test_malformed_attachment_lists_are_bad_frames(gateway: RunningGateway) -> None:
    session = await gateway.new_session()
    ws = await gateway.connect(session["token"])
    await ws.receive_json()
    for attachments in (
        "abc",
        [{"file_id": 5}],
        [{"id": "x"}],
        ["x"],
        [{"file_id": str(ObjectId())} for _ in range(6)],
        [{"file_id": "x" * 65}],
    ):
        await ws.send_json({"type": "message", "text": "hi", "client_msg_id": "m", "attachments": attachments})
        frame = await ws.receive_json()
        assert frame["type"] == "error" and frame["code"] == "bad_frame", (attachments, frame)
    await ws.send_json({"type": "message", "text": " ", "client_msg_id": "m", "attachments": []})
    assert (await ws.receive_json())["code"] == "empty_text"
    assert await gateway.runtime.store.messages.count_documents({}) == 0
    await ws.close()
