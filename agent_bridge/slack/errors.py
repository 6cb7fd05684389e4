"""Slack Web API failures as outbox delivery errors: what is worth retrying and what never will work.

Slack answers HTTP 429 with Retry-After when rate limited ("Rate limits"), 5xx when it is having a
bad day, and HTTP 200 `{"ok": false, "error": ...}` for everything else; the method docs list the
errors. Configuration errors (a wrong channel, a missing scope, a revoked token) will not heal by
retrying, so they fail at once with a reason an operator can act on.
"""

from __future__ import annotations

import asyncio

import aiohttp
from slack_sdk.errors import SlackApiError

from gateway.models import DeliveryError

PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "restricted_action",
        "thread_not_found",
        "message_not_found",
        "cant_update_message",
    }
)
# The channel itself is the problem: a card may still go to SLACK_DEFAULT_CHANNEL.
CHANNEL_PROBLEMS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})


def slack_error_code(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"http_{exc.response.status_code}")
    return type(exc).__name__


def delivery_error(exc: BaseException, action: str) -> DeliveryError:
    if isinstance(exc, SlackApiError):
        code = slack_error_code(exc)
        status = exc.response.status_code
        if status == 429:
            retry_after = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
            try:
                delay = float(retry_after) if retry_after is not None else None
            except ValueError:
                delay = None
            return DeliveryError(f"Slack {action}: rate limited", retry_after=delay)
        if status >= 500:
            return DeliveryError(f"Slack {action}: HTTP {status}")
        return DeliveryError(f"Slack {action}: {code}", permanent=code in PERMANENT)
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | TimeoutError | ConnectionError):
        return DeliveryError(f"Slack {action}: {type(exc).__name__}: {exc}")
    return DeliveryError(f"Slack {action}: {type(exc).__name__}: {exc}")
