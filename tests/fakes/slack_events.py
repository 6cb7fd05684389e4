"""What Slack sends to the app, built as Slack documents it, and posted the way Slack posts it.

Shapes:
- Events API outer envelope and ``url_verification``: https://api.slack.com/apis/events-api ("Callback field
  overview", "Request URL configuration & verification").
- ``message`` events and their subtypes: https://api.slack.com/events/message (``file_share``,
  ``message_changed``, ``message_deleted``, ``bot_message``); edits and deletions are ``hidden: true`` and
  carry the message in ``message`` / ``previous_message``, with the event's own ``ts`` being the time of
  the change, not the message's.
- Interactivity ``block_actions``: https://api.slack.com/reference/interaction-payloads/block-actions.
- Slash commands (form fields): https://api.slack.com/interactivity/slash-commands ("Preparing your app").

Delivery (https://api.slack.com/authentication/verifying-requests-from-slack): a POST whose body is signed
as ``v0=hex(HMAC-SHA256(secret, "v0:<timestamp>:<body>"))`` in ``X-Slack-Signature``, with the timestamp in
``X-Slack-Request-Timestamp``. Events arrive as JSON; interactions as a form with one ``payload`` field
holding JSON; slash commands as a plain form. Redeliveries carry ``X-Slack-Retry-Num`` and
``X-Slack-Retry-Reason`` (https://api.slack.com/apis/events-api "Retries").
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

TEAM_ID = "T0TEAM"
APP_ID = "A0APP"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
# The deprecated verification token Slack still puts in payloads; apps verify the signature instead.
VERIFICATION_TOKEN = "fake-verification-token"

_counter = itertools.count(1)
_last_ts = 0.0


def new_ts() -> str:
    """A Slack-style "seconds.micros" ts, unique and increasing within the test run."""
    global _last_ts
    _last_ts = max(time.time(), _last_ts + 0.000001)
    return f"{_last_ts:.6f}"


def _event_id() -> str:
    return f"Ev{next(_counter):08d}{uuid.uuid4().hex[:6].upper()}"


# --- Events API ---------------------------------------------------------------------------------


def event_callback(
    event: dict[str, Any],
    *,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    bot_user_id: str = BOT_USER_ID,
    event_time: int | None = None,
) -> dict[str, Any]:
    """The outer ``event_callback`` envelope around one inner event. ``authorizations`` names the
    installation the event is for (here the single bot install), which Bolt reads to know its own user."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or _event_id(),
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{uuid.uuid4().hex}",
    }


def url_verification(challenge: str | None = None) -> dict[str, Any]:
    """The handshake Slack sends when a Request URL is saved; the app must echo ``challenge``."""
    return {"token": VERIFICATION_TOKEN, "challenge": challenge or uuid.uuid4().hex, "type": "url_verification"}


def _rich_text(text: str) -> list[dict[str, Any]]:
    # Messages typed in Slack's composer carry a rich_text block mirroring `text`.
    return [
        {
            "type": "rich_text",
            "block_id": uuid.uuid4().hex[:5],
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
        }
    ]


def thread_message(
    channel: str,
    thread_ts: str,
    user: str,
    text: str,
    ts: str | None = None,
    files: list[dict[str, Any]] | None = None,
    *,
    team_id: str = TEAM_ID,
    parent_user_id: str = BOT_USER_ID,
    channel_type: str = "channel",
) -> dict[str, Any]:
    """A person's reply in a thread (``message.channels``; ``channel_type="group"`` for private channels).
    With ``files`` (e.g. from ``FakeSlackApi.add_user_file``) it is the ``file_share`` subtype Slack uses for
    a message that attaches files."""
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "thread_ts": thread_ts,
        "parent_user_id": parent_user_id,
        "team": team_id,
        "client_msg_id": str(uuid.uuid4()),
        "blocks": _rich_text(text) if text else [],
        "event_ts": ts,
        "channel_type": channel_type,
    }
    if files:
        event.update(subtype="file_share", files=files, upload=False, display_as_bot=False)
    return event


def message_changed(
    channel: str,
    ts: str,
    thread_ts: str | None,
    user: str,
    new_text: str,
    *,
    previous_text: str = "",
    edited_ts: str | None = None,
    channel_type: str = "channel",
) -> dict[str, Any]:
    """An edit of the message at ``ts``: ``message`` is the new version (with ``edited``), ``previous_message``
    the old one. The event's own ``ts``/``event_ts`` is when the edit happened."""
    changed_at = edited_ts or new_ts()
    base: dict[str, Any] = {"type": "message", "user": user, "ts": ts}
    if thread_ts is not None:
        base.update(thread_ts=thread_ts, parent_user_id=BOT_USER_ID)
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": channel,
        "message": {
            **base,
            "text": new_text,
            "blocks": _rich_text(new_text),
            "edited": {"user": user, "ts": changed_at},
        },
        "previous_message": {**base, "text": previous_text, "blocks": _rich_text(previous_text)},
        "ts": changed_at,
        "event_ts": changed_at,
        "channel_type": channel_type,
    }


def message_deleted(
    channel: str,
    ts: str,
    thread_ts: str | None,
    user: str,
    previous_text: str,
    *,
    channel_type: str = "channel",
) -> dict[str, Any]:
    """A deletion of the message at ``ts`` (``deleted_ts``), with the text it had in ``previous_message``."""
    deleted_at = new_ts()
    previous: dict[str, Any] = {"type": "message", "user": user, "ts": ts, "text": previous_text}
    if thread_ts is not None:
        previous.update(thread_ts=thread_ts, parent_user_id=BOT_USER_ID)
    return {
        "type": "message",
        "subtype": "message_deleted",
        "hidden": True,
        "channel": channel,
        "deleted_ts": ts,
        "previous_message": previous,
        "ts": deleted_at,
        "event_ts": deleted_at,
        "channel_type": channel_type,
    }


def bot_message(
    channel: str,
    text: str,
    *,
    bot_id: str = BOT_ID,
    user: str | None = None,
    thread_ts: str | None = None,
    ts: str | None = None,
    username: str | None = None,
    app_id: str = APP_ID,
    team_id: str = TEAM_ID,
    channel_type: str = "channel",
) -> dict[str, Any]:
    """A message posted by a bot. Two shapes exist (https://api.slack.com/events/message/bot_message):

    - without ``user``: subtype ``bot_message`` with ``bot_id`` (webhooks, legacy integrations, other apps
      posting without a bot user);
    - with ``user`` (the bot user's id): no subtype, but ``bot_id``, ``app_id`` and ``bot_profile``, which is
      how an app's own chat.postMessage comes back as an event. A bridge must ignore both kinds."""
    ts = ts or new_ts()
    event: dict[str, Any] = {"type": "message", "channel": channel, "text": text, "ts": ts, "bot_id": bot_id}
    if user is None:
        event["subtype"] = "bot_message"
        if username is not None:
            event["username"] = username
    else:
        event.update(
            user=user,
            app_id=app_id,
            team=team_id,
            bot_profile={"id": bot_id, "app_id": app_id, "name": username or "Support Gateway", "team_id": team_id},
        )
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    event.update(event_ts=ts, channel_type=channel_type)
    return event


# --- Interactivity and slash commands ------------------------------------------------------------


def block_action(
    action_id: str,
    value: str,
    *,
    user_id: str,
    user_name: str,
    channel: str,
    message_ts: str,
    team_id: str = TEAM_ID,
    block_id: str = "actions",
    button_text: str = "Button",
    message: dict[str, Any] | None = None,
    channel_name: str = "handoff",
    response_url: str | None = None,
    api_app_id: str = APP_ID,
) -> dict[str, Any]:
    """A button click on a message (``block_actions``). ``message`` is the message as Slack shows it (e.g.
    ``FakeSlackApi.message(channel, ts).to_api()``); a minimal bot message otherwise."""
    trigger = f"{next(_counter)}.{int(time.time())}.{uuid.uuid4().hex[:32]}"
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": trigger,
        "team": {"id": team_id, "domain": "fake-workspace"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name},
        "message": message
        or {"type": "message", "ts": message_ts, "user": BOT_USER_ID, "bot_id": BOT_ID, "text": "", "blocks": []},
        "state": {"values": {}},
        "response_url": response_url
        or f"https://hooks.slack.com/actions/{team_id}/{next(_counter)}/{uuid.uuid4().hex}",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": button_text, "emoji": True},
                "value": value,
                "action_ts": new_ts(),
            }
        ],
    }


def slash_command(
    command: str,
    text: str,
    *,
    user_id: str,
    channel_id: str,
    user_name: str = "agent",
    channel_name: str = "support",
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    response_url: str | None = None,
) -> dict[str, str]:
    """The form fields of a slash command invocation (all strings, as they arrive)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": "fake-workspace",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url
        or f"https://hooks.slack.com/commands/{team_id}/{next(_counter)}/{uuid.uuid4().hex}",
        "trigger_id": f"{next(_counter)}.{int(time.time())}.{uuid.uuid4().hex[:32]}",
    }


# --- Signing and posting -------------------------------------------------------------------------


def signed_headers(
    secret: str, body: str, *, timestamp: int | None = None, content_type: str = "application/json"
) -> dict[str, str]:
    """The headers Slack signs a request with; ``timestamp`` defaults to now (Bolt refuses ones older than
    five minutes, which a test can provoke by passing an old one)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature, "Content-Type": content_type}


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    body: str,
    content_type: str,
    *,
    retry_num: int | None,
    retry_reason: str | None,
    timestamp: int | None,
    signature: str | None,
) -> aiohttp.ClientResponse:
    headers = signed_headers(secret, body, timestamp=timestamp, content_type=content_type)
    if signature is not None:
        headers["X-Slack-Signature"] = signature  # to test a forged or stale signature
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    return await session.post(url, data=body.encode(), headers=headers)


async def post_event(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    payload: dict[str, Any],
    *,
    retry_num: int | None = None,
    retry_reason: str | None = None,
    timestamp: int | None = None,
    signature: str | None = None,
) -> aiohttp.ClientResponse:
    """POST an ``event_callback`` or ``url_verification`` as JSON, signed; the caller reads the response."""
    return await _post(
        session,
        url,
        secret,
        json.dumps(payload),
        "application/json",
        retry_num=retry_num,
        retry_reason=retry_reason,
        timestamp=timestamp,
        signature=signature,
    )


async def post_interaction(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    payload: dict[str, Any],
    *,
    timestamp: int | None = None,
    signature: str | None = None,
) -> aiohttp.ClientResponse:
    """POST an interaction (``block_actions`` ...) as Slack does: a form whose ``payload`` field is JSON."""
    return await _post(
        session,
        url,
        secret,
        urlencode({"payload": json.dumps(payload)}),
        "application/x-www-form-urlencoded",
        retry_num=None,
        retry_reason=None,
        timestamp=timestamp,
        signature=signature,
    )


async def post_command(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    fields: dict[str, str],
    *,
    timestamp: int | None = None,
    signature: str | None = None,
) -> aiohttp.ClientResponse:
    """POST a slash command's form fields (see ``slash_command``), signed."""
    return await _post(
        session,
        url,
        secret,
        urlencode(fields),
        "application/x-www-form-urlencoded",
        retry_num=None,
        retry_reason=None,
        timestamp=timestamp,
        signature=signature,
    )
