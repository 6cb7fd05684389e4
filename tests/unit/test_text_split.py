"""Splitting long outbound messages: every part within the channel's limit, cut where a reader expects it."""

from __future__ import annotations

import random
import re
import time
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from itertools import pairwise

import pytest

from gateway.text_split import Units, split_text, text_length

ZWJ = "\u200d"
FAMILY = "👩\u200d👩\u200d👧"
THUMBS = "👍🏽"
FLAG = "🇩🇪"
WORDS = ("hello", "thanks", "order", "refund", "the", "a", "is", "not", "working", "please", "shipping", "Zoë")
WORDS += ("naïve", "caf" + "e\u0301", "A\u030angstro\u0308m", "tracking-number", "e-mail", "x" * 9)
URLS = (
    "https://example.com/help?topic=refund&id=42",
    "http://shop.example.org/a/b.c?d=e.f#g",
    "www.example.de/faq?q=1.2",
    "https://t.me/support_bot?start=x.y",
    "https://example.com/orders/12345.",
)
EMOJI = ("😀", THUMBS, FAMILY, FLAG, "🇫🇷" + FLAG, "❤\ufe0f", "1\ufe0f\u20e3", "🏳\ufe0f\u200d🌈", "🧑🏿\u200d💻")
CJK = ("你好。", "谢谢！", "请问我的订单在哪里？", "日本語のテキストです。", "한국어 텍스트")
SEPARATORS = (" ",) * 12 + ("  ", "\n", "\n\n", "\t", "\n \n", " \n")
ENDINGS = ("",) * 6 + (".", "!", "?", "…", ",", ":")
SENTENCE_END = ".!?…。！？"
CLOSERS = "\"')]”’»」』）"
CJK_STOP = re.compile(rf"[。！？][{re.escape(CLOSERS)}]*(?=\S)")
SPACE_RUN = re.compile(r"\s+")
MODES: tuple[Units, Units] = ("chars", "utf16")
WHITESPACE = {ord(c): None for c in map(chr, range(0x3001)) if c.isspace()}  # U+3000 is the last one


def units_of(text: str, units: str) -> int:
    """Independent of the module: a code point above the BMP is a surrogate pair in UTF-16."""
    return len(text) + (sum(ord(c) > 0xFFFF for c in text) if units == "utf16" else 0)


def random_token(rng: random.Random) -> str:
    kind = rng.choices(["word", "url", "emoji", "cjk", "glued", "long"], [60, 8, 12, 10, 5, 2])[0]
    if kind == "word":
        return rng.choice(WORDS) + rng.choice(ENDINGS)
    if kind == "url":
        return rng.choice(URLS)
    if kind == "emoji":
        return rng.choice(EMOJI)
    if kind == "cjk":  # CJK sentences follow each other without spaces
        return "".join(rng.choice(CJK[:4]) for _ in range(rng.randint(1, 4))) if rng.random() < 0.8 else CJK[4]
    if kind == "glued":
        return rng.choice(WORDS) + rng.choice(EMOJI) + rng.choice(ENDINGS)
    return rng.choice(["y", "é", "😀", FLAG]) * rng.randint(5, 120) + rng.choice(["", rng.choice(URLS)])


def random_text(rng: random.Random, tokens: int) -> str:
    text = rng.choice(["", "", "", " ", "\n"])
    for _ in range(tokens):
        text += random_token(rng) + rng.choice(SEPARATORS)
    return text[:-1] if rng.random() < 0.7 else text


def extends(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char).startswith("M")
        or code in (0xFE0E, 0xFE0F, 0x200D)
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
    )


def clusters(text: str) -> list[tuple[int, int]]:
    """A forward segmentation, written separately from the module's backward check: flags pair up from the left,
    marks/selectors/skin tones/ZWJ attach to what precedes them, and a ZWJ also takes what follows."""
    spans, i = [], 0
    while i < len(text):
        j = i + 1
        if "🇦" <= text[i] <= "🇿" and j < len(text) and "🇦" <= text[j] <= "🇿":
            j += 1
        while j < len(text) and (extends(text[j]) or text[j - 1] == ZWJ):
            j += 1
        spans.append((i, j))
        i = j
    return spans


def atoms(text: str) -> list[tuple[int, int]]:
    """Words, URLs and emoji as the reader sees them: whitespace-separated, and CJK split after its 。！？."""
    spans = []
    for word in re.finditer(r"\S+", text):
        start = word.start()
        for stop in CJK_STOP.finditer(text, word.start(), word.end()):
            spans.append((start, stop.end()))
            start = stop.end()
        spans.append((start, word.end()))
    return spans


def locate(text: str, parts: list[str]) -> list[tuple[int, int]]:
    """Where each part sits in the text; asserts they appear in order with only whitespace between."""
    spans, pos = [], 0
    for part in parts:
        while not text.startswith(part, pos):
            assert pos < len(text) and text[pos].isspace(), f"part {part!r} not found in order at {pos}"
            pos += 1
        spans.append((pos, pos + len(part)))
        pos += len(part)
    assert text[pos:].strip() == "", "text lost at the end"
    return spans


def window_end(text: str, start: int, limit: int, units: str) -> int:
    end, total = start, 0
    while end < len(text) and total + units_of(text[end], units) <= limit:
        total += units_of(text[end], units)
        end += 1
    return end


def break_rank(text: str, cut: int, resume: int) -> int:
    """3 paragraph, 2 line, 1 sentence, 0 anything else, for a part ending at `cut` and the next starting at
    `resume`."""
    newlines = text[cut:resume].count("\n")
    if newlines:
        return min(newlines, 2) + 1
    if resume == cut:  # no whitespace: only a CJK sentence end (with its closing brackets) counts
        return 1 if text[max(0, cut - 4) : cut].rstrip(CLOSERS)[-1:] in ("。", "！", "？") else 0
    prev = text[cut - 2] if text[cut - 1] in CLOSERS and cut > 1 else text[cut - 1]
    return 1 if prev in SENTENCE_END else 0


def best_rank_between(text: str, lo: int, hi: int) -> int:
    """The best-ranked break with its cut position in (lo, hi]."""
    best = 0
    for run in SPACE_RUN.finditer(text, lo + 1):
        if run.start() > hi:
            break
        if not text[run.start() - 1].isspace():
            best = max(best, break_rank(text, run.start(), run.end()))
    if any(stop.end() <= hi for stop in CJK_STOP.finditer(text, lo, hi)):
        best = max(best, 1)
    return best


def containing(spans: list[tuple[int, int]], starts: list[int], position: int) -> tuple[int, int] | None:
    i = bisect_right(starts, position) - 1
    return spans[i] if i >= 0 and spans[i][0] <= position < spans[i][1] else None


def check_cuts(text: str, parts: list[str], limit: int, cost: Callable[[str], int]) -> list[tuple[int, int]]:
    """No cut inside a grapheme cluster or a word that would fit the limit on its own; returns the spans."""
    spans = locate(text, parts)
    cluster_spans = clusters(text)
    cluster_starts = [s for s, _ in cluster_spans]
    word_spans = atoms(text)
    word_starts = [s for s, _ in word_spans]
    for (_start, cut), (resume, _) in pairwise(spans):
        for position in (cut, resume):
            cluster = containing(cluster_spans, cluster_starts, position)
            assert cluster is None or cluster[0] == position or cost(text[slice(*cluster)]) > limit, (
                f"cut inside a cluster that fits: {text[position - 3 : position + 3]!r}"
            )
        word = containing(word_spans, word_starts, cut)
        assert word is None or word[0] == cut or cost(text[slice(*word)]) > limit, (
            f"cut inside {text[slice(*word)]!r} though it fits the limit {limit}"
        )
    return spans


def check_split(text: str, limit: int, units: Units) -> list[str]:
    parts = split_text(text, limit, units)
    if units_of(text, units) <= limit:
        assert parts == [text]
        return parts
    assert parts, "a non-blank text gave no parts"
    for part in parts:
        assert 0 < units_of(part, units) <= limit, (part, limit, units)
        assert part.strip(), "whitespace-only part"
    assert "".join(parts).translate(WHITESPACE) == text.translate(WHITESPACE)
    for before, after in pairwise(parts):  # whitespace at a cut is dropped
        assert before == before.rstrip() and after == after.lstrip()
    spans = check_cuts(text, parts, limit, lambda t: units_of(t, units))
    word_spans = atoms(text)
    word_starts = [s for s, _ in word_spans]
    for (start, cut), (resume, _) in pairwise(spans):
        # Full enough: at least half the window, unless the next word would not have fit in it anyway.
        end = window_end(text, start, limit, units)
        next_word = containing(word_spans, word_starts, resume)
        assert 2 * (cut - start) >= end - start or (next_word and next_word[1] > end), (start, cut, end)
        # The best-ranked break in the second half of the window wins.
        half = start + (end - start) // 2
        assert break_rank(text, cut, resume) >= best_rank_between(text, half, end), (text[start:end], cut)
    return parts


@pytest.mark.parametrize("batch", range(20))
def test_random_texts_keep_every_invariant(batch: int) -> None:
    for seed in range(batch * 15, batch * 15 + 15):
        rng = random.Random(seed)
        text = random_text(rng, rng.randint(1, 200))
        for units in MODES:
            limit = rng.choice([2, 3, 4, 5, 7, 10, 16, 30, 64, 100, 250, 1000, rng.randint(2, 400)])
            try:
                check_split(text, limit, units)
            except AssertionError as error:
                raise AssertionError(f"seed {seed}, {units}, limit {limit}: {error}") from error


def test_text_length_counts_utf16_code_units() -> None:
    assert text_length("") == text_length("", "utf16") == 0
    assert (text_length("héllo"), text_length("héllo", "utf16")) == (5, 5)
    assert (text_length("😀"), text_length("😀", "utf16")) == (1, 2)
    assert (text_length(FAMILY), text_length(FAMILY, "utf16")) == (5, 8)
    assert (text_length(FLAG), text_length(FLAG, "utf16")) == (2, 4)
    assert text_length("e\u0301", "utf16") == 2
    with pytest.raises(ValueError):
        text_length("x", "bytes")  # type: ignore[arg-type]


def test_text_that_fits_comes_back_unchanged() -> None:
    assert split_text("", 2) == [""]
    assert split_text("  hi there  ", 12) == ["  hi there  "]
    assert split_text("😀" * 2048, 4096, "utf16") == ["😀" * 2048]
    assert split_text("😀" * 2049, 4096, "utf16") == ["😀" * 2048, "😀"]


def test_limit_below_two_is_refused() -> None:
    for units in MODES:
        for limit in (1, 0, -5):
            with pytest.raises(ValueError):
                split_text("a few words here", limit, units)


def agent_reply(rng: random.Random, size: int) -> str:
    sentences = [
        "Thanks for reaching out about your order.",
        "I checked the tracking number and the parcel left our warehouse on Monday.",
        "You can follow it at https://example.com/track?id=AB123.45 at any time.",
        "If it has not arrived by Friday, reply here and we will send a replacement 📦.",
        "Refunds go back to the original payment method within 5–7 business days.",
        "Sorry for the trouble! 🙏",
    ]
    paragraphs: list[str] = []
    while sum(map(len, paragraphs)) < size:
        paragraphs.append(" ".join(rng.choice(sentences) for _ in range(rng.randint(3, 9))))
    return "\n\n".join(paragraphs)


@pytest.mark.parametrize("units", MODES)
def test_long_agent_reply_splits_at_paragraphs(units: Units) -> None:
    text = agent_reply(random.Random(9), 9000)
    assert 9000 <= len(text) < 9800
    parts = check_split(text, 4096, units)
    assert len(parts) == 3
    assert "\n\n".join(parts) == text  # every cut was a paragraph break


def test_paragraph_break_beats_a_fuller_sentence_cut() -> None:
    first = "We found your order. It ships today. " * 2 + "Tracking follows."  # 91 chars
    text = first + "\n\n" + "Anything else? Just reply. " * 10
    parts = check_split(text, 140, "chars")
    assert parts[0] == first


def test_early_paragraph_break_does_not_make_a_tiny_part() -> None:
    text = "Hi Anna,\n\n" + "Your refund was approved. The money is on its way. " * 6
    parts = check_split(text, 120, "chars")
    assert len(parts[0]) > 60
    assert parts[0].endswith(".")  # the sentence cut later in the window, not the greeting's paragraph
    assert parts[0].startswith("Hi Anna,\n\nYour refund")


def test_line_break_beats_sentence_and_sentence_beats_space() -> None:
    line = "first line of the address. second part\n"
    parts = check_split(line + "and a sentence that ends here. Then more words follow", 60, "chars")
    assert parts[0] == line.rstrip()
    parts = check_split("One sentence ends here. and then lots of words without any end", 40, "chars")
    assert parts[0] == "One sentence ends here."
    parts = check_split("no sentence ends anywhere in this rather long line of words", 40, "chars")
    assert parts[0] == "no sentence ends anywhere in this rather"


def test_cjk_splits_after_its_full_stops() -> None:
    text = "你好世界。" * 30
    parts = check_split(text, 23, "chars")
    assert all(part.endswith("。") for part in parts)
    assert "".join(parts) == text
    quoted = "他说：「好的。」" * 10  # the closing bracket stays with its sentence
    assert all(part.endswith("。」") for part in check_split(quoted, 20, "chars"))


def test_urls_are_never_cut() -> None:
    url = "https://example.com/reset?token=abc.def&next=/account?tab=security"
    text = "Please open " + url + " within the next hour to reset your password."
    parts = check_split(text, 80, "chars")
    assert url in parts[0] or url in parts[1]
    # A 。 or ！ inside a URL is not a CJK sentence end.
    text = "你好。" * 5 + "https://ex.jp/路径。a！b" + " 谢谢。"
    parts = check_split(text, 24, "chars")
    assert any("https://ex.jp/路径。a！b" in part for part in parts)


def test_word_longer_than_the_limit_is_the_only_hard_cut() -> None:
    parts = check_split("short " + "x" * 50 + " tail", 20, "chars")
    assert parts == ["short", "x" * 20, "x" * 20, "x" * 10 + " tail"]


@pytest.mark.parametrize("limit", [4095, 4096, 4097])
def test_emoji_at_the_limit_never_exceed_it_in_utf16(limit: int) -> None:
    # The prefixes shift where the limit falls inside a cluster (a family is 8 code units, a flag or a toned thumb 4).
    for prefix in ("", "a", "ab"):
        for cluster in ("😀", FLAG, FAMILY, THUMBS):
            text = prefix + cluster * (12_000 // len(cluster))
            parts = check_split(text, limit, "utf16")
            assert all(text_length(part, "utf16") <= limit for part in parts)
            assert "".join(parts) == text
            assert all(part.removeprefix(prefix).replace(cluster, "") == "" for part in parts)
            assert units_of(parts[0], "utf16") > limit - units_of(cluster, "utf16")  # filled up to the last whole one


@pytest.mark.parametrize("units", MODES)
def test_small_limits_keep_clusters_whole(units: Units) -> None:
    for cluster in ("e\u0301", THUMBS, FLAG, "1\ufe0f\u20e3", "❤\ufe0f"):
        text = cluster * 40
        size = units_of(cluster, units)
        parts = check_split(text, size + 1, units)
        assert parts == [cluster] * 40
    # A cluster longer than the limit must be cut; the next cluster still starts a part of its own.
    assert check_split(FAMILY * 2, 4, "chars") == ["👩\u200d👩\u200d", "👧", "👩\u200d👩\u200d", "👧"]


def test_whitespace_at_cuts_is_dropped_and_indentation_kept() -> None:
    assert check_split("  hello world", 8, "chars") == ["  hello", "world"]
    assert check_split("alpha   \n\n\n  beta   gamma", 10, "chars") == ["alpha", "beta", "gamma"]
    assert split_text(" \n " * 10, 4) == []
    assert check_split(" " * 20 + "word", 8, "chars") == ["word"]
    # Indentation is dropped when keeping it would force a cut inside the first word.
    assert check_split("  abcdefgh ij", 8, "chars") == ["abcdefgh", "ij"]


@pytest.mark.parametrize("units", MODES)
def test_one_megabyte_splits_fast(units: Units) -> None:
    rng = random.Random(1)
    sample = " ".join(random_token(rng) for _ in range(15_000))  # about 110 KB; repeated, to keep the test quick
    text = "\n".join([sample] * 10)[:1_000_000]
    assert len(text) == 1_000_000
    started = time.perf_counter()
    parts = split_text(text, 4096, units)
    assert time.perf_counter() - started < 1.0
    assert all(0 < units_of(part, units) <= 4096 for part in parts)
    spans = locate(text, parts)
    for _, cut in spans[:-1]:
        assert text[cut].isspace() or text[cut - 1] in "。！？", f"cut inside a word: {text[cut - 9 : cut + 9]!r}"
    for pathological in ("x" * 1_000_000, FLAG * 250_000):  # no whitespace at all: hard cuts all the way
        started = time.perf_counter()
        parts = split_text(pathological, 4096, units)
        assert time.perf_counter() - started < 1.0
        assert "".join(parts) == pathological


# SMS: the limit is in segments (gateway.sms), a GSM-7 or UCS-2 message of 160/153 or 70/67 units each.


def sms_encoding(text: str) -> str:
    from gateway.sms import encoding  # appended to this module: imports stay in the functions that need them

    return encoding(text)


def sms_segments(text: str) -> int:
    from gateway.sms import segments

    return segments(text)


def check_sms_split(text: str, limit: int) -> list[str]:
    """The invariants of check_split, with the cost in segments: parts within the limit, nothing lost, no cut
    inside a cluster or a word that fits, and every part full: the next word would not have fit."""
    parts = split_text(text, limit, "sms_segments")
    if sms_segments(text) <= limit:
        assert parts == [text]
        return parts
    for part in parts:
        assert 0 < sms_segments(part) <= limit, (part, limit)
        assert part.strip(), "whitespace-only part"
    assert "".join(parts).translate(WHITESPACE) == text.translate(WHITESPACE)
    spans = check_cuts(text, parts, limit, sms_segments)
    word_spans = atoms(text)
    word_starts = [s for s, _ in word_spans]
    for (start, cut), (resume, _) in pairwise(spans):
        next_word = containing(word_spans, word_starts, resume)
        assert next_word is not None
        fuller = text[start : next_word[1]]
        assert sms_segments(fuller) > limit or 2 * (cut - start) >= len(fuller), (text[start:cut], next_word)
    return parts


def test_sms_text_length_counts_segments() -> None:
    assert text_length("", "sms_segments") == 0
    assert text_length("a" * 160, "sms_segments") == 1
    assert text_length("a" * 161, "sms_segments") == 2
    assert text_length("a" * 100 + "😀", "sms_segments") == 2


def test_sms_english_reply_splits_into_six_segment_parts() -> None:
    sentences = [
        "Thanks for reaching out about your order.",
        "I checked the tracking number and the parcel left our warehouse on Monday.",
        "If it has not arrived by Friday, reply here and we will send a replacement.",
        "Refunds go back to the original payment method within 5-7 business days.",
        "Sorry for the trouble!",
    ]
    rng = random.Random(4)
    text = ""
    while len(text) < 2000:
        text += rng.choice(sentences) + " "
    text = text[:2000].rstrip(" ") + " end."
    assert sms_encoding(text) == "GSM-7" and sms_segments(text) > 6
    parts = check_sms_split(text, 6)
    assert len(parts) == 3  # 2,000 characters of 918 at most, cut at sentence ends
    assert all(sms_segments(part) <= 6 and sms_encoding(part) == "GSM-7" for part in parts)
    assert " ".join(parts) == text  # only the single space at each cut is gone
    assert all(part[-1] in ".!" for part in parts)  # sentence ends beat any space, no part ends mid-word
    assert all(len(part) > 918 // 2 for part in parts[:-1])


def test_sms_spanish_stays_gsm() -> None:
    text = " ".join(["¿Puedes confirmar el pedido? El equipo de España lo revisa mañana. ¡Gracias, señor Muñoz!"] * 12)
    assert sms_encoding(text) == "GSM-7"
    parts = check_sms_split(text, 2)
    assert all(sms_encoding(part) == "GSM-7" and sms_segments(part) <= 2 for part in parts)
    assert all(len(part) > 153 for part in parts[:-1])  # GSM-7 fills 306 septets, not UCS-2's 134 units
    assert " ".join(parts) == text


def test_sms_emoji_makes_ucs2_parts() -> None:
    text = " ".join(["Your parcel is on its way 📦 and should arrive on Friday."] * 30)
    parts = check_sms_split(text, 3)
    assert all(sms_encoding(part) == "UCS-2" and sms_segments(part) <= 3 for part in parts)
    assert all(len(part) <= 3 * 67 for part in parts)
    assert " ".join(parts) == text


def test_sms_limit_of_one_segment() -> None:
    text = "Hello there, your order 1234 has shipped. " * 20 + "Thanks 😀 " * 30
    parts = check_sms_split(text, 1)
    assert all(sms_segments(part) == 1 for part in parts)
    assert max(len(part) for part in parts) > 70  # the GSM-7 parts take up to 160
    assert check_sms_split("😀" * 36, 1) == ["😀" * 35, "😀"]
    assert check_sms_split("a" * 161, 1) == ["a" * 160, "a"]
    assert check_sms_split("€" * 81, 1) == ["€" * 80, "€"]


@pytest.mark.parametrize("limit", [0, -1])
def test_sms_limit_below_one_is_refused(limit: int) -> None:
    with pytest.raises(ValueError):
        split_text("a few words here", limit, "sms_segments")


@pytest.mark.parametrize("batch", range(6))
def test_sms_random_texts_keep_every_invariant(batch: int) -> None:
    for seed in range(batch * 10, batch * 10 + 10):
        rng = random.Random(seed)
        text = random_text(rng, rng.randint(1, 300))
        if rng.random() < 0.5:  # half of them GSM-7 only, half mixed
            text = "".join(c if sms_encoding(c) == "GSM-7" else "x" for c in text)
        limit = rng.choice([1, 2, 3, 6, 10])
        try:
            check_sms_split(text, limit)
        except AssertionError as error:
            raise AssertionError(f"seed {seed}, limit {limit}: {error}") from error
