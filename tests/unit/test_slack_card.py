"""The Slack handoff card and transcript: complete, within Block Kit limits, and safe from customer text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import ActionsBlock, HeaderBlock, SectionBlock

from agent_bridge.ai.rules import Queue
from agent_bridge.slack.card import (
    ACTION_CLAIM,
    ACTION_RESOLVE,
    ACTION_RETURN,
    blocks_json,
    handoff_card,
    sla_date_token,
)
from agent_bridge.slack.escaping import (
    ELLIPSIS,
    WORD_JOINER,
    escape_mrkdwn,
    escape_text,
    quote_customer_text,
)
from agent_bridge.slack.transcript import transcript_posts, transcript_text

NOW = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)
DUE = NOW + timedelta(minutes=30)
CONVERSATION_ID = "674b1f0e9a1c2d3e4f567890"
QUEUE = Queue(name="billing", team="billing team", slack_channel="C0BILLING", sla_minutes=30, slack_user_group="S0BILL")

NASTY = (
    "<!channel> @here <@U123> <#C123> <!subteam^S123> <https://evil.example|bank> *bold* _it_ ~s~ `code` ```x``` & >q"
    "\n> quoted\n@everyone &lt;!here&gt;"
)


def conversation(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": CONVERSATION_ID,
        "ref": {"channel": "webchat", "account": "main", "chat_id": "3f2a", "thread_key": ""},
        "status": "waiting_for_agent",
        "queue": "billing",
        "handoff_at": NOW,
        "handoff": {
            "at": NOW,
            "trigger": "policy_limits",
            "reason": "refund of 740.00 is over the 500.00 limit",
            "intent": "get_refund",
            "urgency": "high",
            "summary": "Customer wants a refund for order NW-123456 that arrived broken.",
        },
        "details": {"name": "Dana Reyes", "email": "dana_r@example.com", "order_number": "NW-123456", "amount": 740},
        "triage": {"recent_customer_texts": ["hi", "my order arrived broken", "I want my money back"]},
    }
    doc.update(overrides)
    return doc


TURN = {
    "responder": "model",
    "decision": {
        "action": "handoff",
        "trigger": "policy_limits",
        "reason": "refund of 740.00 is over the 500.00 limit",
        "intent": "get_refund",
        "intent_confidence": 0.82,
        "sentiment": "negative",
        "sentiment_score": -0.41,
        "urgency": "high",
        "queue": "billing",
        "details": {"phone": "+44 20 7946 0958"},
    },
    "articles": [{"article_id": "kb-12", "title": "Refunds and returns", "score": 3.2}],
    "tool_calls": [
        {"name": "lookup_order", "arguments": {"order_number": "NW-123456"}, "result": {"status": "shipped"}}
    ],
}


def build(state: str = "waiting", assignee: str | None = None, **overrides: Any):
    args: dict[str, Any] = {
        "conversation": conversation(),
        "customer_name": "Dana Reyes",
        "channel_label": "Web chat",
        "turn_record": TURN,
        "queue": QUEUE,
        "sla_due": DUE,
        "now": NOW,
        "state": state,
        "assignee": assignee,
    }
    args.update(overrides)
    return handoff_card(**args)


def texts(node: Any, kind: str | None = None) -> list[str]:
    """Every text object's text in a block payload (optionally only plain_text or mrkdwn)."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            found += [node["text"]] if kind in (None, node["type"]) else []
        for value in node.values():
            found += texts(value, kind)
    elif isinstance(node, list):
        for value in node:
            found += texts(value, kind)
    return found


def buttons(blocks) -> dict[str, dict[str, Any]]:
    return {
        element["action_id"]: element
        for block in blocks_json(blocks)
        if block["type"] == "actions"
        for element in block["elements"]
    }


# --- the card -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["waiting", "claimed", "resolved", "returned"])
def test_the_card_builds_and_validates_in_every_state(state: str) -> None:
    text, blocks = build(state, assignee="U0AGENT1")
    assert isinstance(blocks[0], HeaderBlock)
    for block in blocks:
        block.validate_json()
    payload = json.dumps(blocks_json(blocks))
    assert len(blocks) <= 50
    assert "Dana Reyes" in text and "Web chat" in text
    if state != "waiting":
        assert "<@U0AGENT1>" in payload  # who claimed / resolved / returned it


def test_the_waiting_card_has_everything_an_agent_needs() -> None:
    text, blocks = build()
    payload = json.dumps(blocks_json(blocks), ensure_ascii=False)
    for expected in [
        "Dana Reyes",
        "Web chat",
        "refund of 740.00 is over the 500.00 limit",  # reason
        "policy limits",  # trigger
        "get refund (82%)",  # intent and confidence
        "negative (-0.41) / high",  # sentiment / urgency
        "Email: dana_r@example.com",  # details, exact (plain_text, so `_` is untouched)
        "Order number: NW-123456",
        "Amount: 740",
        "Phone: +44 20 7946 0958",  # from the turn's decision
        "Refunds and returns",  # articles cited
        "Tools called: `lookup_order`",  # an identifier-like tool name is shown as code
        "Customer wants a refund for order NW-123456",  # summary
        "billing team",
        "<!subteam^S0BILL>",
        sla_date_token(DUE),
    ]:
        assert expected in payload, expected
    assert "<" not in text  # the notification text mentions nobody
    assert set(buttons(blocks)) == {ACTION_CLAIM, ACTION_RESOLVE, ACTION_RETURN}
    claim, resolve = buttons(blocks)[ACTION_CLAIM], buttons(blocks)[ACTION_RESOLVE]
    assert claim["style"] == "primary"
    assert all(b["value"] == CONVERSATION_ID for b in buttons(blocks).values())
    assert resolve["confirm"]["confirm"]["text"] == "Resolve"
    assert "confirm" not in claim


def test_the_summary_falls_back_to_the_last_customer_message() -> None:
    convo = conversation(handoff={"trigger": "human_request", "reason": "asked for a person"})
    _, blocks = build(conversation=convo)
    assert "I want my money back" in json.dumps(blocks_json(blocks))


def test_states_change_the_buttons_and_banner() -> None:
    _, claimed = build("claimed", assignee="U0AGENT1")
    assert set(buttons(claimed)) == {ACTION_RESOLVE, ACTION_RETURN}
    assert "Claimed by <@U0AGENT1>" in json.dumps(blocks_json(claimed))

    _, resolved = build("resolved", assignee="U0AGENT1")
    assert buttons(resolved) == {}
    assert not any(isinstance(b, ActionsBlock) for b in resolved)
    assert "*Resolved* by <@U0AGENT1>" in json.dumps(blocks_json(resolved))

    _, returned = build("returned", assignee="U0AGENT1")
    assert set(buttons(returned)) == {ACTION_CLAIM}


def test_an_assignee_that_is_not_a_slack_id_is_escaped() -> None:
    _, blocks = build("claimed", assignee="<!channel>")
    payload = json.dumps(blocks_json(blocks))
    assert "<!channel>" not in payload and "&lt;!channel&gt;" in payload


def test_overdue_is_flagged_only_while_someone_owes_a_reply() -> None:
    late = DUE + timedelta(minutes=1)
    assert "overdue" in json.dumps(blocks_json(build(now=late)[1]))
    assert "overdue" not in json.dumps(blocks_json(build(now=NOW)[1]))
    assert "overdue" not in json.dumps(blocks_json(build("resolved", now=late)[1]))


def test_sla_date_token_uses_slack_date_formatting() -> None:
    due = datetime(2026, 11, 30, 14, 35, tzinfo=UTC)
    token = sla_date_token(due)
    assert token == f"<!date^{int(due.timestamp())}^{{date_short_pretty}} at {{time}}|2026-11-30 14:35 UTC>"
    assert re.fullmatch(r"<!date\^\d+\^\{date_short_pretty\} at \{time\}\|[^<>|]+>", token)


# --- injection ------------------------------------------------------------------------------------------


ALLOWED_TOKEN = re.compile(r"<!date\^\d+\^[^|<>]+\|[^<>]+>|<@U0AGENT1>|<!subteam\^S0BILL>")


def assert_safe(payload_texts: list[str], *, mrkdwn: bool) -> None:
    for text in payload_texts:
        stripped = ALLOWED_TOKEN.sub("", text)
        assert "<" not in stripped and ">" not in stripped, text  # no token can come from customer text
        assert not re.search(r"&(?!amp;|lt;|gt;)", stripped), text  # every & is an entity
        assert not re.search(r"@(channel|here|everyone)", stripped, re.IGNORECASE), text
        if mrkdwn:
            # The customer's own formatting markers never reach a mrkdwn text (our labels use `*Label*`).
            for marker in ("*bold*", "_it_", "~s~", "`", "\n&gt;", "\n>"):
                assert marker not in text, (marker, text)


def test_customer_text_cannot_ping_link_or_format_anywhere_on_the_card() -> None:
    convo = conversation(
        handoff={"trigger": NASTY, "reason": NASTY, "intent": NASTY, "urgency": NASTY, "summary": NASTY},
        details={"name": NASTY, "email": NASTY, "phone": NASTY, "order_number": NASTY, "amount": NASTY, NASTY: 1},
    )
    turn = {
        "decision": {"sentiment": NASTY, "details": {"note": NASTY}},
        "articles": [{"title": NASTY}],
        "tool_calls": [{"name": NASTY}],
    }
    text, blocks = build(conversation=convo, turn_record=turn, customer_name=NASTY, channel_label=NASTY)
    payload = blocks_json(blocks)
    assert "<!channel>" not in json.dumps(payload) and "<https://evil" not in json.dumps(payload)
    assert_safe([*texts(payload, "mrkdwn"), text], mrkdwn=True)
    assert_safe(texts(payload, "plain_text"), mrkdwn=False)
    # The escaped text is still there for the agent to read.
    assert "&lt;!channel&gt;" in json.dumps(payload)


def test_escaping_nasty_inputs() -> None:
    assert escape_text("<!here> & <@U1>") == "&lt;!here&gt; &amp; &lt;@U1&gt;"
    # A customer typing entities does not get them decoded into tokens.
    assert escape_text("&lt;!channel&gt;") == "&amp;lt;!channel&amp;gt;"
    assert escape_text("hi @channel @Here @everyone me@example.com") == (
        f"hi @{WORD_JOINER}channel @{WORD_JOINER}Here @{WORD_JOINER}everyone me@example.com"
    )
    assert escape_text("*b* _i_") == "*b* _i_"  # plain_text keeps formatting characters (never rendered)
    safe = escape_mrkdwn("*b* _i_ ~s~ `c` ```block```\n> quote\n  >> nested\na > b")
    assert not re.search(r"[*_~`]", safe)
    assert safe.splitlines()[1].startswith("\uff1e") and safe.splitlines()[2].lstrip().startswith("\uff1e")
    assert safe.endswith("a &gt; b")  # a `>` mid-line is not a quote: just escaped
    assert escape_mrkdwn("a\x00b\u202ec\r\nd") == "abc\nd"  # control and bidi-override characters removed


def test_quote_customer_text_truncates_on_a_boundary_after_escaping() -> None:
    assert quote_customer_text("short", 10) == "short"
    cut = quote_customer_text("<" * 100, 50)
    assert len(cut) <= 50 and cut.endswith(ELLIPSIS)
    assert cut == "&lt;" * 12 + ELLIPSIS  # never "&l…"
    assert len(quote_customer_text("x" * 10_000, 3000)) == 3000


# --- limits ---------------------------------------------------------------------------------------------


def test_a_huge_summary_and_thirty_details_still_validate() -> None:
    details = {f"field_{i}": "<&>" * 1000 for i in range(30)}
    convo = conversation(
        handoff={"summary": "&" * 10_000, "reason": "r" * 10_000, "trigger": "t" * 5000}, details=details
    )
    text, blocks = build(conversation=convo, turn_record=None, customer_name="N" * 500, channel_label="C" * 500)
    assert len(blocks) <= 50
    for block in blocks:
        block.validate_json()
        if isinstance(block, SectionBlock):
            assert block.text is None or len(block.text.text) <= 3000
            assert len(block.fields or []) <= 10
            assert all(len(f.text) <= 2000 for f in block.fields or [])
    assert len(blocks[0].text.text) <= 150
    assert len(text) <= 300
    shown = sum("Field " in t for t in texts(blocks_json(blocks), "plain_text"))
    assert shown == 30


def test_more_details_than_fit_are_counted_not_dropped_silently() -> None:
    convo = conversation(details={f"k{i:02}": i for i in range(45)})
    payload = json.dumps(blocks_json(build(conversation=convo)[1]))
    assert "and 16 more details" in payload  # 45 here + the phone from the turn = 46; 3 sections of 10 shown


# --- transcript -----------------------------------------------------------------------------------------


def message(seq: int, author: str, text: str, **extra: Any) -> dict[str, Any]:
    created = datetime(2026, 11, 30, 14, 2, tzinfo=UTC) + timedelta(minutes=seq)
    return {
        "conversation_id": CONVERSATION_ID,
        "seq": seq,
        "author": author,
        "text": text,
        "created_at": created,
        **extra,
    }


def test_transcript_text_is_plain_lines_with_attachments() -> None:
    messages = [
        message(0, "customer", "My order arrived <broken> & *late*"),
        message(1, "ai", "Sorry to hear that."),
        message(2, "customer", "photo", attachments=[{"name": "box.jpg", "url": "https://files.example/box.jpg"}]),
    ]
    text = transcript_text(messages, {"customer": "Dana"})
    assert text.splitlines() == [
        "[14:02] Dana: My order arrived <broken> & *late*",  # a file: not escaped
        "[14:03] AI: Sorry to hear that.",
        "[14:04] Dana: photo",
        "    attachment: box.jpg (https://files.example/box.jpg)",
    ]


def test_a_short_transcript_is_posted_as_escaped_thread_messages() -> None:
    messages = [message(0, "customer", NASTY), message(1, "ai", "Let me check."), message(2, "customer", "> quoted")]
    plan = transcript_posts(messages)
    assert plan.file is None
    assert len(plan.posts) == 1
    assert_safe(list(plan.posts), mrkdwn=True)
    assert "&lt;!channel&gt;" in plan.posts[0] and "Let me check." in plan.posts[0]


def test_a_medium_transcript_is_split_into_posts_within_the_limit() -> None:
    messages = [message(i, "customer", f"message {i} " + "word " * 100) for i in range(20)]
    plan = transcript_posts(messages, limit_chars=3500, max_posts=5)
    assert plan.file is None and 1 < len(plan.posts) <= 5
    assert all(len(post) <= 3500 for post in plan.posts)
    assert "\n".join(plan.posts).count("message ") == 20  # nothing lost, in order
    assert plan.posts[0].startswith("[14:02] Customer: message 0 ")


def test_a_long_transcript_becomes_a_file_and_a_one_line_summary() -> None:
    messages = [message(i, "customer" if i % 2 else "ai", f"<{i}> " + "x" * 900) for i in range(40)]
    plan = transcript_posts(messages, limit_chars=3500, max_posts=5)
    assert plan.file is not None
    assert plan.file.filename == f"transcript-{CONVERSATION_ID}.txt"
    assert plan.file.content == transcript_text(messages, {})
    assert "<0>" in plan.file.content  # the file is raw text, not escaped
    assert len(plan.posts) == 1 and "\n" not in plan.posts[0]
    assert "40 messages" in plan.posts[0] and plan.file.filename in plan.posts[0]


def test_one_message_too_long_for_a_post_goes_to_a_file() -> None:
    plan = transcript_posts([message(0, "customer", "y" * 5000)])
    assert plan.file is not None


def test_a_hostile_conversation_id_cannot_shape_the_file_name() -> None:
    plan = transcript_posts([message(0, "customer", "y" * 5000)], conversation_id="../../etc/passwd")
    assert plan.file is not None and plan.file.filename == "transcript-______etc_passwd.txt"
