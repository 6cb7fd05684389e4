"""SMS segments as carriers and Twilio count them: GSM-7 160/153 septets, UCS-2 70/67 UTF-16 code units."""

from __future__ import annotations

import random
import string

import pytest

from gateway.sms import encoding, fits, segments
from gateway.text_split import text_length

EXTENSION = "\f^{}\\[~]|€"


def reference_segments(text: str) -> int:
    """Written from the rules, not the module: a list of per-character costs, packed greedily, no pair split."""
    gsm = encoding(text) == "GSM-7"
    costs = [2 if (c in EXTENSION if gsm else ord(c) > 0xFFFF) else 1 for c in text]
    single, multi = (160, 153) if gsm else (70, 67)
    if not costs:
        return 0
    if sum(costs) <= single:
        return 1
    count, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            count, used = count + 1, 0
        used += cost
    return count


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("á" * 70, 1),
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
    ],
)
def test_segment_boundaries(text: str, expected: int) -> None:
    assert segments(text) == expected


@pytest.mark.parametrize("char", ["€", "{", "}", "[", "]", "\\", "^", "~", "|", "\f"])
def test_extension_character_stays_gsm_but_costs_two(char: str) -> None:
    assert encoding("a" * 158 + char) == "GSM-7"
    assert segments("a" * 158 + char) == 1  # 160 septets
    assert segments("a" * 159 + char) == 2  # 161 septets: the same 160 characters, one segment more
    assert segments(char * 80) == 1
    assert segments(char * 81) == 2


def test_extension_character_never_straddles_a_segment() -> None:
    # 306 septets either way; with 152 before it, the € would start on the last septet of the first segment.
    assert segments("a" * 153 + "€" + "a" * 151) == 2
    assert segments("a" * 152 + "€" + "a" * 152) == 3  # 152 (one septet left empty) + 153 + 1
    assert segments("a" * 152 + "€" + "a" * 151) == 2  # 152 + 153
    # 76 escape pairs fill 152 of a segment's 153 septets, so 306 septets of € take 3 segments, not 2.
    assert segments("€" * 153) == 3


def test_one_emoji_turns_gsm_into_ucs2() -> None:
    assert (encoding("a" * 100), segments("a" * 100)) == ("GSM-7", 1)
    assert (encoding("a" * 100 + "😀"), segments("a" * 100 + "😀")) == ("UCS-2", 2)  # 102 code units
    assert segments("😀" * 35) == 1  # 70 code units
    assert segments("😀" * 36) == 2  # 33 pairs in the first segment (66 of 67), 3 in the second


def test_surrogate_pair_never_straddles_a_segment() -> None:
    # 134 code units either way; with 66 before it, the emoji would start on the last unit of the first segment.
    assert segments("á" * 67 + "😀" + "á" * 65) == 2
    assert segments("á" * 66 + "😀" + "á" * 66) == 3  # 66 (one unit left empty) + 67 + 1
    assert segments("á" * 66 + "😀" + "á" * 65) == 2
    assert segments("😀" * 67) == 3  # 33 + 33 + 1 pairs


@pytest.mark.parametrize(
    ("char", "expected"),
    [
        ("é", "GSM-7"),  # basic table 0x05
        ("É", "GSM-7"),
        ("á", "UCS-2"),  # Spanish/Portuguese á, í, ó, ú are not in the basic table
        ("Ç", "GSM-7"),  # 0x09 is the capital in TS 23.038
        ("ç", "UCS-2"),
        ("ñ", "GSM-7"),
        ("¿", "GSM-7"),
        ("ß", "GSM-7"),
        ("Δ", "GSM-7"),
        ("δ", "UCS-2"),
        ("ü", "GSM-7"),
        ("ê", "UCS-2"),
        ("’", "UCS-2"),  # a curly apostrophe, common in pasted replies
        ("\t", "UCS-2"),  # no tab in GSM 03.38
        ("`", "UCS-2"),
        ("\x1b", "UCS-2"),  # the escape code itself is no character
        ("\u00a0", "UCS-2"),  # no-break space
    ],
)
def test_single_characters(char: str, expected: str) -> None:
    assert encoding("Hello " + char) == expected
    assert segments("x" * 150 + char) == (1 if expected == "GSM-7" else 3)


def test_printable_ascii_is_gsm_except_the_backtick() -> None:
    printable = string.printable.replace("\t", "").replace("\x0b", "")  # form feed stays: it is an extension
    assert encoding(printable.replace("`", "")) == "GSM-7"
    costly = {c for c in printable if c != "`" and segments("a" * 159 + c) == 2}
    assert costly == set(EXTENSION) - {"€"}


def test_whole_basic_table_is_gsm() -> None:
    basic = (
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    assert len(set(basic)) == 127  # 128 codes, one of them the escape
    assert encoding(basic) == "GSM-7"
    assert segments(basic + "a" * 33) == 1  # 160 septets, every one costs 1
    assert segments(basic + "a" * 34) == 2


def test_random_texts_match_the_reference() -> None:
    rng = random.Random(3)
    alphabet = "a €{😀áÇç\n"
    for _ in range(500):
        text = "".join(rng.choice(alphabet[: rng.randint(1, len(alphabet))]) for _ in range(rng.randint(0, 700)))
        assert segments(text) == reference_segments(text) == text_length(text, "sms_segments"), text


def test_fits() -> None:
    assert fits("a" * 918)  # 6 segments by default
    assert not fits("a" * 919)
    assert fits("a" * 306, 2)
    assert not fits("😀" * 36, 1)
    assert fits("", 0)
