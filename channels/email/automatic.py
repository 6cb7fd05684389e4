"""Mail software sent rather than a person wrote: auto-replies, mailing-list mail and bounces.

Holds `auto_kind`, which classifies a mail from its headers, report type, sender and subject (RFC 3834
Auto-Submitted, the X-Autoreply family, Precedence, List-Id, read receipts, out-of-office subjects in the
common languages), and `bounced_message_ids`, which finds the Message-IDs of the mails a bounce returns.
`ParsedMail` carries both (`auto`, `bounced_message_ids`), so that software is told apart from a person.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Literal

from channels.email.headers import header_value
from channels.email.parts import mime_param, mime_type

AutoKind = Literal["auto_reply", "bounce", "list"]

# Subjects of out-of-office replies from Exchange/Outlook, Lotus Notes ("Auto:") and the webmails, which
# often set no Auto-Submitted header. A prefix followed by ":" (or the whole subject), never a word inside
# a subject: "Automatic reply not working" is a customer's question.
_OUT_OF_OFFICE = re.compile(
    r"\s*(?:(?:out of (?:the )?office(?: autoreply)?|automatic reply|auto-?reply|abwesenheitsnotiz"
    r"|automatische antwort|réponse automatique|respuesta automática|resposta automática"
    r"|risposta automatica|automatisch antwoord)\s*(?:[:：]|$)|auto\s*:)",
    re.IGNORECASE,
)
_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster"})


def auto_kind(msg: Message, from_address: str, raw_from: str, subject: str) -> AutoKind | None:
    content_type = mime_type(msg)
    report_type = mime_param(msg, "report-type").lower()
    if content_type == "multipart/report" and report_type == "delivery-status":
        return "bounce"
    if from_address:
        if from_address.split("@")[0] in _BOUNCE_SENDERS:
            return "bounce"
    elif re.search(r"\b(?:mailer-daemon|postmaster)\b", raw_from, re.IGNORECASE):
        return "bounce"  # "MAILER-DAEMON (Mail Delivery System)", without a domain

    # RFC 3834: "no" is the only value a person's mail carries; auto-replied, auto-generated and
    # auto-notified all mean software sent it.
    auto_submitted = header_value(msg, "Auto-Submitted").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return "auto_reply"
    if header_value(msg, "X-Autoreply").strip() or header_value(msg, "X-Autorespond").strip():
        return "auto_reply"
    # Read receipts (RFC 8098) are software answering too.
    if content_type == "multipart/report" and report_type == "disposition-notification":
        return "auto_reply"
    # X-Auto-Response-Suppress is deliberately ignored: Outlook and Exchange put it on ordinary mail people
    # write, to ask *other* systems not to auto-reply to them.
    precedence = header_value(msg, "Precedence").strip().lower()
    if precedence == "auto_reply":
        return "auto_reply"
    if _OUT_OF_OFFICE.match(subject):
        return "auto_reply"
    if precedence in ("bulk", "junk", "list"):
        return "list"
    if header_value(msg, "List-Id").strip() or header_value(msg, "List-Unsubscribe").strip():
        return "list"
    return None


def bounced_message_ids(
    message_id: str, embedded_ids: list[str], in_reply_to: tuple[str, ...], references: tuple[str, ...], text: str
) -> tuple[str, ...]:
    """The Message-IDs of the mails a bounce returns: those of the embedded mails or headers, else the bounce's
    own In-Reply-To and References, else any Message-ID header pasted into its text; never its own id."""
    found = [*embedded_ids, *in_reply_to, *references]
    if not found:
        # Bounces without a DSN structure (qmail, old Exim) paste the original headers into the text.
        found = re.findall(r"(?im)^\s*Message-ID:\s*<([^<>\s]+)>", text)
    return tuple(i for i in dict.fromkeys(found) if i != message_id)
