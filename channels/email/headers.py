"""Header values of an inbound mail: Message-IDs and References, addresses, subject and date.

Holds the readers `parse_mail` uses for everything it takes from the header block: the raw first value of a
header (`header_value`, unfolded, 8-bit bytes decoded), Message-ID lists with or without angle brackets,
display names and addresses (also from forms `getaddresses` cannot split), the subject on one line and
without its reply/forward prefixes (`normalize_subject`, `FORWARD_PREFIX`), and the Date as an aware datetime.
They read the raw source rather than policy.default's parsed header objects, which can raise on malformed input.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from channels.email.charsets import CONTROL, decode_words, fix_8bit
from channels.email.notes import Notes

# Message-IDs and the like: "<local@domain>". Clients that omit the brackets get their bare tokens read.
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+")
# Reply and forward prefixes, in the languages Outlook and the big webmails use: Re/RE, Fwd/FW, AW/WG
# (German), SV (Nordic), Antw (Dutch), Réf (French), RV (Spanish forward), Enc (Portuguese forward).
# Outlook numbers repeated ones ("RE[2]:", "Re(2):"); the colon may be full-width in CJK clients.
_PREFIX = re.compile(r"\s*(?:re|fwd?|aw|wg|sv|antw|r[ée]f|rv|enc)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*", re.IGNORECASE)
FORWARD_PREFIX = re.compile(r"\s*(?:fwd?|wg|rv|enc)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]", re.IGNORECASE)


def header_value(msg: Message, name: str) -> str:
    """The first `name` header, unfolded, with 8-bit bytes read as UTF-8 (or Windows-1252), encoded words
    left alone. Read from the raw source: policy.default's parsed header objects can raise, or keep the
    8-bit bytes as surrogates, on malformed input."""
    wanted = name.lower()
    try:
        items = msg.raw_items()
        value = next((str(v) for k, v in items if k.lower() == wanted), "")
    except Exception:
        return ""
    value = re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", " ").replace("\n", " ")
    return fix_8bit(value)


def _header_values(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    try:
        return [fix_8bit(" ".join(str(v).split())) for k, v in msg.raw_items() if k.lower() == wanted]
    except Exception:
        return []


def oneline(value: str) -> str:
    return " ".join(CONTROL.sub(" ", value).split())


def first_id(value: str) -> str:
    ids = message_ids(value)
    return ids[0] if ids else ""


def message_ids(value: str) -> tuple[str, ...]:
    found = _ANGLE_ID.findall(value)
    if not found:
        # Some clients drop the brackets; a bare token with an "@" is still the id.
        found = [t.strip("<>,;") for t in value.split() if "@" in t]
    return tuple(dict.fromkeys(CONTROL.sub("", i) for i in found if CONTROL.sub("", i)))


def addresses(msg: Message, name: str, notes: Notes) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs; undecodable entries are skipped. getaddresses reads the
    raw value, so an encoded name such as "=?utf-8?q?Doe=2C_John?=" cannot be split at its comma."""
    values = _header_values(msg, name)
    if not values:
        return []
    try:
        pairs = getaddresses(values)
    except Exception:
        pairs = []
    found = []
    for display, address in pairs:
        address = address.strip().lower()
        if _ADDRESS.fullmatch(address):
            found.append((oneline(decode_words(display, notes, name)).strip("\"' "), address))
    if not found:
        # "Jane Doe jane@example.org" and other unbracketed forms getaddresses cannot split.
        found = [("", m.group(0).lower()) for v in values for m in _ADDRESS.finditer(v) if "." in m.group(0)]
    return found


def sender(msg: Message, notes: Notes) -> tuple[str, str]:
    raw = header_value(msg, "From")
    if not raw.strip():
        notes.add("From: missing")
        return "", ""
    found = addresses(msg, "From", notes)
    if not found:
        notes.add(f"From: no readable address in {oneline(raw)[:100]!r}")
        return oneline(decode_words(raw, notes, "From")), ""
    return found[0]


def parse_date(value: str, notes: Notes) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        notes.add(f"Date: unreadable {value[:60]!r}")
        return None
    # RFC 5322 "-0000" (and a missing zone) mean "local time unknown": UTC is the only honest reading.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def normalize_subject(subject: str) -> str:
    """The subject without any number of reply/forward prefixes ("Re: AW: Fwd[2]: "), lower-cased, with
    whitespace collapsed: equal for every mail of a thread."""
    rest = " ".join(subject.split())
    while match := _PREFIX.match(rest):
        rest = rest[match.end() :]
    return " ".join(rest.lower().split())
