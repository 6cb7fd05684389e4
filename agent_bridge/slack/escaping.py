"""Make untrusted text (customer messages, names, details) safe to post to Slack.

Three layers, each citing the Slack doc it answers to
(https://docs.slack.dev/messaging/formatting-message-text, formerly api.slack.com/reference/surfaces/formatting):

1. "Escaping text": Slack uses `&`, `<` and `>` as control characters; they must be sent as `&amp;`, `&lt;`
   and `&gt;`, and nothing else should be entity-encoded. With `<` escaped, customer text can never produce a
   special token: `<!channel>`, `<!here>`, `<@U…>`, `<#C…>`, `<!subteam^S…>`, `<!date…>` or a disguised link
   `<https://evil|click>`. Escaping `&` first means a customer typing `&lt;!channel&gt;` stays literal too.
2. Mentions: with `link_names` (or `parse=full`) Slack also turns the bare words `@channel`, `@here` and
   `@everyone` into notifications. A WORD JOINER (U+2060, invisible, no line break) is put after the `@`, so
   the word no longer matches while it still reads the same.
3. Formatting ("Basic formatting" in mrkdwn): `*bold*`, `_italic_`, `~strike~`, `` `code` ``, ``` blocks ```
   and `>` quotes. Slack documents no escape for these. Inserting a zero-width *space* is not safe: Slack
   treats it as a word boundary, which is the known trick to *force* formatting mid-word. So
   `escape_mrkdwn` replaces the four markers with look-alike characters that mrkdwn does not parse
   (∗ ＿ ∼ ˋ) and a line-leading `>` with ＞; the text still reads the same to an agent.
   Where a value must stay byte-exact (an email to copy, an order number), the card puts it in a
   `plain_text` text object instead, which Slack never formats (Block Kit "Text object"), and uses only
   `escape_text` (layers 1 and 2).

Auto-linking: mrkdwn text objects built by this package set `verbatim=True` ("Text object": verbatim stops
URLs, channel names and mentions from being auto-parsed). Link unfurling is the caller's job:
post with `unfurl_links=False, unfurl_media=False` (chat.postMessage arguments).
"""

from __future__ import annotations

import re

ELLIPSIS = "…"
WORD_JOINER = "\u2060"

# "Escaping text": only these three, and `&` first.
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# mrkdwn "Basic formatting" markers → look-alikes that Slack does not parse.
_FORMAT_LOOKALIKES = {"*": "\u2217", "_": "\uff3f", "~": "\u223c", "`": "\u02cb"}
# A `>` that starts a line (after optional spaces) makes a block quote in mrkdwn.
_QUOTE_LOOKALIKE = "\uff1e"
# Broadcast words Slack links with link_names / parse=full ("Mentioning groups").
_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)
# C0/C1 control characters other than tab and newline: invisible, and some clients render them oddly.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bidi overrides could make the card read differently from what was sent (e.g. a reversed amount).
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def _clean(text: object) -> str:
    value = "" if text is None else str(text)
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _BIDI.sub("", _CONTROL.sub("", value))


def _atoms(text: object, *, mrkdwn: bool) -> list[str]:
    """The escaped text as indivisible pieces, one per source character, so truncation never cuts an entity."""
    value = _BROADCAST.sub("@" + WORD_JOINER, _clean(text))
    atoms: list[str] = []
    line_start = True
    for char in value:
        if mrkdwn and char == ">" and line_start:
            atoms.append(_QUOTE_LOOKALIKE)
        elif char in _ENTITIES:
            atoms.append(_ENTITIES[char])
        elif mrkdwn and char in _FORMAT_LOOKALIKES:
            atoms.append(_FORMAT_LOOKALIKES[char])
        else:
            atoms.append(char)
        if char == "\n":
            line_start = True
        elif not char.isspace():
            line_start = False
    return atoms


def escape_text(text: object) -> str:
    """Escape `&`, `<`, `>` and break broadcast mentions: for plain_text objects and exact values."""
    return "".join(_atoms(text, mrkdwn=False))


def escape_mrkdwn(text: object) -> str:
    """`escape_text` plus neutralised mrkdwn formatting: for untrusted text inside a mrkdwn text object."""
    return "".join(_atoms(text, mrkdwn=True))


def _fit(atoms: list[str], limit: int) -> str:
    if sum(map(len, atoms)) <= limit:
        return "".join(atoms)
    budget = max(limit - len(ELLIPSIS), 0)
    kept: list[str] = []
    used = 0
    for atom in atoms:
        if used + len(atom) > budget:
            break
        kept.append(atom)
        used += len(atom)
    return ("".join(kept).rstrip() + ELLIPSIS)[:limit]


def quote_customer_text(text: object, limit: int, *, mrkdwn: bool = True) -> str:
    """Escape and cut to `limit` characters *after* escaping (Slack counts the escaped length), never inside
    an entity or a look-alike, with `…` marking the cut."""
    return _fit(_atoms(text, mrkdwn=mrkdwn), limit)


def split_customer_text(text: object, limit: int, *, mrkdwn: bool = True) -> list[str]:
    """Escape, then cut into pieces of at most `limit` characters, never inside an entity or a look-alike:
    for text that must reach Slack whole (a mirrored message) rather than cut with `…`."""
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for atom in _atoms(text, mrkdwn=mrkdwn):
        if current and used + len(atom) > limit:
            pieces.append("".join(current))
            current, used = [], 0
        current.append(atom)
        used += len(atom)
    if current:
        pieces.append("".join(current))
    return pieces


def truncate(text: str, limit: int) -> str:
    """Cut already-safe text (our own labels, or escaped text) to a Slack limit, never inside an entity."""
    if len(text) <= limit:
        return text
    atoms = re.findall(r"&(?:amp|lt|gt);|.", text, re.DOTALL)
    return _fit(atoms, limit)
