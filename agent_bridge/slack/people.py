"""Who an agent is, from Slack's users.info, cached: the name customers see next to a reply.

users.info is a Tier 4 method (100+ calls a minute); agents reply far more often than they change
their names, so names are cached for an hour and a failed lookup never holds a reply back: the
reply goes under a neutral "Support team" (FALLBACK_NAME).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from agent_bridge.slack.errors import slack_error_code
from gateway.handoffs import Agent
from gateway.logs import log_event

log = logging.getLogger("agent_bridge.slack.people")

NameStyle = Literal["display_name", "real_name", "first_name", "none"]
CACHE_SECONDS = 3600.0
# What a customer sees next to a reply when Slack cannot tell who wrote it: neutral, never an id.
FALLBACK_NAME = "Support team"


def shown_name(user: dict[str, Any], style: NameStyle) -> str:
    """The agent's name as AGENT_NAME_STYLE says; display names fall back to the real name (Slack
    leaves display_name empty for people who never set one)."""
    if style == "none":
        return ""
    profile = user.get("profile") or {}
    real = str(profile.get("real_name") or user.get("real_name") or "").strip()
    display = str(profile.get("display_name") or "").strip()
    if style == "display_name":
        return display or real or str(user.get("name") or "")
    if style == "first_name":
        first = str(profile.get("first_name") or "").strip()
        return first or (real.split()[0] if real else display)
    return real or display


class AgentDirectory:
    def __init__(self, client: AsyncWebClient, style: NameStyle) -> None:
        self.client = client
        self.style = style
        self._cache: dict[str, tuple[float, str]] = {}

    async def agent(self, user_id: str, *, fallback: str = FALLBACK_NAME) -> Agent:
        """The agent, named as AGENT_NAME_STYLE says; `fallback` when Slack cannot say who it is.

        A reply must not wait on users.info: when it fails (an error, HTTP 5xx, 429, a network
        failure or timeout) the reply still goes, under `fallback`. Raising instead would answer the
        event with 500, and Slack retries an event three times and then drops it, reply and all.
        The fallback is not cached, so the next reply asks again."""
        if self.style == "none":
            return Agent(id=user_id, name="")
        cached = self._cache.get(user_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return Agent(id=user_id, name=cached[1])
        try:
            response = await self.client.users_info(user=user_id)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log_event(log, "slack_user_lookup_failed", logging.WARNING, user=user_id, error=slack_error_code(exc))
            return Agent(id=user_id, name=fallback)
        name = shown_name(response.get("user") or {}, self.style)
        self._cache[user_id] = (now, name)
        return Agent(id=user_id, name=name)
