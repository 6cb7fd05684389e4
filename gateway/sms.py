"""SMS segment counting, the way carriers and Twilio bill it.

An SMS carries 140 bytes of user data. Text that fits the GSM 03.38 default alphabet (3GPP TS 23.038) is packed
7 bits a character, 160 septets; anything else goes as UCS-2, 70 UTF-16 code units. A longer message is sent as
concatenated segments, each giving up 6 bytes to the user data header (UDH) that numbers the parts: 153 septets
or 67 code units are left per segment. One character outside the GSM alphabet, an emoji or a curly quote, turns
the whole message into UCS-2. Twilio's optional "Smart Encoding" (replacing such look-alikes with GSM characters)
is not modelled here: count what is actually sent.
"""

from __future__ import annotations

from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

DEFAULT_MAX_SEGMENTS = 6  # SMS_MAX_SEGMENTS: how many segments one outbound message may take

GSM_SINGLE, GSM_MULTI = 160, 153  # septets: a lone message, and each part of a concatenated one
UCS2_SINGLE, UCS2_MULTI = 70, 67  # UTF-16 code units, the same

_ESC = "\x1b"
# The basic table in code order, 0x00-0x7F. 0x1B is the escape to the extension table, not a character: a
# literal ESC in the text cannot be sent as GSM-7 (a handset would read the next septet as an extension one).
# 0x09 is the capital Ç in TS 23.038, though early handsets showed it as ç: only Ç counts as GSM here.
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ" + _ESC + "ÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table: each is sent as ESC plus one septet, so it costs 2. Form feed (0x0A), ^ (0x14), { } (0x28,
# 0x29), \ (0x2F), [ ~ ] (0x3C-0x3E), | (0x40), € (0x65). The other codes are reserved and shown as the basic
# character, so nothing else is reachable.
_EXTENSION_TABLE = "\f^{}\\[~]|€"

assert len(_BASIC_TABLE) == 128 and len(_EXTENSION_TABLE) == 10
_GSM_BASIC = frozenset(_BASIC_TABLE) - {_ESC}
_GSM_EXTENSION = frozenset(_EXTENSION_TABLE)
_GSM = _GSM_BASIC | _GSM_EXTENSION


def encoding(text: str) -> Encoding:
    """GSM-7 when every character is in the basic or the extension table, else UCS-2."""
    return "GSM-7" if _GSM.issuperset(text) else "UCS-2"


def segments(text: str) -> int:
    """How many segments `text` is sent as (and billed for). An empty text is 0: Twilio refuses an empty body
    (error 21602), so nothing is sent, and 0 keeps the count additive over the parts of a split."""
    if _GSM.issuperset(text):
        wide = sum(map(text.count, _EXTENSION_TABLE))  # escape pairs, 2 septets each
        return _count(text, wide, _GSM_EXTENSION, GSM_SINGLE, GSM_MULTI)
    wide = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)  # surrogate pairs, 2 code units each
    return _count(text, wide, None, UCS2_SINGLE, UCS2_MULTI)


def fits(text: str, max_segments: int = DEFAULT_MAX_SEGMENTS) -> bool:
    """Whether `text` goes out as one message of at most `max_segments` segments."""
    return segments(text) <= max_segments


def _count(text: str, wide: int, wide_chars: frozenset[str] | None, single: int, multi: int) -> int:
    """Segments for `text`, where `wide` characters cost 2 units and the rest 1. `wide_chars` names them (None:
    any code point above the BMP, a UTF-16 surrogate pair)."""
    total = len(text) + wide
    if total <= single:  # no header needed: the whole 160 septets / 70 code units
        return 1 if text else 0
    if not wide:
        return -(-total // multi)
    # A 2-unit character never straddles two segments: an ESC split from its septet would show as a space and
    # the next segment would start with the basic character (| as ¡, € as e), and a surrogate pair split in two
    # is two invalid halves. Handsets and Twilio leave the last unit empty and start the next segment with it.
    count, used = 1, 0
    for char in text:
        cost = 2 if (char in wide_chars if wide_chars is not None else char > "\uffff") else 1
        if used + cost > multi:
            count, used = count + 1, 0
        used += cost
    return count
