"""The handoff card: the Slack message that tells a queue's people a conversation needs them.

Pure: builds Block Kit objects from the stored conversation and the AI's last turn record; the caller posts
or updates it. Every untrusted value goes through `escaping` (see its docstring for the Slack rules).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from agent_bridge.ai.rules import Queue
from agent_bridge.slack.escaping import escape_mrkdwn, quote_customer_text, truncate

CardState = Literal["waiting", "claimed", "resolved", "returned"]

ACTION_CLAIM = "handoff_claim"
ACTION_RESOLVE = "handoff_resolve"
ACTION_RETURN = "handoff_return_to_ai"

# Block Kit limits (docs.slack.dev/reference/block-kit/blocks/…): header text 150, section text 3000,
# section field 2000 and at most 10 fields, context element text 2000, 50 blocks per message.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
CONTEXT_LIMIT = 2000
MAX_BLOCKS = 50
# chat.postMessage `text`: used for notifications when blocks are sent; kept short on purpose.
FALLBACK_LIMIT = 300
SUMMARY_LIMIT = 1000
MAX_DETAIL_SECTIONS = 3

# The order agents read details in; anything else collected follows, sorted by name.
_DETAIL_ORDER = ("name", "email", "phone", "order_number", "amount")
# Trusted ids only: a Slack user id from our own interaction payload may be rendered as a mention.
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_SLACK_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _md(text: str) -> MarkdownTextObject:
    # "Text object": verbatim=True stops Slack auto-linking URLs/channels/mentions in the text.
    return MarkdownTextObject(text=text, verbatim=True)


def _plain(text: str) -> PlainTextObject:
    # plain_text is never formatted (Block Kit "Text object"); emoji=False so `:x:` from a customer stays text.
    return PlainTextObject(text=text, emoji=False)


def _label(value: object) -> str:
    return str(value).replace("_", " ").strip()


def sla_date_token(due: datetime) -> str:
    """Slack shows the due time in each reader's own time zone ("Formatting dates"):
    `<!date^unix^{date_short_pretty} at {time}|fallback>`; the fallback is for clients that cannot."""
    if due.tzinfo is None:
        due = due.replace(tzinfo=UTC)
    fallback = due.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(due.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _assignee_mrkdwn(assignee: str | None) -> str:
    if not assignee:
        return "someone"
    if _SLACK_USER_ID.match(assignee):
        return f"<@{assignee}>"  # "Mentioning users": a user id from Slack itself, not from the customer
    return escape_mrkdwn(assignee)


def _percent(value: object) -> str:
    try:
        return f" ({float(value):.0%})"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""


def _field(label: str, value: str) -> MarkdownTextObject:
    return _md(truncate(f"*{label}*\n{value}", FIELD_LIMIT))


def _summary_text(conversation: Mapping[str, Any]) -> str:
    handoff = conversation.get("handoff") or {}
    if handoff.get("summary"):
        return str(handoff["summary"])
    recent = (conversation.get("triage") or {}).get("recent_customer_texts") or []
    return str(recent[-1]) if recent else ""


def _details(conversation: Mapping[str, Any], decision: Mapping[str, Any]) -> list[tuple[str, str]]:
    merged: dict[str, Any] = {**(conversation.get("details") or {}), **(decision.get("details") or {})}
    keys = [k for k in _DETAIL_ORDER if k in merged] + sorted(str(k) for k in merged if k not in _DETAIL_ORDER)
    return [(k, str(merged[k])) for k in keys if merged[k] not in (None, "", [], {})]


def _tool_name(name: str) -> str:
    # An identifier-like name shows as `code` (mrkdwn "Inline code": nothing inside is formatted);
    # anything else is treated as untrusted text.
    return f"`{name}`" if _IDENTIFIER.match(name) else escape_mrkdwn(name)


def _ai_activity(turn: Mapping[str, Any]) -> str:
    parts = []
    titles = [str(a.get("title") or a.get("article_id") or "") for a in turn.get("articles") or []]
    if titles := [t for t in titles if t]:
        parts.append("Articles cited: " + ", ".join(escape_mrkdwn(t) for t in titles))
    tools = [str(c.get("name") or "") for c in turn.get("tool_calls") or []]
    if tools := [t for t in tools if t]:
        parts.append("Tools called: " + ", ".join(_tool_name(t) for t in tools))
    return "  ·  ".join(parts)


def _buttons(conversation_id: str, state: CardState) -> list[ButtonElement]:
    value = conversation_id[:2000]  # button value: max 2000 characters
    claim = ButtonElement(text="Claim", action_id=ACTION_CLAIM, value=value, style="primary")
    resolve = ButtonElement(
        text="Resolve",
        action_id=ACTION_RESOLVE,
        value=value,
        # "Confirmation dialog object": title ≤ 100, text ≤ 300, confirm/deny ≤ 30.
        confirm=ConfirmObject(
            title="Resolve this conversation?",
            text=_plain("The customer's conversation will be marked resolved. They can write again to reopen it."),
            confirm="Resolve",
            deny="Cancel",
        ),
    )
    back = ButtonElement(text="Return to AI", action_id=ACTION_RETURN, value=value)
    if state == "waiting":
        return [claim, resolve, back]
    if state == "claimed":
        return [resolve, back]
    if state == "returned":
        return [claim]
    return []


def handoff_card(
    conversation: Mapping[str, Any],
    customer_name: str,
    channel_label: str,
    turn_record: Mapping[str, Any] | None,
    queue: Queue,
    sla_due: datetime,
    now: datetime,
    state: CardState = "waiting",
    assignee: str | None = None,
) -> tuple[str, list[Block]]:
    """Build the card's notification text and blocks, every block validated, so a bad card fails here
    rather than as an `invalid_blocks` error from Slack."""
    turn = turn_record or {}
    decision: Mapping[str, Any] = turn.get("decision") or {}
    handoff: Mapping[str, Any] = conversation.get("handoff") or {}
    conversation_id = str(conversation.get("_id") or conversation.get("id") or "")
    # One line each: a newline in a name would break the header and the notification text.
    name = " ".join(customer_name.split()) or "Customer"
    channel_label = " ".join(channel_label.split()) or "unknown channel"

    header = {"waiting": "Needs a person", "claimed": "Claimed", "resolved": "Resolved", "returned": "Back with AI"}
    blocks: list[Block] = [
        # Header: plain_text only, ≤ 150 characters.
        HeaderBlock(
            text=_plain(quote_customer_text(f"{name} · {channel_label} — {header[state]}", HEADER_LIMIT, mrkdwn=False))
        )
    ]

    who = _assignee_mrkdwn(assignee)
    banner = {
        "claimed": f":raising_hand: Claimed by {who}",
        "resolved": f":white_check_mark: *Resolved* by {who}",
        "returned": f":robot_face: Returned to the AI by {who}",
    }.get(state)
    if banner:
        blocks.append(SectionBlock(text=_md(banner)))

    trigger = decision.get("trigger") or handoff.get("trigger") or "—"
    reason = decision.get("reason") or handoff.get("reason") or "—"
    intent = decision.get("intent") or handoff.get("intent") or "unknown"
    urgency = decision.get("urgency") or handoff.get("urgency") or "normal"
    sentiment = decision.get("sentiment") or "—"
    score = decision.get("sentiment_score")
    sentiment_text = escape_mrkdwn(sentiment) + (f" ({float(score):+.2f})" if isinstance(score, int | float) else "")
    team = escape_mrkdwn(queue.display_name)
    if _SLACK_GROUP_ID.match(queue.slack_user_group):
        team += f" <!subteam^{queue.slack_user_group}>"  # "Mentioning groups": from routing config, trusted
    due = sla_date_token(sla_due)
    if state in ("waiting", "claimed") and now >= sla_due:
        due += " :warning: *overdue*"
    overview = [
        _field("Customer", f"{escape_mrkdwn(name)} via {escape_mrkdwn(channel_label)}"),
        _field("Queue", team),
        _field("Reason", quote_customer_text(reason, 500)),
        _field("Trigger", escape_mrkdwn(_label(trigger))),
        _field("Intent", escape_mrkdwn(_label(intent)) + _percent(decision.get("intent_confidence"))),
        _field("Sentiment / urgency", f"{sentiment_text} / {escape_mrkdwn(urgency)}"),
        _field("Reply due", due),
    ]
    blocks.append(SectionBlock(fields=overview[:MAX_FIELDS]))

    summary = _summary_text(conversation)
    if summary:
        # Section text as plain_text: the customer's words shown exactly, never formatted.
        blocks.append(SectionBlock(text=_plain(quote_customer_text(f"“{summary}”", SUMMARY_LIMIT, mrkdwn=False))))

    details = _details(conversation, decision)
    shown = details[: MAX_FIELDS * MAX_DETAIL_SECTIONS]
    for start in range(0, len(shown), MAX_FIELDS):
        fields = [
            # plain_text so an email or order number is exact and copyable (no look-alike characters).
            _plain(quote_customer_text(f"{_label(key).capitalize()}: {value}", FIELD_LIMIT, mrkdwn=False))
            for key, value in shown[start : start + MAX_FIELDS]
        ]
        blocks.append(SectionBlock(fields=fields))
    context = []
    if len(details) > len(shown):
        context.append(_md(f"…and {len(details) - len(shown)} more details in the conversation record"))
    if activity := _ai_activity(turn):
        context.append(_md(truncate(":robot_face: " + activity, CONTEXT_LIMIT)))
    if context:
        blocks.append(ContextBlock(elements=context))

    buttons = _buttons(conversation_id, state)
    if buttons:
        blocks.append(DividerBlock())
        blocks.append(ActionsBlock(elements=buttons))

    blocks = blocks[:MAX_BLOCKS]
    for block in blocks:
        block.validate_json()  # raises SlackObjectFormationError on any Block Kit limit

    # No mentions in the notification text: the group is mentioned once, in the card itself.
    fallback = truncate(
        f"{header[state]}: {escape_mrkdwn(name)} ({escape_mrkdwn(channel_label)}) — {escape_mrkdwn(_label(trigger))}"
        f" — {escape_mrkdwn(queue.display_name)}",
        FALLBACK_LIMIT,
    )
    return fallback, blocks


def blocks_json(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    """The payload for chat.postMessage / chat.update `blocks`."""
    return [block.to_dict() for block in blocks]
