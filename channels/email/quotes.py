"""The customer's own words in a plain-text reply: quoted earlier messages and signatures cut off. Pure.

Mail clients put the message being answered below the reply (top-posting), introduced by an attribution
line ("On ... wrote:"), an "Original Message" separator, or Outlook's From/Sent/To/Subject block, and
mobile clients add "Sent from my iPhone". `strip_quotes` cuts at the first of these. It never returns ""
for a message with its own text: when everything is a quote (a bare forward), the input comes back whole.
"""

from __future__ import annotations

import re

# Attribution lines, in the forms Gmail, Apple Mail, Outlook for Mac/iOS and Thunderbird write them:
#   On Mon, 1 Dec 2026 at 10:00, Support <support@example.com> wrote:
#   Am Mo., 1. Dez. 2026 um 10:00 Uhr schrieb Support <support@example.com>:
#   Le lun. 1 déc. 2026 à 10:00, Support <support@example.com> a écrit :
#   El lun, 1 dic 2026 a las 10:00, Support (<support@example.com>) escribió:
#   Em seg., 1 de dez. de 2026 às 10:00, Support <support@example.com> escreveu:
#   Il giorno lun 1 dic 2026 alle ore 10:00 Support <support@example.com> ha scritto:
#   Op ma 1 dec. 2026 om 10:00 schreef Support <support@example.com>:
_ATTRIBUTION = re.compile(
    r"(?:On\s.*\swrote|Am\s.*\sschrieb(?:\s.*)?|Le\s.*\sa\s+écrit|El\s.*\sescribió"
    r"|Em\s.*\sescreveu|Il\s.*\sha\s+scritto|Op\s.*\sschreef(?:\s.*)?)\s*:"
)
_ATTRIBUTION_START = re.compile(r"(?:On|Am|Le|El|Em|Il|Op)\s")
# Gmail hard-wraps long attribution lines, so "wrote:" may sit on the next line (or the one after).
_ATTRIBUTION_LINES = 3
_ATTRIBUTION_CHARS = 400
_ORIGINAL_MESSAGE = re.compile(
    r"-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original"
    r"|Mensagem original|Messaggio originale|Oorspronkelijk bericht)\s*-{2,}",
    re.IGNORECASE,
)
# A forwarded message is someone else's earlier message too: Gmail/Thunderbird's dashed line, Apple Mail's
# "Begin forwarded message:". A bare forward is all quote, so it comes back whole.
_FORWARDED = re.compile(
    r"-{2,}\s*(?:Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado"
    r"|Mensagem encaminhada|Messaggio inoltrato|Doorgestuurd bericht)\s*-{2,}"
    r"|(?:Begin forwarded message|Anfang der weitergeleiteten Nachricht|Début du message réexpédié)\s*:",
    re.IGNORECASE,
)
# Outlook's header block, in English, German, French, Spanish (and Portuguese, which shares De/Para):
#   From: Support <support@example.com>        Von: ...        De : ...         De: ...
#   Sent: Monday, December 1, 2026 10:00       Gesendet: ...   Envoyé : ...     Enviado el: ...
#   To: Jane <jane@example.org>                An: ...         À : ...          Para: ...
#   Subject: Re: Order 1234                    Betreff: ...    Objet : ...      Asunto: ...
# Some converters bold the names as *From:*.
_HEADER_FROM = re.compile(r"\*?(?:From|Von|De)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_DATE = re.compile(r"\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado(?: el)?|Fecha)\s*:", re.IGNORECASE)
_HEADER_TO = re.compile(r"\*?(?:To|Subject|An|Betreff|À|A|Objet|Para|Asunto|Assunto|Cc)\s*:", re.IGNORECASE)
_HEADER_WINDOW = 4
# Outlook puts a line of underscores (32 of them) above the header block.
_UNDERSCORES = re.compile(r"_{10,}")
_SEPARATOR = re.compile(r"_{10,}|-{10,}")
# Lines mobile clients append; only cut when they end the text. Outlook for iOS writes the link too:
# "Get Outlook for iOS<https://aka.ms/o0ukef>".
_MOBILE = re.compile(
    r"(?:Sent from my \S.{0,40}|Sent from (?:Outlook|Mail|Yahoo Mail) for \S.{0,30}"
    r"|Get Outlook for (?:iOS|Android)(?:\s*<[^>]*>)?|Von meinem \S.{0,30} gesendet|Envoyé de mon \S.{0,30}"
    r"|Enviado desde mi \S.{0,30}|Enviado do meu \S.{0,30}|Inviato da(?:l mio)? \S.{0,30}"
    r"|Verstuurd vanaf mijn \S.{0,30})",
    re.IGNORECASE,
)
_SIGNATURE = ("-- ", "--")


def strip_quotes(text: str) -> str:
    """`text` up to the first quoted earlier message, without a "-- " signature or a trailing
    "Sent from my iPhone"; the whole `text` when nothing of its own would be left."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    own = _own_lines(lines)
    if not own or own[0].lstrip().startswith(">"):
        # Bottom-posting: "On ... wrote:" and "> " lines first, the reply below them. A reply interleaved
        # with the quote ("> question", answer, "> question", answer) keeps its quotes as context.
        rest = _after_leading_quote(lines)
        if rest is not None and (not own or not any(line.lstrip().startswith(">") for line in rest)):
            own = _own_lines(rest) or own
    result = "\n".join(own).strip()
    return result if result else text


def _own_lines(lines: list[str]) -> list[str]:
    cut = _quote_start(lines)
    head = lines[:cut]
    for i, line in enumerate(head):
        if line in _SIGNATURE:
            head = head[:i]
            break
    while head and (not head[-1].strip() or _MOBILE.fullmatch(head[-1].strip())):
        head.pop()
    first = next((i for i, line in enumerate(head) if line.strip()), len(head))
    return head[first:]


def _quote_start(lines: list[str]) -> int:
    """Index of the first line that belongs to a quoted earlier message, or len(lines)."""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if _attribution_at(lines, i) or _ORIGINAL_MESSAGE.fullmatch(stripped) or _FORWARDED.fullmatch(stripped):
            return i
        if _header_block_at(lines, i):
            return _with_separator(lines, i)
        if _UNDERSCORES.fullmatch(stripped) and _HEADER_FROM.match(_next_text(lines, i)):
            return i
    return _trailing_quote_start(lines)


def _attribution_at(lines: list[str], i: int) -> int:
    """How many lines the attribution starting at line i spans (0: none there)."""
    if not _ATTRIBUTION_START.match(lines[i].strip()):
        return 0
    joined = ""
    for n in range(_ATTRIBUTION_LINES):
        if i + n >= len(lines) or not lines[i + n].strip():
            return 0
        joined = f"{joined} {lines[i + n].strip()}".strip()
        if len(joined) > _ATTRIBUTION_CHARS:
            return 0
        # A real attribution names a date or an address; "On reflection, my friend wrote:" does not.
        if _ATTRIBUTION.fullmatch(joined) and re.search(r"[0-9@]", joined):
            return n + 1
    return 0


def _header_block_at(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(lines[i].strip()):
        return False
    window = [line.strip() for line in lines[i + 1 : i + 1 + _HEADER_WINDOW]]
    return any(_HEADER_DATE.match(w) for w in window) and any(_HEADER_TO.match(w) for w in window)


def _next_text(lines: list[str], i: int) -> str:
    return next((line.strip() for line in lines[i + 1 :] if line.strip()), "")


def _with_separator(lines: list[str], i: int) -> int:
    # "________________________________" (or a dashed rule) right above the header block goes with it.
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return j if j >= 0 and _SEPARATOR.fullmatch(lines[j].strip()) else i


def _trailing_quote_start(lines: list[str]) -> int:
    # A block of "> " lines ending the message; quotes interleaved with answers are kept as context.
    start = len(lines)
    i = len(lines) - 1
    while i >= 0 and (not lines[i].strip() or lines[i].lstrip().startswith(">")):
        if lines[i].strip():
            start = i
        i -= 1
    return start


def _after_leading_quote(lines: list[str]) -> list[str] | None:
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines):
        i += _attribution_at(lines, i)
    quoted = False
    while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith(">")):
        quoted = quoted or bool(lines[i].strip())
        i += 1
    return lines[i:] if quoted and i < len(lines) else None
