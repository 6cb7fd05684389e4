"""Twilio's inbound Messaging webhook (SMS, MMS, WhatsApp) turned into one message. Pure: no I/O, no client.

Twilio POSTs application/x-www-form-urlencoded parameters to the Messaging webhook URL
(https://www.twilio.com/docs/messaging/guides/webhook-request). The caller has already checked the
X-Twilio-Signature and parsed the form; this module only reads it, never fetches media, and never raises:
anything unusable comes back as `Rejected` with the field it stumbled on.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, Protocol

WHATSAPP_PREFIX = "whatsapp:"
# Twilio message SIDs: SM (SMS, WhatsApp) or MM (MMS), then 32 hex digits.
_MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-fA-F]{32}")
# Older webhooks (and some proxies) still send the pre-2017 names; MessageSid wins when present.
_SID_FIELDS = ("MessageSid", "SmsMessageSid", "SmsSid")
# An MMS carries at most 10 media (Twilio's limit); NumMedia is a decimal string.
_NUM_MEDIA = re.compile(r"[0-9]{1,2}")
_MAX_MEDIA = 10
# WhatsApp location: plain decimal degrees. No exponents, "nan" or "inf", which float() would accept.
_DEGREES = re.compile(r"[+-]?[0-9]{1,3}(?:\.[0-9]{1,15})?")
# C0 controls except \t and \n (\r is turned into \n first); also lone surrogates, which a lenient form
# decoder can leave in a str (surrogateescape) and which no database driver or JSON encoder accepts.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\ud800-\udfff]")

# Twilio's default keyword handling ("Twilio support for opt-out keywords (SMS STOP filtering)" and the
# Advanced Opt-Out guide). Twilio matches the whole message, so "stop sending me stuff" is no keyword.
# Opt-out: the six classic words, plus REVOKE and OPTOUT which Twilio added as defaults for the FCC's
# April 2025 revocation-of-consent rules.
_STOP = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
# Opt-in: Twilio documents START, YES and UNSTOP (error 23002 and the STOP-filtering article list all
# three), and Twilio itself re-subscribes a number that sends YES. So "yes" is reported as "start" to
# mirror what Twilio did, but the text is kept: for a customer who never opted out, "yes" is usually just
# an answer, and it must still reach the conversation. (US toll-free numbers: the carrier handles only
# START/UNSTOP, so "yes" there changes nothing.)
_START = frozenset({"start", "unstop", "yes"})
_HELP = frozenset({"help", "info"})
_KEYWORDS: dict[str, Literal["stop", "start", "help"]] = {
    **dict.fromkeys(_STOP, "stop"),
    **dict.fromkeys(_START, "start"),
    **dict.fromkeys(_HELP, "help"),
}


class FormLike(Protocol):
    """A dict[str, str], aiohttp's MultiDictProxy from `request.post()`, or anything else with `.get`."""

    def get(self, key: str, /) -> object: ...


@dataclass(frozen=True, slots=True)
class Media:
    """A file still on Twilio's servers (MediaUrl{N}); fetching it needs the account's credentials."""

    url: str
    content_type: str


@dataclass(frozen=True, slots=True)
class TwilioMessage:
    channel: Literal["sms", "whatsapp"]
    number: str  # the customer, without "whatsapp:": "+15551234567"
    to: str  # our number or WhatsApp sender, without "whatsapp:"
    message_sid: str
    text: str
    profile_name: str  # WhatsApp ProfileName, "" when absent (always for SMS)
    media: tuple[Media, ...]
    keyword: Literal["stop", "start", "help"] | None


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


def parse_inbound(form: FormLike) -> TwilioMessage | Rejected:
    get = getattr(form, "get", None)
    if not callable(get):
        return Rejected(f"form: expected a mapping, got {type(form).__name__}")

    def field(name: str) -> str:
        try:
            value = get(name)
        except Exception:  # a hostile or broken mapping must not take the webhook down
            return ""
        # aiohttp's post() yields a FileField for a multipart file part: never a Twilio parameter.
        return value if isinstance(value, str) else ""

    sid_field, sid = next(((n, v) for n in _SID_FIELDS if (v := field(n).strip())), ("MessageSid", ""))
    if not sid:
        return Rejected("MessageSid: missing")
    if not _MESSAGE_SID.fullmatch(sid):
        return Rejected(f"{sid_field}: not a message SID (SM or MM followed by 32 hex digits)")

    sender = _clean(field("From"))
    if not sender:
        return Rejected("From: missing")
    channel: Literal["sms", "whatsapp"] = "sms"
    # WhatsApp addresses are "whatsapp:+15551234567" in From and To; SMS/MMS ones are bare E.164.
    if sender[: len(WHATSAPP_PREFIX)].lower() == WHATSAPP_PREFIX:
        channel, sender = "whatsapp", sender[len(WHATSAPP_PREFIX) :].strip()
        if not sender:
            return Rejected("From: whatsapp: without a number")
    elif ":" in sender:
        # Other Twilio channels prefix their addresses too (messenger:, rcs:): not SMS, so not handled here
        # rather than stored under a bogus phone number.
        return Rejected(f"From: unsupported channel {sender.split(':', 1)[0][:20]!r}")
    to = _clean(field("To"))
    if to[: len(WHATSAPP_PREFIX)].lower() == WHATSAPP_PREFIX:
        to = to[len(WHATSAPP_PREFIX) :].strip()

    # Body is "" (or absent) for media-only MMS/WhatsApp messages and for WhatsApp locations.
    body = _clean(field("Body"))
    # Twilio and carriers apply these to SMS only. WhatsApp users opt out by blocking the business in the
    # app, so a WhatsApp "stop" is just text here.
    keyword = _keyword(body) if channel == "sms" else None
    # Only WhatsApp sends Latitude/Longitude (a shared location pin); an SMS carrying them is not Twilio's.
    place = _location(field) if channel == "whatsapp" else ""
    text = "\n".join(p for p in (body, place) if p)
    media = _media(field)
    if not text and not media:
        return Rejected("Body: empty and no media or location")
    profile = " ".join(_clean(field("ProfileName")).split()) if channel == "whatsapp" else ""
    return TwilioMessage(channel, sender, to, sid, text, profile, media, keyword)


def _clean(value: str) -> str:
    # Handsets send \r\n (and the odd lone \r); NUL and other controls break logs, drivers and displays.
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", value).strip()


def _keyword(body: str) -> Literal["stop", "start", "help"] | None:
    # Whole message only, any case, ignoring the punctuation people add: "STOP.", "stop!", "¡Stop!".
    start, end = 0, len(body)
    while start < end and _trim(body[start]):
        start += 1
    while end > start and _trim(body[end - 1]):
        end -= 1
    return _KEYWORDS.get(body[start:end].casefold())


def _trim(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def _media(field: _Field) -> tuple[Media, ...]:
    raw = field("NumMedia").strip()
    count = int(raw) if _NUM_MEDIA.fullmatch(raw) else 0
    if count > _MAX_MEDIA:
        count = 0  # more than Twilio ever sends: the count is not to be trusted
    found = []
    for n in range(count):
        url = _clean(field(f"MediaUrl{n}"))
        # Twilio's media URLs are https://api.twilio.com/...; anything not http(s) is not something to fetch.
        if not url.lower().startswith(("https://", "http://")):
            continue
        content_type = _clean(field(f"MediaContentType{n}")).lower() or "application/octet-stream"
        found.append(Media(url, content_type))
    return tuple(found)


def _location(field: _Field) -> str:
    lat_raw, lon_raw = field("Latitude").strip(), field("Longitude").strip()
    if not (_DEGREES.fullmatch(lat_raw) and _DEGREES.fullmatch(lon_raw)):
        return ""
    lat, lon = float(lat_raw), float(lon_raw)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return ""

    def short(x: float) -> str:
        text = f"{x:.6f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text

    where = ", ".join(p for p in (" ".join(_clean(field(k)).split()) for k in ("Label", "Address")) if p)
    coords = f"({short(lat)}, {short(lon)}) https://maps.google.com/?q={short(lat)},{short(lon)}"
    return f"Location: {where} {coords}" if where else f"Location: {coords}"


class _Field(Protocol):
    def __call__(self, name: str, /) -> str: ...
