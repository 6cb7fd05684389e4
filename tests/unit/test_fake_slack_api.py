"""The Slack Web API fake, proven against the real slack_sdk AsyncWebClient (no mocks, no network)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import slack_events
from tests.fakes.slack_api import FakeSlackApi, Outcome

CHANNEL = "C0HANDOFF"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlackApi]:
    server = await FakeSlackApi(users={"U0AGENT": {"real_name": "Ada Agent", "display_name": "ada"}}).start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def client(fake: FakeSlackApi) -> AsyncWebClient:
    return AsyncWebClient(token=fake.token, base_url=fake.url + "/api/")


def handoff_blocks() -> list:
    return [
        HeaderBlock(text="New handoff: order #1234", block_id="hdr"),
        SectionBlock(
            text=MarkdownTextObject(text="*Customer:* wants a refund"),
            fields=[MarkdownTextObject(text="*Channel:* webchat"), MarkdownTextObject(text="*Lang:* en")],
            block_id="summary",
        ),
        ActionsBlock(
            elements=[
                ButtonElement(text="Take it", action_id="handoff_take", value="conv-1", style="primary"),
                ButtonElement(text="Close", action_id="handoff_close", value="conv-1"),
            ],
            block_id="actions",
        ),
        ContextBlock(elements=[PlainTextObject(text="conversation conv-1")], block_id="ctx"),
    ]


async def test_post_thread_update_react_and_read_back(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    assert auth["user_id"] == fake.bot_user_id

    parent = await client.chat_postMessage(
        channel=CHANNEL, text="New handoff", blocks=handoff_blocks(), unfurl_links=False, username="Support"
    )
    assert parent["ok"] and parent["channel"] == CHANNEL
    assert parent["message"]["blocks"][2]["elements"][0]["action_id"] == "handoff_take"

    reply = await client.chat_postMessage(channel=CHANNEL, text="customer: hello?", thread_ts=parent["ts"])
    assert float(reply["ts"]) > float(parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]

    updated = await client.chat_update(channel=CHANNEL, ts=parent["ts"], text="Taken by ada", blocks=[])
    assert updated["text"] == "Taken by ada"

    await client.reactions_add(channel=CHANNEL, timestamp=parent["ts"], name="eyes")
    with pytest.raises(SlackApiError) as duplicate:
        await client.reactions_add(channel=CHANNEL, timestamp=parent["ts"], name="eyes")
    assert duplicate.value.response["error"] == "already_reacted"

    with pytest.raises(SlackApiError) as missing:
        await client.chat_update(channel=CHANNEL, ts="1.000000", text="nope")
    assert missing.value.response["error"] == "message_not_found"

    thread = fake.thread(CHANNEL, parent["ts"])
    assert [m.text for m in thread] == ["Taken by ada", "customer: hello?"]
    assert thread[0].edited and thread[0].reactions == {"eyes": [fake.bot_user_id]}
    assert thread[0].username == "Support" and thread[0].unfurl_links is False
    assert [m.ts for m in fake.messages(CHANNEL)] == [parent["ts"]]

    posts = fake.calls("chat.postMessage")
    assert len(posts) == 2 and posts[0].headers["Authorization"] == f"Bearer {fake.token}"
    assert posts[0].params["blocks"][0] == {
        "type": "header",
        "block_id": "hdr",
        "text": {"type": "plain_text", "text": "New handoff: order #1234", "emoji": True},
    }
    assert [c.method for c in fake.calls()][:2] == ["auth.test", "chat.postMessage"]

    deleted = await client.chat_delete(channel=CHANNEL, ts=reply["ts"])
    assert deleted["ts"] == reply["ts"] and len(fake.thread(CHANNEL, parent["ts"])) == 1


async def test_users_and_conversations_info(client: AsyncWebClient) -> None:
    user = await client.users_info(user="U0AGENT")
    assert user["user"]["real_name"] == "Ada Agent"
    assert user["user"]["profile"]["display_name"] == "ada"
    with pytest.raises(SlackApiError) as unknown:
        await client.users_info(user="U0NOBODY")
    assert unknown.value.response["error"] == "user_not_found"

    info = await client.conversations_info(channel=CHANNEL)
    assert info["channel"]["name"] == "handoff"
    with pytest.raises(SlackApiError) as nochan:
        await client.chat_postMessage(channel="C0MISSING", text="hi")
    assert nochan.value.response["error"] == "channel_not_found"


async def test_form_encoded_blocks_are_decoded(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    # chat.postEphemeral-style form bodies: blocks arrive as a JSON string inside form data.
    await client.api_call(
        "chat.postMessage",
        data={"channel": CHANNEL, "text": "form", "blocks": '[{"type": "divider"}]'},
    )
    assert fake.calls("chat.postMessage")[0].params["blocks"] == [{"type": "divider"}]
    with pytest.raises(SlackApiError) as bad:
        await client.api_call("chat.postMessage", data={"channel": CHANNEL, "text": "x", "blocks": "[not json"})
    assert bad.value.response["error"] == "invalid_blocks_format"


async def test_files_upload_v2_into_thread(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="handoff")
    result = await client.files_upload_v2(
        channel=CHANNEL,
        thread_ts=parent["ts"],
        content="transcript line 1\nline 2\n",
        filename="transcript.txt",
        title="Transcript",
        initial_comment="Full transcript attached",
    )
    assert result["file"]["title"] == "Transcript"
    assert [c.method for c in fake.calls()][-3:] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    uploaded = fake.files[result["file"]["id"]]
    assert uploaded.data == b"transcript line 1\nline 2\n" and uploaded.thread_ts == parent["ts"]
    reply = fake.thread(CHANNEL, parent["ts"])[-1]
    assert reply.text == "Full transcript attached" and reply.files[0]["name"] == "transcript.txt"


async def test_rate_limit_then_success_honours_retry_after(fake: FakeSlackApi) -> None:
    # Slack's Retry-After is whole seconds, and the SDK's handler int()-parses it: 1 is the smallest real wait.
    client = AsyncWebClient(
        token=fake.token,
        base_url=fake.url + "/api/",
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.script("chat.postMessage", Outcome.rate_limited(retry_after=1))
    started = time.monotonic()
    response = await client.chat_postMessage(channel=CHANNEL, text="after the storm")
    assert response["ok"]
    first, second = fake.calls("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0
    assert time.monotonic() - started < 5


async def test_scripted_server_error_and_api_error(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    fake.script("chat.postMessage", Outcome.server_error(), Outcome.fail("channel_not_found"))
    with pytest.raises(SlackApiError) as down:
        await client.chat_postMessage(channel=CHANNEL, text="1")
    assert down.value.response.status_code == 500
    with pytest.raises(SlackApiError) as scripted:
        await client.chat_postMessage(channel=CHANNEL, text="2")
    assert scripted.value.response["error"] == "channel_not_found"
    assert (await client.chat_postMessage(channel=CHANNEL, text="3"))["ok"]
    assert [c.status for c in fake.calls("chat.postMessage")] == [500, 200, 200]


async def test_bad_token_is_invalid_auth(fake: FakeSlackApi) -> None:
    client = AsyncWebClient(token="xoxb-wrong", base_url=fake.url + "/api/")
    with pytest.raises(SlackApiError) as denied:
        await client.chat_postMessage(channel=CHANNEL, text="hi")
    assert denied.value.response["error"] == "invalid_auth"
    assert fake.messages(CHANNEL) == []


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def _button(**extra: str) -> dict:
    return {"type": "button", "text": _plain("ok"), **extra}


# Raw dicts: the SDK's own model classes refuse most over-limit values before sending, and the fake
# must also catch payloads built by hand.
@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([{"type": "divider"}] * 51, "/blocks]"),
        ([{"type": "section", "text": _plain("x" * 3001)}], "/blocks/0/text/text"),
        ([{"type": "section", "fields": [_plain(f"f{i}") for i in range(11)]}], "/blocks/0/fields"),
        ([{"type": "section", "fields": [_plain("y" * 2001)]}], "/blocks/0/fields/0/text"),
        ([{"type": "header", "text": _plain("h" * 151)}], "/blocks/0/text/text"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text"),
        ([{"type": "actions", "elements": [{"type": "button", "text": _plain("b" * 76)}]}], "/elements/0/text/text"),
        ([{"type": "actions", "elements": [_button(action_id="a" * 256)]}], "/elements/0/action_id"),
        ([{"type": "actions", "elements": [_button(value="v" * 2001)]}], "/elements/0/value"),
        ([{"type": "section", "text": _plain("s"), "accessory": _button(value="v" * 2001)}], "/accessory/value"),
        ([{"type": "context", "elements": [_plain(str(i)) for i in range(11)]}], "/blocks/0/elements"),
        ([{"type": "divider", "block_id": "i" * 256}], "/blocks/0/block_id"),
        ([{"type": "divider", "block_id": "same"}, {"type": "divider", "block_id": "same"}], "/blocks/1/block_id"),
        ([{"type": "sparkles"}], "/blocks/0/type"),
    ],
)
async def test_over_limit_blocks_are_invalid_blocks(
    fake: FakeSlackApi, client: AsyncWebClient, blocks: list, pointer: str
) -> None:
    with pytest.raises(SlackApiError) as rejected:
        await client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks)
    assert rejected.value.response["error"] == "invalid_blocks"
    assert any(pointer in message for message in rejected.value.response["errors"])
    assert fake.messages(CHANNEL) == []


async def test_limits_are_inclusive(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    blocks = [
        HeaderBlock(text="h" * 150),
        SectionBlock(text="x" * 3000, fields=["y" * 2000] * 10),
        ActionsBlock(elements=[ButtonElement(text="b" * 75, action_id="a" * 255, value="v" * 2000)]),
        *[{"type": "divider"}] * 47,
    ]
    assert (await client.chat_postMessage(channel=CHANNEL, text="t" * 40_000, blocks=blocks))["ok"]


async def test_text_too_long_is_msg_too_long(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as rejected:
        await client.chat_postMessage(channel=CHANNEL, text="t" * 40_001)
    assert rejected.value.response["error"] == "msg_too_long"
    with pytest.raises(SlackApiError) as empty, pytest.warns(UserWarning, match="text"):
        await client.chat_postMessage(channel=CHANNEL, text="")
    assert empty.value.response["error"] == "no_text"


# --- channel names, ephemerals, thread replies ------------------------------------------------------


async def test_channel_names_resolve_to_ids_where_slack_documents_names(
    fake: FakeSlackApi, client: AsyncWebClient
) -> None:
    by_hash = await client.chat_postMessage(channel="#handoff", text="by #name")
    by_name = await client.chat_postMessage(channel="handoff", text="by bare name")
    assert by_hash["channel"] == by_name["channel"] == CHANNEL
    assert [m.text for m in fake.messages(CHANNEL)] == ["by #name", "by bare name"]
    assert fake.calls("chat.postMessage")[0].params["channel"] == "#handoff"  # recorded as sent
    assert fake.channel_id("#handoff") == CHANNEL and fake.channel_id("#nope") is None

    with pytest.raises(SlackApiError) as unknown:
        await client.chat_postMessage(channel="#nope", text="hi")
    assert unknown.value.response["error"] == "channel_not_found"
    # chat.update (like reactions.add and conversations.*) takes the id only, as Slack documents.
    with pytest.raises(SlackApiError) as by_name_update:
        await client.chat_update(channel="#handoff", ts=by_hash["ts"], text="edited")
    assert by_name_update.value.response["error"] == "channel_not_found"


async def test_post_ephemeral_stays_out_of_history(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="card")
    answer = await client.chat_postEphemeral(
        channel="#handoff", user="U0AGENT", text="Only you can see this", thread_ts=parent["ts"]
    )
    assert answer["ok"] and float(answer["message_ts"]) > float(parent["ts"])
    (ephemeral,) = fake.ephemerals
    assert (ephemeral.channel, ephemeral.user, ephemeral.thread_ts) == (CHANNEL, "U0AGENT", parent["ts"])
    assert ephemeral.text == "Only you can see this" and ephemeral.message_ts == answer["message_ts"]
    assert fake.thread(CHANNEL, parent["ts"]) == [fake.message(CHANNEL, parent["ts"])]

    with pytest.raises(SlackApiError) as stranger:
        await client.chat_postEphemeral(channel=CHANNEL, user="U0NOBODY", text="hi")
    assert stranger.value.response["error"] == "user_not_in_channel"
    assert [c.ok for c in fake.calls("chat.postEphemeral")] == [True, False]


async def test_conversations_replies_returns_parent_then_replies(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="card")
    mirrored = await client.chat_postMessage(channel=CHANNEL, text="customer: hi", thread_ts=parent["ts"])
    agent_reply = fake.add_user_message("#handoff", "U0AGENT", "Hello, I can help", thread_ts=parent["ts"])

    answer = await client.conversations_replies(channel=CHANNEL, ts=parent["ts"])
    head, first, second = answer["messages"]
    assert (head["ts"], first["ts"], second["ts"]) == (parent["ts"], mirrored["ts"], agent_reply.ts)
    assert head["reply_count"] == 2 and head["latest_reply"] == agent_reply.ts
    assert head["reply_users"] == [fake.bot_user_id, "U0AGENT"] and head["thread_ts"] == parent["ts"]
    assert second == {
        "type": "message",
        "ts": agent_reply.ts,
        "user": "U0AGENT",
        "text": "Hello, I can help",
        "thread_ts": parent["ts"],
        "parent_user_id": fake.bot_user_id,
    }
    assert first["bot_id"] == fake.bot_id and "bot_id" not in second
    assert not answer["has_more"]

    from_reply = await client.conversations_replies(channel=CHANNEL, ts=agent_reply.ts)
    assert [m["ts"] for m in from_reply["messages"]] == [parent["ts"], mirrored["ts"], agent_reply.ts]
    page = await client.conversations_replies(channel=CHANNEL, ts=parent["ts"], limit=2)
    assert len(page["messages"]) == 2 and page["has_more"]
    rest = await client.conversations_replies(
        channel=CHANNEL, ts=parent["ts"], limit=2, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["ts"] for m in rest["messages"]] == [agent_reply.ts] and not rest["has_more"]

    with pytest.raises(SlackApiError) as missing:
        await client.conversations_replies(channel=CHANNEL, ts="1.000000")
    assert missing.value.response["error"] == "thread_not_found"


# --- Slack-hosted files ------------------------------------------------------------------------------


async def test_user_file_downloads_only_with_the_bot_token(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    file = fake.add_user_file("receipt scan.png", "image/png", data, user="U0AGENT")
    assert {k: file[k] for k in ("name", "title", "mimetype", "filetype", "size", "mode", "user")} == {
        "name": "receipt scan.png",
        "title": "receipt scan.png",
        "mimetype": "image/png",
        "filetype": "png",
        "size": len(data),
        "mode": "hosted",
        "user": "U0AGENT",
    }
    assert file["url_private_download"] == (
        f"{fake.url}/files-pri/{fake.team_id}-{file['id']}/download/receipt%20scan.png"
    )

    async with aiohttp.ClientSession() as http:
        async with http.get(file["url_private_download"], headers={"Authorization": f"Bearer {fake.token}"}) as ok:
            assert ok.status == 200 and ok.content_type == "image/png"
            assert await ok.read() == data
        async with http.get(file["url_private"], headers={"Authorization": f"Bearer {fake.token}"}) as inline:
            assert await inline.read() == data
        # No token, or someone else's: a redirect to the sign-in page, which is HTML with status 200.
        async with http.get(file["url_private_download"], allow_redirects=False) as anonymous:
            assert anonymous.status == 302 and anonymous.headers["Location"].startswith(f"{fake.url}/?redir=")
        async with http.get(file["url_private_download"], headers={"Authorization": "Bearer xoxb-other"}) as other:
            assert other.status == 200 and other.content_type == "text/html"
            assert b"PNG" not in await other.read()
        async with http.get(f"{fake.url}/files-pri/{fake.team_id}-F404/download/x.png") as unknown:
            assert unknown.status == 404

    assert [c.params["authorised"] for c in fake.calls("download")] == [True, True, False, False, False]
    assert [c.params["file_id"] for c in fake.downloads] == [file["id"], file["id"]]
    info = await client.files_info(file=file["id"])
    assert info["file"]["url_private_download"] == file["url_private_download"]


# --- Socket Mode --------------------------------------------------------------------------------------


async def test_socket_mode_tokens_and_url(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    opened = await client.apps_connections_open(app_token=fake.app_token)
    assert opened["url"].startswith(fake.url.replace("http://", "ws://") + "/link/?ticket=")
    assert fake.calls("apps.connections.open")[0].headers["Authorization"] == f"Bearer {fake.app_token}"
    with pytest.raises(SlackApiError) as bot_token:
        await client.apps_connections_open(app_token=fake.token)
    assert bot_token.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as wrong:
        await client.apps_connections_open(app_token="xapp-wrong")
    assert wrong.value.response["error"] == "invalid_auth"
    app_client = AsyncWebClient(token=fake.app_token, base_url=fake.url + "/api/")
    with pytest.raises(SlackApiError) as app_token:
        await app_client.chat_postMessage(channel=CHANNEL, text="hi")
    assert app_token.value.response["error"] == "not_allowed_token_type"


async def test_socket_mode_hello_envelope_and_ack(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    url = (await client.apps_connections_open(app_token=fake.app_token))["url"]
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url.split("?")[0] + "?ticket=forged")
        assert refused.value.status == 401

        async with http.ws_connect(url, autoping=False) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello" and hello["num_connections"] == 1
            assert hello["connection_info"] == {"app_id": fake.app_id}
            assert set(hello["debug_info"]) >= {"host", "approximate_connection_time"}
            await asyncio.wait_for(fake.socket_connected.wait(), 5)

            await ws.ping(b"sdk-ping-pong:1")
            pong = await ws.receive(timeout=5)
            assert pong.type == WSMsgType.PONG and pong.data == b"sdk-ping-pong:1"

            event = slack_events.event_callback(slack_events.thread_message(CHANNEL, "1.000100", "U0AGENT", "hi"))
            sending = asyncio.create_task(
                fake.socket_send("events_api", event, retry_attempt=1, retry_reason="timeout")
            )
            envelope = await ws.receive_json(timeout=5)
            assert envelope["type"] == "events_api" and envelope["payload"] == event
            assert (envelope["retry_attempt"], envelope["retry_reason"]) == (1, "timeout")
            assert envelope["accepts_response_payload"] is False
            await ws.send_json({"envelope_id": envelope["envelope_id"]})
            assert await sending == {"envelope_id": envelope["envelope_id"]}

            command = slack_events.slash_command("/support", "billing", user_id="U0AGENT", channel_id=CHANNEL)
            sending = asyncio.create_task(fake.socket_send("slash_commands", command))
            envelope = await ws.receive_json(timeout=5)
            assert envelope["accepts_response_payload"] is True and "retry_attempt" not in envelope
            await ws.send_json({"envelope_id": envelope["envelope_id"], "payload": {"text": "2 waiting"}})
            assert (await sending)["payload"] == {"text": "2 waiting"}

            with pytest.raises(TimeoutError):
                await fake.socket_send("interactive", {"type": "block_actions"}, timeout=0.2)
            assert [c.status for c in fake.calls("socket.envelope")] == [200, 200, 504]
            assert fake.calls("socket.envelope")[0].answer == {"envelope_id": fake.socket_frames[0]["envelope_id"]}

    await asyncio.wait_for(_until(lambda: not fake.socket_connected.is_set()), 5)
    with pytest.raises(RuntimeError):
        await fake.socket_send("events_api", {})
    assert [c.status for c in fake.calls("socket.connect")] == [401, 101]


async def _until(predicate: Any) -> None:
    # Polls state the fake changes from its own handlers (no event to wait on for "reconnected").
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(0.02)


async def test_bolt_socket_mode_handler_against_the_fake(fake: FakeSlackApi, client: AsyncWebClient) -> None:
    app = AsyncApp(client=client, process_before_response=True)
    seen: list[dict[str, Any]] = []

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        seen.append(event)

    @app.action("handoff_claim")
    async def on_claim(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        seen.append(body)

    @app.command("/support")
    async def on_support(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"queue {command['text']}: 0 waiting")

    handler = AsyncSocketModeHandler(app, fake.app_token, web_client=client)
    try:
        await handler.connect_async()
        await asyncio.wait_for(fake.socket_connected.wait(), 10)

        reply = slack_events.thread_message(CHANNEL, "1.000100", "U0AGENT", "On it")
        ack = await fake.socket_send("events_api", slack_events.event_callback(reply))
        assert set(ack) == {"envelope_id"} and seen[-1]["text"] == "On it"

        click = slack_events.block_action(
            "handoff_claim", "conv-1", user_id="U0AGENT", user_name="ada", channel=CHANNEL, message_ts="1.000100"
        )
        ack = await fake.socket_send("interactive", click)
        assert "envelope_id" in ack and seen[-1]["actions"][0]["value"] == "conv-1"

        command = slack_events.slash_command("/support", "billing", user_id="U0AGENT", channel_id=CHANNEL)
        ack = await fake.socket_send("slash_commands", command)
        assert ack["payload"]["text"] == "queue billing: 0 waiting"

        # Slack's "disconnect" (refresh_requested): the SDK opens a new connection and keeps working.
        await fake.socket_disconnect()
        await asyncio.wait_for(_until(lambda: fake.socket_connects == 2 and fake.socket_connections == 1), 10)
        ack = await fake.socket_send("events_api", slack_events.event_callback(reply))
        assert "envelope_id" in ack and len(fake.calls("apps.connections.open")) == 2
    finally:
        await handler.close_async()
    assert [c.method for c in fake.calls()][:2] == ["apps.connections.open", "socket.connect"]
    assert fake.calls("auth.test")  # Bolt's single-workspace authorization ran against the fake


# --- events builders and request signing --------------------------------------------------------------


def test_signed_headers_pass_the_sdk_verifier() -> None:
    body = json.dumps(slack_events.url_verification("abc"))
    headers = slack_events.signed_headers("s3cret", body)
    assert headers["Content-Type"] == "application/json"
    assert SignatureVerifier("s3cret").is_valid_request(body, headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    stale = slack_events.signed_headers("s3cret", body, timestamp=int(time.time()) - 600)
    assert not SignatureVerifier("s3cret").is_valid_request(body, stale)


def test_message_event_shapes() -> None:
    file = {"id": "F1", "name": "a.png"}
    shared = slack_events.thread_message(CHANNEL, "1.000100", "U0AGENT", "see attached", files=[file])
    assert shared["subtype"] == "file_share" and shared["files"] == [file] and shared["thread_ts"] == "1.000100"
    assert "subtype" not in slack_events.thread_message(CHANNEL, "1.000100", "U0AGENT", "plain")

    edit = slack_events.message_changed(CHANNEL, "1.000200", "1.000100", "U0AGENT", "new", previous_text="old")
    assert edit["subtype"] == "message_changed" and edit["hidden"] is True
    assert edit["message"]["ts"] == edit["previous_message"]["ts"] == "1.000200" != edit["ts"]
    assert (edit["message"]["text"], edit["previous_message"]["text"]) == ("new", "old")
    assert edit["message"]["thread_ts"] == "1.000100" and edit["message"]["edited"]["user"] == "U0AGENT"

    gone = slack_events.message_deleted(CHANNEL, "1.000200", "1.000100", "U0AGENT", "oops")
    assert gone["subtype"] == "message_deleted" and gone["hidden"] is True and gone["deleted_ts"] == "1.000200"
    assert gone["previous_message"]["text"] == "oops"

    legacy = slack_events.bot_message(CHANNEL, "from a webhook")
    assert legacy["subtype"] == "bot_message" and legacy["bot_id"] == "B0BOT" and "user" not in legacy
    own = slack_events.bot_message(CHANNEL, "our own post", user="U0BOT", thread_ts="1.000100")
    assert "subtype" not in own and own["bot_profile"]["id"] == own["bot_id"] and own["thread_ts"] == "1.000100"

    envelope = slack_events.event_callback(shared, event_id="Ev1")
    assert (envelope["type"], envelope["event_id"], envelope["event"]) == ("event_callback", "Ev1", shared)
    assert envelope["authorizations"][0]["user_id"] == "U0BOT"


async def test_posts_reach_a_bolt_app_over_http() -> None:
    """post_event / post_interaction / post_command against Bolt's own request verification and parsing."""
    secret = "signing-secret"
    fake = await FakeSlackApi(users={"U0AGENT": {"real_name": "Ada Agent"}}).start()
    client = AsyncWebClient(token=fake.token, base_url=fake.url + "/api/")
    bolt = AsyncApp(client=client, signing_secret=secret, process_before_response=True)
    seen: list[tuple[str, Any]] = []

    @bolt.event("message")
    async def on_message(event: dict[str, Any], request: Any) -> None:
        retry = [request.headers.get(h, [None])[0] for h in ("x-slack-retry-num", "x-slack-retry-reason")]
        seen.append(("message", (event["text"], *retry)))

    @bolt.action("handoff_resolve")
    async def on_resolve(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        seen.append(("action", body["user"]["name"]))

    @bolt.command("/support")
    async def on_support(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"queue {command['text']}")

    async def endpoint(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    web_app = web.Application()
    web_app.router.add_post("/slack/events", endpoint)
    server = TestServer(web_app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/slack/events"))
    try:
        async with aiohttp.ClientSession() as http:
            challenge = slack_events.url_verification("ch-123")
            async with await slack_events.post_event(http, url, secret, challenge) as answer:
                assert answer.status == 200 and (await answer.json())["challenge"] == "ch-123"

            event = slack_events.event_callback(slack_events.thread_message(CHANNEL, "1.000100", "U0AGENT", "hello"))
            async with await slack_events.post_event(http, url, secret, event) as answer:
                assert answer.status == 200
            async with await slack_events.post_event(
                http, url, secret, event, retry_num=1, retry_reason="http_timeout"
            ) as answer:
                assert answer.status == 200
            assert seen[:2] == [("message", ("hello", None, None)), ("message", ("hello", "1", "http_timeout"))]

            click = slack_events.block_action(
                "handoff_resolve", "conv-1", user_id="U0AGENT", user_name="ada", channel=CHANNEL, message_ts="1.0001"
            )
            async with await slack_events.post_interaction(http, url, secret, click) as answer:
                assert answer.status == 200 and seen[-1] == ("action", "ada")

            fields = slack_events.slash_command("/support", "billing", user_id="U0AGENT", channel_id=CHANNEL)
            async with await slack_events.post_command(http, url, secret, fields) as answer:
                assert answer.status == 200 and await answer.text() == "queue billing"

            async with await slack_events.post_event(http, url, secret, event, signature="v0=forged") as answer:
                assert answer.status == 401
            stale = int(time.time()) - 3600
            async with await slack_events.post_event(http, url, secret, event, timestamp=stale) as answer:
                assert answer.status == 401
        assert len(seen) == 3
    finally:
        await server.close()
        await fake.close()
