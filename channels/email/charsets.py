"""Bytes and encoded words turned into text, in whatever charset the sender declared or actually used.

Holds the charset aliases (labels read as the superset real clients mean by them), `decode_bytes` with its
fallbacks (UTF-8, then Windows-1252 / Latin-1, each with a note), RFC 2047 encoded words (`decode_words`),
8-bit bytes in raw headers (`fix_8bit`) and `CONTROL`, the characters no decoded text may keep. Everything
in an inbound mail that is text goes through here, so the fallbacks are the same for headers, bodies and
attachment names.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

from channels.email.notes import Notes

# RFC 2047 encoded words; the RFC 2231 language suffix ("=?utf-8*en?Q?...?=") is allowed and ignored.
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")
# C0 controls except \t and \n, DEL, C1 controls (what a Latin-1 fallback makes of stray bytes), and lone
# surrogates (left by surrogateescape; no database driver or JSON encoder accepts them).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\udc80-\udcff]")
# Charsets read as the superset real clients mean by them (as browsers do, WHATWG Encoding Standard):
# Outlook labels Korean ks_c_5601-1987 and Windows-1252 text iso-8859-1, Japanese clients write cp932
# characters into "Shift_JIS", Chinese ones GBK characters into "gb2312".
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac-roman",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}


def fix_8bit(value: str) -> str:
    # email.message_from_bytes keeps non-ASCII header bytes as surrogates (surrogateescape). RFC 6532 allows
    # UTF-8 there, and older clients wrote their local charset; Windows-1252 is the common one.
    if not _SURROGATE.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def decode_words(value: str, notes: Notes, where: str) -> str:
    """RFC 2047 encoded words decoded. Adjacent words in one charset are joined before decoding, because
    Outlook and others split a multi-byte character across two words; whitespace between encoded words
    is dropped (RFC 2047 6.2)."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = b""
    pending_charset = ""
    pos = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset:
            out.append(decode_bytes(pending, pending_charset, notes, where))
        pending, pending_charset = b"", ""

    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        charset, encoding, payload = match.group(1), match.group(2).lower(), match.group(3)
        decoded = _word_bytes(encoding, payload)
        if decoded is None:  # not decodable: keep the word as written
            flush()
            out.append(value[pos : match.end()])
            pos = match.end()
            continue
        if gap.strip() or not pending_charset:
            flush()
            out.append(gap)
        if pending_charset and charset.lower() != pending_charset.lower():
            flush()
        pending += decoded
        pending_charset = charset
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    try:
        if encoding == "b":
            payload = payload.rstrip("=")
            return base64.b64decode(payload + "=" * (-len(payload) % 4))
        return binascii.a2b_qp(payload.encode("ascii"), header=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _codec(charset: str) -> str | None:
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # bytes.decode refuses bytes-to-bytes codecs ("base64", "zlib") only once it has data; refuse them here.
    return name if getattr(info, "_is_text_encoding", True) else None


def decode_bytes(data: bytes, charset: str, notes: Notes, where: str) -> str:
    """Text in its declared charset. An unknown label, or bytes that are not in the declared charset, are
    read as UTF-8 if they are UTF-8; else as UTF-8 with replacement when most 8-bit bytes are, else as
    Windows-1252 / Latin-1 (which never fail) - with a note either way."""
    codec = _codec(charset) if charset else "us-ascii"
    if codec:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError, ValueError):
            pass
    try:
        text = data.decode("utf-8")
        if charset and codec is None:
            notes.add(f"{where}: unknown charset {charset[:40]!r}; read as UTF-8")
        return text
    except UnicodeDecodeError:
        pass
    if not charset:
        label = "no charset declared and not UTF-8"
    elif codec is None:
        label = f"unknown charset {charset[:40]!r}"
    else:
        label = f"not valid {charset[:40]}"
    replaced = data.decode("utf-8", "replace")
    high = sum(1 for b in data if b >= 0x80)
    if replaced.count("\ufffd") * 4 < high:  # mostly well-formed UTF-8 sequences: a few broken bytes
        notes.add(f"{where}: {label}; read as UTF-8, undecodable bytes replaced")
        return replaced
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    notes.add(f"{where}: {label}; read as Latin-1 (Windows-1252)")
    return text
