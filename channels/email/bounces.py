"""What a bounce says went wrong, in one line for the agent's Slack thread.

A standard bounce (RFC 3464) carries a message/delivery-status part whose per-recipient block names the
failed address, an enhanced status code (RFC 3463: 5.1.1 no such user, 5.2.2 mailbox full, …) and often
the remote server's own reply (Diagnostic-Code). Bounces without that structure (qmail, old Exim, some
webmail providers) only say it in prose: the first line that looks like an SMTP reply is taken then.
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"(?im)^(Final-Recipient|Status|Diagnostic-Code|Action)\s*:\s*(.+(?:\n[ \t].+)*)")
_SMTP_LINE = re.compile(r"(?m)^.*\b[45]\d\d[ -][45]\.\d{1,3}\.\d{1,3}\b.*$|^.*\b[45]\.\d{1,3}\.\d{1,3}\b.*$")
# RFC 3463 subject.detail codes an agent can act on without reading the remote server's prose.
_MEANINGS = {
    "1.1": "the address does not exist",
    "1.2": "the domain does not exist",
    "1.10": "the address does not exist",
    "2.1": "the mailbox is disabled",
    "2.2": "the mailbox is full",
    "3.4": "the message was too large for the recipient's server",
    "7.1": "the recipient's server refused it as unwanted",
}


def bounce_reason(text: str, delivery_status: str) -> str:
    """`text`: the bounce's readable body; `delivery_status`: its message/delivery-status part as text."""
    fields: dict[str, str] = {}
    for name, value in _FIELD.findall(delivery_status.replace("\r\n", "\n")):
        fields.setdefault(name.lower(), " ".join(value.split()))
    status = fields.get("status", "")
    diagnostic = fields.get("diagnostic-code", "").partition(";")[2].strip() or fields.get("diagnostic-code", "")
    if not status and not diagnostic:
        match = _SMTP_LINE.search(text)
        return " ".join(match.group().split())[:300] if match else "the receiving server gave no reason"
    meaning = ""
    code = re.match(r"[245]\.(\d{1,3}\.\d{1,3})", status)
    if code:
        meaning = _MEANINGS.get(code.group(1), "")
    if status.startswith("4"):
        meaning = meaning or "the receiving server gave up retrying"
    pieces = [p for p in (meaning, diagnostic or status) if p]
    return ": ".join(pieces)[:300]
