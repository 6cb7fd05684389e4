"""Splitting an outbound message that is longer than a channel's limit into parts, before it is sent.

Channels count length differently. Telegram's sendMessage takes "1-4096 characters after entities parsing"
(Bot API) and counts those characters in UTF-16 code units, so an emoji outside the BMP costs 2 there. SMS is
limited in segments, as carriers and Twilio count and bill them (`gateway.sms.segments`: GSM-7 or UCS-2, 160/153
or 70/67 per segment), so a Twilio SMS reply is split into messages of at most SMS_MAX_SEGMENTS segments each.
WhatsApp and the rest are measured here in code points. Pass the unit the channel counts in.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from typing import Literal

from gateway import sms

Units = Literal["chars", "utf16", "sms_segments"]

_ZWJ = "\u200d"
_CLOSERS = "\"')\\]”’»」』）"
# One pass over the text finds the ranked breaks (plain spaces are looked for per part, backwards). A URL is
# matched first and skipped whole, so a "。" or "?" inside it never counts. A whitespace run counts if it holds
# a line break or follows the end of a sentence (closing quotes and brackets may sit in between). CJK text has
# no spaces, so 。！？ count by themselves, with the brackets after them (possessive: never left behind).
_BREAKS = re.compile(
    rf"(?P<url>(?i:https?://|www\.)\S+)"
    rf"|(?<!\s)(?P<ws>[^\S\n]*+\n\s*+|(?:(?<=[.!?…。！？])|(?<=[.!?…。！？][{_CLOSERS}]))\s++)"
    rf"|[。！？][{_CLOSERS}]*+(?=\S)"
)
_NON_SPACE = re.compile(r"\S")
_REGIONAL = "".join(map(chr, range(0x1F1E6, 0x1F200)))  # regional indicators: a flag is a pair of them


def text_length(text: str, units: Units = "chars") -> int:
    """Length as the channel counts it: code points, UTF-16 code units (a non-BMP emoji counts 2), or SMS
    segments (0 for an empty text)."""
    if units == "chars":
        return len(text)
    if units == "utf16":
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    if units == "sms_segments":
        return sms.segments(text)
    raise ValueError(f"unknown units {units!r}")


def split_text(text: str, limit: int, units: Units = "chars") -> list[str]:
    """Split `text` into parts of at most `limit` (in `units`), in order, none empty or only whitespace.

    Greedy: each part takes as much as fits, ending at the best break in that window. Breaks rank paragraph
    (blank line) > line break > sentence end (". ", "! ", "? ", "… ", CJK 。！？, punctuation kept) > any
    whitespace. The highest-ranked break in the second half of the window wins; if no break lies there, the
    last break of any rank does, so a paragraph break early in the window never makes a tiny part.
    Words and URLs are never cut, nor is a grapheme cluster (combining marks, variation selectors, ZWJ
    sequences, skin tones, flag pairs); only a word longer than the limit is cut hard, at a cluster boundary.
    Whitespace at a cut is dropped, nothing else (the text's own indentation stays, unless it alone would force
    a hard cut). A text that fits comes back as [text]; a whitespace-only text that does not fit, as [].
    The limit is at least 2, or at least 1 in "sms_segments" (one segment holds 35 characters of any kind).
    """
    least = 1 if units == "sms_segments" else 2  # a UTF-16 limit of 1 could not hold a single emoji
    if limit < least:
        raise ValueError(f"limit must be at least {least}, not {limit}")
    if text_length(text, units) <= limit:
        return [text]
    ranked = _ranked_breaks(text)
    parts: list[str] = []
    start = 0
    while (match := _NON_SPACE.search(text, start)) is not None:
        first = match.start()
        if parts:  # whitespace at a cut is dropped
            start = first
        end = _window_end(text, start, limit, units)
        if end == len(text):
            parts.append(text[start:])
            break
        cut = _best_break(text, ranked, start, end)
        if cut is None:
            if start < first:  # the text's own indentation would force a hard cut: drop it instead
                start = first
                continue
            cut = _hard_cut(text, first, end, start)
        parts.append(text[start:cut].rstrip())
        start = cut
    return parts


def _ranked_breaks(text: str) -> tuple[list[int], list[int], list[int]]:
    """Where a part may end, sorted: [0] every sentence, line or paragraph break, [1] line or paragraph
    breaks, [2] paragraph breaks (two or more line breaks in one whitespace run)."""
    ranked: tuple[list[int], list[int], list[int]] = ([], [], [])
    for match in _BREAKS.finditer(text):
        if match.lastgroup == "url":
            continue
        cut, end = match.span()
        if match.lastgroup == "ws":
            if not _space_breaks(text, cut, end):
                continue
            rank = min(match[0].count("\n"), 2)
        elif _extends(text[end]):
            continue
        else:
            cut, rank = end, 0
        for k in range(rank + 1):
            ranked[k].append(cut)
    return ranked


def _best_break(text: str, ranked: tuple[list[int], ...], start: int, end: int) -> int | None:
    half = start + (end - start) // 2
    for breaks in reversed(ranked):
        i = bisect_right(breaks, end) - 1
        if i >= 0 and breaks[i] > half:
            return breaks[i]
    # No ranked break in the second half: the last whitespace, wherever it is, then the last break at all.
    cut = end
    while cut > start and not (text[cut].isspace() and not text[cut - 1].isspace() and _space_breaks(text, cut)):
        cut -= 1
    i = bisect_right(ranked[0], end) - 1
    cut = max(cut, ranked[0][i] if i >= 0 else 0)
    return cut if cut > start else None


def _space_breaks(text: str, cut: int, end: int | None = None) -> bool:
    """Whether the whitespace run at text[cut:end] may be cut away without splitting a cluster: not after a ZWJ,
    which joins what follows, nor before a combining mark, which would lose its base."""
    if end is None:
        after = _NON_SPACE.search(text, cut)
        end = after.start() if after else len(text)
    return cut > 0 and text[cut - 1] != _ZWJ and (end == len(text) or not _extends(text[end]))


def _window_end(text: str, start: int, limit: int, units: Units) -> int:
    """The largest end with text[start:end] within the limit; at least start + 1, since limit >= 2 (>= 1 for
    segments, and any one code point is one segment)."""
    if units == "sms_segments":
        # Code points per segment: at most 160 (GSM basic alone) or 153 each once concatenated, at least 35 (a
        # lone UCS-2 segment of surrogate pairs) or 33 each (67 code units hold 33 pairs). The count only grows
        # with the end, even when a character turns the text into UCS-2: the up to 67 (alone 70) characters of a
        # UCS-2 segment always fit one GSM-7 segment at 2 septets each, so the binary search below holds.
        fewest, most = (35, 160) if limit == 1 else (33 * limit, sms.GSM_MULTI * limit)
        lo, hi = min(len(text), start + fewest), min(len(text), start + most)
    else:
        lo, hi = min(len(text), start + limit // 2), min(len(text), start + limit)
    if units == "chars":
        return hi
    while lo < hi:  # the cost only grows with the end; in UTF-16 every code point costs 1 or 2
        mid = (lo + hi + 1) // 2
        if text_length(text[start:mid], units) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _hard_cut(text: str, first: int, end: int, start: int) -> int:
    """A word longer than the limit: cut at the last cluster boundary that keeps the part non-blank."""
    for cut in range(end, first, -1):
        if not _joins(text, cut, start):
            return cut
    return end  # a single cluster longer than the limit (a long ZWJ sequence): only a code point cut is left


def _joins(text: str, i: int, lo: int) -> bool:
    """Whether text[i] belongs to the cluster of text[i - 1]. Flags are regional-indicator pairs, counted from
    `lo`, a known cluster boundary, so a run of flags is paired the same way from any start."""
    prev, char = text[i - 1], text[i]
    if prev == _ZWJ or _extends(char):
        return True
    if prev in _REGIONAL and char in _REGIONAL:
        before = text[lo:i]
        return (len(before) - len(before.rstrip(_REGIONAL))) % 2 == 1  # an odd run: text[i - 1] opens a pair
    return False


def _extends(char: str) -> bool:
    """Attaches to the character before: marks (Mn, Mc, Me), variation selectors, ZWJ, skin tones, emoji tags."""
    code = ord(char)
    if code < 0x300:
        return False
    return (
        unicodedata.category(char)[0] == "M"
        or code in (0xFE0E, 0xFE0F, 0x200D)
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
    )
