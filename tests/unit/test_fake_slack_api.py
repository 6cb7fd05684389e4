"""The Slack Web API fake, proven against the real slack_sdk AsyncWebClient (no mocks, no network)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
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
from slack_sdk.web.async_client import AsyncWebClient

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
