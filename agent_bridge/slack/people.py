"""Who an agent is, from Slack's users.info, cached: the name customers see next to a reply.

users.info is a Tier 4 method (100+ calls a minute); agents reply far more often than they change
their names, so names are cached for an hour and a failed lookup never holds a reply back.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from gateway.handoffs import Agent
from gateway.logs import log_event

log = logging.getLogger("agent_bridge.slack.people")

NameStyle = Literal["display_name", "real_name", "first_name", "none"]
CACHE_SECONDS = 3600.0


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

    async def agent(self, user_id: str) -> Agent:
        cached = self._cache.get(user_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return Agent(id=user_id, name=cached[1])
        name = ""
        try:
            response = await self.client.users_info(user=user_id)
            name = shown_name(response.get("user") or {}, self.style)
            self._cache[user_id] = (now, name)
        except SlackApiError as exc:
            # Replies still go out, unnamed; the next reply tries again.
            log_event(log, "slack_user_lookup_failed", logging.WARNING, error=str(exc.response.get("error")))
        return Agent(id=user_id, name=name)
