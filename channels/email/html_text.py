"""HTML mail bodies turned into readable plain text, with earlier quoted messages told apart. Pure: no I/O.

Built on the standard library's html.parser, which never builds a tree and accepts any tag soup; this module
keeps its own small stack of open elements so a quote or a list ends where its element ends, and it never
raises: a parser failure keeps what was read so far, or falls back to stripping tags.

`html_to_text` returns everything a reader would see; `html_to_visible_text` drops the blocks mail clients
use for the message being replied to (Gmail, Outlook, Apple Mail, Thunderbird, Yahoo, Proton).
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

# Contents never shown to a reader. <head> also holds <title>, which clients do not show either.
_SKIP = frozenset({"script", "style", "head", "template", "title", "xml", "svg"})
# HTML void elements: they have no end tag, so they never go on the stack.
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
# Block elements start and end a line; these also leave a blank line around them.
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "pre", "hr"})
_BLOCK = _PARAGRAPH | frozenset(
    {
        "address", "article", "aside", "center", "dd", "details", "dialog", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "header", "li", "main", "nav", "section", "summary", "tr",
        "tbody", "thead", "tfoot", "caption",
    }
)  # fmt: skip
# An open <p>, <li>, ... is closed by the next one of its kind (HTML's implied end tags), which mail
# clients rely on: Outlook writes <li> without </li>.
_SELF_CLOSING = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option"})
# Class names that hold the quoted earlier message: Gmail (gmail_quote, and gmail_quote_container since
# 2024), Yahoo (yahoo_quoted), Thunderbird's "On ... wrote:" line (moz-cite-prefix, the blockquote follows),
# Proton Mail (protonmail_quote).
_QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "protonmail_quote")
# New Outlook (and Outlook on the web) wrap the quoted message in this element.
_QUOTE_IDS = frozenset({"mail-editor-reference-message-container"})
# Outlook on the web / Outlook for iOS and Android: an empty <div id="appendonsend"></div>, then <hr>,
# then <div id="divRplyFwdMsg"> with the From/Sent/To/Subject block, then the quoted body as *siblings*.
# So everything from there to the end of the document is the quote, not just the element's content.
_QUOTE_FROM_HERE_IDS = frozenset({"appendonsend", "divrplyfwdmsg"})
# Outlook for Windows starts the quote with <div style="border:none;border-top:solid #E1E1E1 1.0pt;...">
# (or a plain <hr>) followed by "From:" in the user's language. Only a header right after counts.
_TOP_BORDER = re.compile(r"border-top\s*:\s*solid", re.IGNORECASE)
_QUOTE_HEADER = re.compile(r"\*?(?:From|Von|De|Van|Da|Från|Fra)\s*:", re.IGNORECASE)
# Marketing preheaders and Outlook's VML fallbacks are hidden with CSS; a reader never sees them.
_HIDDEN = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)
# Invisible characters that newsletters pad preheaders with (&zwnj;, &#8203;, &#847;, soft hyphens).
_INVISIBLE = re.compile("[\u00ad\u034f\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")
# Nested lists indent two spaces a level, up to this many levels (a hostile mail nests thousands deep).
_MAX_INDENT = 6


def html_to_text(html: str) -> str:
    """Everything a reader of the HTML would see, as plain text (quoted earlier messages included)."""
    return split_html(html)[0]


def html_to_visible_text(html: str) -> str:
    """`html_to_text` without the quoted earlier messages that clients mark up (blockquote, gmail_quote, ...).
    May be "" when the whole body is a quote; the caller decides what to fall back to."""
    return split_html(html)[1]


def split_html(html: str) -> tuple[str, str]:
    """(`html_to_text`, `html_to_visible_text`) from a single parse."""
    parser = _Renderer()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but a parser bug must not lose the mail
        if not "".join(parser.full.parts).strip():
            text = _finish(unescape(_TAG.sub(" ", html)))
            return text, text
    return parser.result()


class _Out:
    """One text stream. Tracks the trailing newlines so block boundaries never stack up."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.newlines = 0  # newlines at the end; the start of the text counts as a line start
        self.at_line_start = True
        self.after_marker = False  # just wrote "- " or "1. ": the item's text belongs on this line

    def text(self, value: str, *, marker: bool = False) -> None:
        if not value:
            return
        self.after_marker = marker
        self.parts.append(value)
        stripped = value.rstrip("\n")
        trailing = len(value) - len(stripped)
        self.newlines = trailing if stripped else self.newlines + trailing
        self.at_line_start = value.endswith("\n")

    def space(self) -> None:
        if not self.at_line_start and not self.parts[-1].endswith(" "):
            self.text(" ")

    def br(self) -> None:
        self.text("\n")

    def block(self, lines: int) -> None:
        # Only ensures `lines` newlines: nested <div>s and a <br> before </p> do not add blank lines. Right
        # after a list marker nothing is added, so <li><p>Item</p></li> stays "- Item".
        if self.parts and self.newlines < lines and not self.after_marker:
            self.text("\n" * (lines - self.newlines))


class _Open:
    __slots__ = ("href", "line_start", "link_start", "list_counter", "ordered", "pre", "quote", "skip", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.line_start = -1  # set on Outlook's one-line paragraphs: where their text started
        self.quote = False
        self.skip = False
        self.pre = False
        self.ordered: bool | None = None  # set on <ul>/<ol>
        self.list_counter = 0
        self.href = ""  # set on <a href>
        self.link_start = -1


class _Renderer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.full = _Out()
        self.visible = _Out()
        # Open elements, with a count per tag and the open lists kept apart, so that every lookup is O(1):
        # a mail of 200,000 unclosed <div>s must not take quadratic time.
        self.stack: list[_Open] = []
        self.open_tags: dict[str, int] = {}
        self.lists: list[_Open] = []
        self.quote_depth = 0
        self.skip_depth = 0
        self.pre_depth = 0
        self.quoted_to_end = False
        # (position in full, position in visible) where an <hr> or a top-bordered div started: the quote
        # starts there if the text that follows is a "From:" header.
        self.candidates: list[tuple[int, int]] = []

    # -- output helpers -------------------------------------------------------------------------------

    @property
    def quoted(self) -> bool:
        return self.quote_depth > 0 or self.quoted_to_end

    def _streams(self) -> tuple[_Out, ...]:
        return (self.full,) if self.quoted else (self.full, self.visible)

    def _text(self, value: str, *, marker: bool = False) -> None:
        for out in self._streams():
            out.text(value, marker=marker)

    def _space(self) -> None:
        for out in self._streams():
            out.space()

    def _block(self, lines: int) -> None:
        for out in self._streams():
            out.block(lines)

    def _br(self) -> None:
        for out in self._streams():
            out.br()

    # -- parser callbacks -----------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, dict(attrs), void=tag in _VOID)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # XHTML-style <br/>, <img/>, and the odd <div/> that clients emit: never left open.
        self._start(tag, dict(attrs), void=True)

    def _start(self, tag: str, attrs: dict[str, str | None], *, void: bool) -> None:
        if tag == "body":
            # A <head> left open (never closed by the sender) ends where the body starts.
            self._close_through("head")
            return
        if tag in _SELF_CLOSING and self.stack and self.stack[-1].tag == tag:
            self._pop()
        elif tag == "a" and self.open_tags.get("a"):
            self._close_through("a")  # links do not nest: a new <a> ends the open one, as in browsers
        if self.skip_depth:
            if not void and tag not in _VOID:
                entry = _Open(tag)
                entry.skip = True
                self.skip_depth += 1
                self._push(entry)
            return
        style = attrs.get("style") or ""
        ident = (attrs.get("id") or "").strip().lower()
        classes = (attrs.get("class") or "").split()

        # Outlook for Windows writes every line as <p class="MsoNormal"> with zero margins, and an empty
        # line as <p class="MsoNormal"><o:p>&nbsp;</o:p></p>: one line each, not a paragraph.
        outlook_line = tag == "p" and any(c.startswith("Mso") for c in classes)
        if outlook_line:
            self._block(1)
        elif tag in _BLOCK:
            self._block(self._lines(tag))
        if tag == "hr" or (tag == "div" and _TOP_BORDER.search(style)):
            self.candidates.append((len(self.full.parts), len(self.visible.parts)))
        if ident in _QUOTE_FROM_HERE_IDS:
            self.quoted_to_end = True
        if tag == "br":
            self._br()
        elif tag == "img":
            alt = " ".join((attrs.get("alt") or "").split())
            alt = _INVISIBLE.sub("", alt)
            if alt:
                self._space()
                self._text(f"[image: {alt}]")
                self._space()
        elif tag in ("td", "th"):
            self._space()
        if void or tag in _VOID:
            return

        entry = _Open(tag)
        if tag in _SKIP or _HIDDEN.search(style) or "hidden" in attrs:
            entry.skip = True
            self.skip_depth += 1
        if tag == "blockquote" or ident in _QUOTE_IDS or any(c.lower().startswith(_QUOTE_CLASSES) for c in classes):
            entry.quote = True
            self.quote_depth += 1
        if outlook_line:
            entry.line_start = len(self.full.parts)
        if tag == "pre":
            entry.pre = True
            self.pre_depth += 1
        if tag in ("ul", "ol"):
            entry.ordered = tag == "ol"
            entry.list_counter = _start_number(attrs.get("start")) - 1
        if tag == "li":
            self._list_item()
        if tag == "a" and not self.skip_depth:
            entry.href = (attrs.get("href") or "").strip()
            entry.link_start = len(self.full.parts)
        self._push(entry)

    def _push(self, entry: _Open) -> None:
        self.stack.append(entry)
        self.open_tags[entry.tag] = self.open_tags.get(entry.tag, 0) + 1
        if entry.ordered is not None:
            self.lists.append(entry)

    def _lines(self, tag: str) -> int:
        # Paragraphs get a blank line around them, except inside a list: nested lists and <p> in <li>
        # would otherwise split one list into many.
        if tag not in _PARAGRAPH:
            return 1
        return 1 if self.lists else 2

    def _list_item(self) -> None:
        lists = self.lists
        if not lists:
            self._text("- ", marker=True)
            return
        current = lists[-1]
        current.list_counter += 1
        indent = "  " * min(len(lists) - 1, _MAX_INDENT)
        self._text(f"{indent}{current.list_counter}. " if current.ordered else f"{indent}- ", marker=True)

    def handle_endtag(self, tag: str) -> None:
        if tag == "br":
            # Browsers read a stray </br> as <br>; Outlook-era mail contains it.
            if not self.skip_depth:
                self._br()
            return
        if tag == "p" and not self.open_tags.get("p"):
            # A stray </p> is an empty paragraph for browsers.
            if not self.skip_depth:
                self._block(2)
            return
        self._close_through(tag)

    def _close_through(self, tag: str) -> None:
        # End tags that match nothing open are ignored; one that matches closes everything opened since.
        if not self.open_tags.get(tag):
            return
        while self.stack:
            if self._pop().tag == tag:
                break

    def _pop(self) -> _Open:
        entry = self.stack.pop()
        self.open_tags[entry.tag] -= 1
        if entry.ordered is not None:
            self.lists.pop()
        if entry.skip:
            self.skip_depth -= 1
            return entry
        if self.skip_depth:
            return entry
        if entry.href:
            self._end_link(entry)
        if entry.pre:
            self.pre_depth -= 1
        if entry.line_start >= 0:
            if len(self.full.parts) == entry.line_start:
                self._br()  # the empty line it stands for
            else:
                self._block(1)
        elif entry.tag in _BLOCK:
            self._block(self._lines(entry.tag))
        if entry.quote:
            # Close the line inside the quote first, so the visible text resumes on a line of its own.
            self.quote_depth -= 1
            self._block(1)
        return entry

    def _end_link(self, entry: _Open) -> None:
        href = entry.href
        if not href.lower().startswith(_LINK_SCHEMES):
            return  # "#", javascript:, cid: and relative links mean nothing outside the mail
        # Only a short label can be the URL itself; a long one is never joined in full.
        label = " ".join("".join(self.full.parts[entry.link_start : entry.link_start + 64]).split())
        if not label or _same_target(label, href):
            return
        self._text(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self.skip_depth or not data:
            return
        data = _INVISIBLE.sub("", data)
        if self.pre_depth:
            self._text(data.replace("\r\n", "\n").replace("\r", "\n"))
            return
        # \s covers &nbsp; (U+00A0), which Outlook uses for every empty paragraph.
        words = data.split()
        if not words:
            if data:
                self._space()
            return
        if data[0].isspace():
            self._space()
        self._text(" ".join(words))
        if data[-1].isspace():
            self._space()

    def close(self) -> None:
        super().close()
        while self.stack:
            self._pop()

    def result(self) -> tuple[str, str]:
        full = "".join(self.full.parts)
        visible_parts = self.visible.parts
        for full_at, visible_at in self.candidates:
            following = "".join(self.full.parts[full_at : full_at + 12]).lstrip()
            if _QUOTE_HEADER.match(following):
                visible_parts = visible_parts[:visible_at]
                break
        return _finish(full), _finish("".join(visible_parts))


def _start_number(value: str | None) -> int:
    try:
        number = int((value or "1").strip())
    except ValueError:
        return 1
    return number if -1_000_000 < number < 1_000_000 else 1


def _same_target(label: str, href: str) -> bool:
    def bare(value: str) -> str:
        value = value.strip().lower()
        for prefix in _LINK_SCHEMES:
            if value.startswith(prefix):
                value = value[len(prefix) :]
                break
        if value.startswith("www."):
            value = value[4:]
        return value.rstrip("/")

    return bare(label) == bare(href)


def _finish(text: str) -> str:
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue  # at most one blank line in a row, none at the start
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)
