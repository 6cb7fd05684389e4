"""An agent's Slack message as plain text for the customer.

Slack sends message text in its own markup ("Formatting text for app surfaces"): `&amp; &lt; &gt;`
escaped, links as `<url|label>` or `<url>`, mentions as `<@U…>`, `<#C…|name>`, `<!here>`,
`<!subteam^S…>`. Customers on SMS or WhatsApp must see none of that: links become "label (url)",
channel names stay readable, and mentions of colleagues or groups are dropped.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"<([^<>]*)>")


def _token(match: re.Match[str]) -> str:
    inner = match[1]
    target, _, label = inner.partition("|")
    if target.startswith(("@", "!")):
        return ""  # people and groups in the workspace mean nothing to the customer
    if target.startswith("#"):
        return f"#{label}" if label else ""
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    if label and label != target:
        return f"{label} ({target})"
    return target


def slack_to_plain(text: str) -> str:
    plain = _TOKEN.sub(_token, text)
    # Entities last, so an escaped "&lt;" the agent typed becomes "<" and is not read as a token.
    plain = plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", plain).strip()


def is_note(text: str, prefix: str) -> bool:
    """An internal note: the prefix at the start, any case, after optional spaces or formatting marks
    (an agent may write "*note:*" or "_Note:_")."""
    return text.lstrip(" \t\n*_~>").lower().startswith(prefix.lower())
