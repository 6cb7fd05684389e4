"""The Slack bridge's small pure parts: agent text, notes, ratings, names, error mapping, SLA due times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from agent_bridge.ai.rules import BusinessHours, Messages, Queue
from agent_bridge.slack.agent_text import is_note, slack_to_plain
from agent_bridge.slack.errors import delivery_error
from agent_bridge.slack.people import shown_name
from gateway.csat import csat_pending, parse_rating
from gateway.settings import Settings, describe_errors


@pytest.mark.parametrize(
    ("slack", "plain"),
    [
        ("See <https://shop.example/returns|our returns page>", "See our returns page (https://shop.example/returns)"),
        ("<https://shop.example>", "https://shop.example"),
        ("Ask <@U0SAM> or <!subteam^S0CARE> about it", "Ask or about it"),
        ("Posted in <#C0BILLING|support-billing>", "Posted in #support-billing"),
        ("Write to <mailto:help@shop.example|help@shop.example>", "Write to help@shop.example"),
        ("5 &lt; 6 &amp;&amp; 7 &gt; 2", "5 < 6 && 7 > 2"),
        ("&lt;@U0SAM&gt; typed literally", "<@U0SAM> typed literally"),
        ("<!here> heads up", "heads up"),
    ],
)
def test_agent_markup_becomes_plain_text_for_customers(slack: str, plain: str) -> None:
    assert slack_to_plain(slack) == plain


@pytest.mark.parametrize("text", ["note: VIP", "Note: VIP", "  NOTE:VIP", "*note:* VIP", "_Note:_ VIP", "> note: x"])
def test_notes_are_recognised_however_they_are_written(text: str) -> None:
    assert is_note(text, "note:")


@pytest.mark.parametrize("text", ["Noted, thanks!", "a note: later", "notes are attached", ""])
def test_ordinary_replies_are_not_notes(text: str) -> None:
    assert not is_note(text, "note:")


def test_the_note_prefix_is_configurable() -> None:
    assert is_note("[internal] call them back", "[internal]")
    assert not is_note("note: this goes out", "[internal]")


@pytest.mark.parametrize(
    ("text", "score"),
    [("5", 5), (" 4 ", 4), ("3/5", 3), ("2 out of 5", 2), ("1 star", 1), ("5 stars!", 5), ("⭐⭐⭐", 3), ("4.", 4)],
)
def test_ratings_are_read(text: str, score: int) -> None:
    assert parse_rating(text) == score


@pytest.mark.parametrize("text", ["6", "0", "5 days late and still nothing", "order 12345", "thanks", "10/10", ""])
def test_other_messages_are_not_ratings(text: str) -> None:
    assert parse_rating(text) is None


def test_a_rating_counts_only_while_the_question_is_open() -> None:
    asked = datetime(2026, 11, 30, 12, tzinfo=UTC)
    open_question = {"csat": {"asked_at": asked, "score": None}}
    assert csat_pending(open_question, asked + timedelta(days=1))
    assert not csat_pending(open_question, asked + timedelta(days=8))
    assert not csat_pending({"csat": {"asked_at": asked, "score": 4}}, asked + timedelta(minutes=1))
    assert not csat_pending({"csat": None}, asked)


@pytest.mark.parametrize(
    ("style", "expected"),
    [("display_name", "Dana"), ("real_name", "Dana Reyes"), ("first_name", "Dana"), ("none", "")],
)
def test_agent_names_follow_the_configured_style(style: str, expected: str) -> None:
    user = {"name": "dana.r", "profile": {"real_name": "Dana Reyes", "display_name": "Dana"}}
    assert shown_name(user, style) == expected  # type: ignore[arg-type]


def test_an_empty_display_name_falls_back_to_the_real_name() -> None:
    assert shown_name({"profile": {"real_name": "Sam Okafor", "display_name": ""}}, "display_name") == "Sam Okafor"


def _slack_error(status: int, error: str, headers: dict[str, str] | None = None) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None,  # type: ignore[arg-type]
        http_verb="POST",
        api_url="https://slack.com/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": error},
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError(error, response)


def test_slack_errors_map_to_retry_or_give_up() -> None:
    limited = delivery_error(_slack_error(429, "ratelimited", {"Retry-After": "7"}), "card")
    assert not limited.permanent and limited.retry_after == 7
    assert not delivery_error(_slack_error(503, "service_unavailable"), "card").permanent
    wrong_channel = delivery_error(_slack_error(200, "channel_not_found"), "card")
    assert wrong_channel.permanent and "channel_not_found" in wrong_channel.reason
    assert delivery_error(_slack_error(200, "missing_scope"), "card").permanent
    assert not delivery_error(_slack_error(200, "fatal_error"), "card").permanent


def test_sla_counts_from_handoff_or_from_the_next_opening() -> None:
    queue = Queue(
        name="billing",
        sla_minutes=60,
        business_hours=BusinessHours(
            timezone="UTC", days=["mon", "tue", "wed", "thu", "fri"], open="09:00", close="17:00"
        ),
    )
    monday_noon = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert queue.sla_due(monday_noon) == monday_noon + timedelta(hours=1)
    saturday = datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert queue.sla_due(saturday) == datetime(2026, 12, 7, 10, tzinfo=UTC)


def test_after_handoff_templates_are_checked_at_load() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        Messages(agent_joined="{name} joined")
    with pytest.raises(ValueError, match="unknown placeholder"):
        Messages(csat_thanks="Thanks for {rating}")
    assert (
        Messages(csat_thanks="{score}/5, thank you").csat_thanks.format(score=5, team="t", queue="q")
        == "5/5, thank you"
    )


def test_slack_settings_are_checked() -> None:
    with pytest.raises(Exception) as bad_prefix:
        Settings(_env_file=None, slack_bot_token="xoxp-user-token", slack_signing_secret="s")  # type: ignore[call-arg]
    assert "must start with xoxb-" in str(bad_prefix.value)
    with pytest.raises(Exception) as no_way_in:
        Settings(_env_file=None, slack_bot_token="xoxb-1")  # type: ignore[call-arg]
    problems = describe_errors(no_way_in.value)  # type: ignore[arg-type]
    assert any("SLACK_SIGNING_SECRET" in p and "SLACK_APP_TOKEN" in p for p in problems)
    socket_only = Settings(_env_file=None, slack_bot_token="xoxb-1", slack_app_token="xapp-1")  # type: ignore[call-arg]
    assert socket_only.slack_enabled
    assert not Settings(_env_file=None).slack_enabled  # type: ignore[call-arg]
