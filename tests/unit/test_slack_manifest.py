"""config/slack-app-manifest.yml: one paste must give an app whose scopes, events and URLs fit together.

Limits and event → scope pairs follow Slack's manifest reference and event docs
(https://docs.slack.dev/reference/app-manifest, https://api.slack.com/events/message.channels ...).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "config" / "slack-app-manifest.yml"

# The scope each bot event needs ("Required scopes" on each event's page).
EVENT_SCOPES = {
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "message.mpim": "mpim:history",
    "app_mention": "app_mentions:read",
    "reaction_added": "reactions:read",
}
# What the gateway does in Slack, and the scope each needs.
REQUIRED_SCOPES = {
    "chat:write",
    "chat:write.public",
    "channels:history",
    "groups:history",
    "reactions:write",
    "users:read",
    "files:read",
    "files:write",
    "commands",
}
# The one path the gateway mounts Bolt on: events, interactions and slash commands all arrive there.
EVENTS_PATH = "/slack/events"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def _urls(manifest: dict[str, Any]) -> list[str]:
    settings = manifest["settings"]
    urls = [settings.get("event_subscriptions", {}).get("request_url"), settings["interactivity"].get("request_url")]
    urls += [command.get("url") for command in manifest["features"].get("slash_commands", [])]
    return [url for url in urls if url is not None]


def test_schema_version_and_names(manifest: dict[str, Any]) -> None:
    assert manifest["_metadata"]["major_version"] == 2
    assert manifest["display_information"]["name"] == "Support Gateway"
    assert manifest["features"]["bot_user"]["display_name"] == "Support Gateway"
    # Manifest reference limits: app name ≤ 35, description ≤ 140, bot display name ≤ 80.
    assert len(manifest["display_information"]["name"]) <= 35
    assert len(manifest["display_information"]["description"]) <= 140
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", manifest["display_information"]["background_color"])


def test_bot_scopes_are_exactly_what_the_gateway_uses(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) == REQUIRED_SCOPES
    assert "user" not in manifest["oauth_config"]["scopes"]  # the gateway never acts as a person


def test_every_scope_line_says_what_it_is_for() -> None:
    lines = MANIFEST.read_text(encoding="utf-8").splitlines()
    start = lines.index("    bot:") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("      - "))
    scope_lines = lines[start:end]
    assert len(scope_lines) == len(REQUIRED_SCOPES)
    for line in scope_lines:
        assert re.search(r"#\s+\S.{10,}", line), f"no comment on: {line.strip()}"


def test_events_have_their_scopes(manifest: dict[str, Any]) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert set(events) == {"message.channels", "message.groups"}
    for event in events:
        assert EVENT_SCOPES[event] in scopes, f"{event} needs {EVENT_SCOPES[event]}"


def test_slash_command(manifest: dict[str, Any]) -> None:
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/support"]
    (support,) = commands
    assert support["description"] == "Handoff queue status" and support["usage_hint"] == "[queue]"
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]
    for command in commands:
        assert re.fullmatch(r"/[a-z0-9_-]{1,31}", command["command"])


def test_request_urls_agree(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    urls = _urls(manifest)
    if settings["socket_mode_enabled"]:
        return  # Socket Mode: URLs are optional and unused
    assert len(urls) == 3, "events, interactivity and /support each need the request URL"
    assert len(set(urls)) == 1, "Bolt serves events, interactions and commands on one endpoint"
    for url in urls:
        assert url.startswith("https://") and url.endswith(EVENTS_PATH)


def test_socket_mode_is_off_and_explained(manifest: dict[str, Any]) -> None:
    assert manifest["settings"]["socket_mode_enabled"] is False
    text = MANIFEST.read_text(encoding="utf-8")
    assert "SLACK_APP_TOKEN" in text and "connections:write" in text


def test_settings_point_at_this_manifest() -> None:
    example_env = (ROOT / "config" / "example.env").read_text(encoding="utf-8")
    assert "config/slack-app-manifest.yml" in example_env
