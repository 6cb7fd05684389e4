"""Details a customer gives in passing: e-mail, phone, order number, name and an amount of money.

Plain regular expressions, tuned to miss rather than invent: a wrong detail on a ticket misleads the
person who picks it up, while a missing one costs them a question. Hence the guards below (a date or
an order number is no phone number, "I'm upset" is no name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# user@host.tld: the local part allows the usual . + - _, the host needs at least one dot and a
# top-level domain of two or more letters, so "@team" or "a@b" are not e-mail addresses.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")

# A phone candidate: an optional + or 00 international prefix, then digits with the separators
# people type between groups (space, hyphen, dot, slash, parentheses). Not glued to letters or other
# digits on either side, so "1Z999AA10123456784" (a tracking code) never yields a number.
_PHONE = re.compile(r"(?<![\w+])(?:\+|\b00)?\(?\d[\d\s().\-/]{4,22}\d(?![\w])")
PHONE_MIN_DIGITS = 7  # the shortest subscriber numbers in common use
PHONE_MAX_DIGITS = 15  # ITU E.164 maximum
PHONE_GROUPED_MIN_DIGITS = 9  # a grouped number this long reads as a phone even without a cue word
# Words that announce a phone number, within a few words before it (en, es, fr, de, pt, it).
_PHONE_CUE = re.compile(
    r"\b(?:phone|tel(?:ephone)?|mobile|cell|call|ring|whats ?app|sms|text me|reach me|contact number|my number"
    r"|tel[eé]fono|m[oó]vil|celular|t[eé]l[eé]phone|portable|telefon|handy|rufnummer|telefone"
    r"|cellulare)\W+(?:\w+\W+){0,4}$",
    re.IGNORECASE,
)
# Dates written with digits (2026-11-30, 30/11/2026, 11.30.26): a candidate containing one is a date,
# or a date and a time, never a phone. Day and month are range-checked so "+44 20 7946" is no date;
# spaces are not date separators here, because they are the commonest phone separator.
_DAY_OR_MONTH = r"(?:0?[1-9]|[12]\d|3[01])"
_DATE = re.compile(
    rf"(?<!\d)(?:(?:19|20)\d\d([-/.]){_DAY_OR_MONTH}\1{_DAY_OR_MONTH}"  # year first (ISO)
    rf"|{_DAY_OR_MONTH}([-/.]){_DAY_OR_MONTH}\2(?:19|20)?\d\d)(?!\d)"  # day or month first
)
# 192.168.0.1: four dotted groups of at most three digits is an IP address, not a phone.
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")

# Money: a number with thousands separators (1,200 / 1.200 / 1’200 / a no-break space) and up to two
# decimals, or a plain number. The thousands form is tried first so "1,200.50" is one number, not
# "1,20". A plain space is not a thousands separator: "$250 300 times" is not 250300.
_NUMBER = r"\d{1,3}(?:[,.\u00a0\u202f’']\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
# Currency symbols and ISO codes that may precede a number ("$250", "EUR 250", "R$ 99,90").
_CURRENCY_BEFORE = r"US\$|R\$|C\$|A\$|[$€£¥₹]|\b(?:USD|EUR|GBP|CHF|CAD|AUD|JPY|INR|BRL|MXN|SEK|NOK|DKK|PLN)\b"
# ...and symbols, codes and words that may follow one ("250 EUR", "250€", "250 euros", "250 bucks").
# Not "real" (BRL) or "pounds": "1 real person" and "5 pounds of coffee" are not money.
_CURRENCY_AFTER = (
    r"[$€£¥₹]|\b(?:USD|EUR|GBP|CHF|CAD|AUD|JPY|INR|BRL|MXN|SEK|NOK|DKK|PLN"
    r"|euros?|dollars?|bucks|reais|pesos?|rupees?)\b"
)
# How a currency is reported: ISO codes where the symbol or word is unambiguous, "$" for the dollars
# of unknown country.
_CURRENCY_NAMES = {
    "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "US$": "USD", "R$": "BRL", "C$": "CAD", "A$": "AUD",
    "EURO": "EUR", "EUROS": "EUR", "REAIS": "BRL", "RUPEE": "INR", "RUPEES": "INR",
    "DOLLAR": "$", "DOLLARS": "$", "BUCKS": "$", "PESO": "PESOS",
}  # fmt: skip
_AMOUNT = re.compile(
    rf"(?P<cur1>{_CURRENCY_BEFORE})\s?(?P<num1>{_NUMBER})(?!\d)"
    rf"|(?<![\d.,])(?P<num2>{_NUMBER})\s?(?P<cur2>{_CURRENCY_AFTER})",
    re.IGNORECASE,
)

# Names. Explicit introductions may be lower-case ("my name is dana smith"); the looser "I'm X" and
# "this is X from" only count when X is capitalised, which is what separates "I'm Dana" from
# "I'm upset". Up to three words (given name, middle name or particle, family name).
_NAME_WORD = r"[^\W\d_][^\W\d_'’.-]*(?:['’-][^\W\d_]+)*"
_NAME = rf"(?P<name>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
_EXPLICIT_NAME = re.compile(
    r"\b(?:my name is|my name's|the name's"  # English
    r"|me llamo|mi nombre es"  # Spanish
    r"|je m'appelle|je m’appelle|mon nom est"  # French
    r"|ich heiße|ich heisse|mein name ist"  # German
    r"|meu nome é|meu nome e|me chamo"  # Portuguese
    r"|mi chiamo|il mio nome è|il mio nome e"  # Italian
    rf")\s+{_NAME}",
    re.IGNORECASE,
)
_INTRODUCTIONS = (
    re.compile(rf"(?:^|(?<=[\s,.!?;:]))(?:I'm|I’m|I am|i'm|i am)\s+{_NAME}"),  # "Hi, I'm Dana Smith"
    re.compile(rf"\b[Tt]his is\s+{_NAME}\s+(?:from|here|speaking)\b"),  # "this is Dana from Acme"
    # An e-mail style sign-off ending the message: "Kind regards,\nDana Smith".
    re.compile(rf"\b(?:[Rr]egards|[Ss]incerely|[Bb]est wishes|[Cc]heers),?\s+{_NAME}\W*$"),
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that end a name: "my name is dana and I ...", "I'm Dana from Acme".
_NAME_STOP = _words(
    """
    and or but from here speaking with at in on of the a an i my me you your to for please thanks
    thank hi hello hey order orders account email phone number calling writing again also just
    y e et und ma mais aber pero mas de da del von di
    """
)
# Capitalised words that follow "I'm" without being names: "I'm Sorry", "I'm Not happy", "I am Very upset".
_NOT_NAMES = _words(
    """
    sorry not very so just really still trying having looking writing contacting afraid here back
    done happy upset angry annoyed furious frustrated disappointed confused interested new sure glad
    unable able going getting calling waiting tired sick fed also only now currently
    a an the in on at from with your you customer client member buyer
    """
)


def _compile(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    return pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.IGNORECASE)


def _overlaps(span: tuple[int, int], spans: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


def _normalise_number(raw: str) -> str:
    """'1,200.50' / '1.200,50' / '1 200' -> '1200.50' / '1200.50' / '1200'."""
    digits = re.sub(r"[\s\u00a0\u202f’']", "", raw)
    last = max(digits.rfind(","), digits.rfind("."))
    if last != -1 and len(digits) - last - 1 in (1, 2):  # one or two digits after it: decimals
        whole, decimals = digits[:last], digits[last + 1 :]
        return f"{re.sub(r'[,.]', '', whole) or '0'}.{decimals}"
    return re.sub(r"[,.]", "", digits)  # three digits after every separator: thousands


def _find_amount(text: str) -> tuple[str, str, list[tuple[int, int]]] | None:
    """The largest stated amount (the one a policy limit cares about), its currency, and all spans."""
    found: list[tuple[float, str, str]] = []
    spans: list[tuple[int, int]] = []
    for match in _AMOUNT.finditer(text):
        raw = match.group("num1") or match.group("num2")
        currency = match.group("cur1") or match.group("cur2")
        number = _normalise_number(raw)
        currency = currency.upper()
        found.append((float(number), number, _CURRENCY_NAMES.get(currency, currency)))
        spans.append(match.span())
    if not found:
        return None
    _, number, currency = max(found, key=lambda item: item[0])
    return number, currency, spans


def _find_phone(text: str, taken: list[tuple[int, int]]) -> str | None:
    for match in _PHONE.finditer(text):
        candidate = match.group().lstrip(" -./").rstrip(" -./(")  # keep "(555)" whole
        start = match.start() + match.group().index(candidate)
        span = (start, start + len(candidate))
        digits = sum(c.isdigit() for c in candidate)
        if not PHONE_MIN_DIGITS <= digits <= PHONE_MAX_DIGITS or _overlaps(span, taken):
            continue
        if _DATE.search(candidate) or _DOTTED_QUAD.fullmatch(candidate):
            continue
        international = candidate.startswith(("+", "00"))
        cued = _PHONE_CUE.search(text[max(0, start - 60) : start]) is not None
        grouped = digits >= PHONE_GROUPED_MIN_DIGITS and re.search(r"\d[\s().\-/]+\d", candidate)
        # A bare run of digits is an order, account or tracking number unless something says phone.
        if international or cued or grouped:
            return candidate
    return None


def _clean_name(raw: str, *, explicit: bool) -> str | None:
    words: list[str] = []
    for word in raw.split():
        lower = word.lower().strip("'’")
        if lower in _NAME_STOP:
            break
        capitalised = word[:1].isupper() and not (len(word) > 1 and word.isupper())
        if not explicit and (not capitalised or lower in _NOT_NAMES):
            break
        words.append(word)
    if not words:
        return None
    name = " ".join(words)
    return name.title() if name.islower() else name


def _find_name(text: str) -> str | None:
    for match in _EXPLICIT_NAME.finditer(text):
        if name := _clean_name(match.group("name"), explicit=True):
            return name
    for pattern in _INTRODUCTIONS:
        for match in pattern.finditer(text):
            if name := _clean_name(match.group("name"), explicit=False):
                return name
    return None


def extract_details(text: str, order_number_pattern: str | re.Pattern[str]) -> dict[str, str]:
    """Details found in one message: keys email, phone, order_number, name, amount, currency.

    `order_number_pattern` is the shop's order-number format (a string is compiled case-insensitively);
    `amount` is a plain decimal string ("1200.50"), the largest amount stated with a currency.
    """
    details: dict[str, str] = {}
    taken: list[tuple[int, int]] = []  # spans already explained, which cannot also be a phone number
    if email := _EMAIL.search(text):
        details["email"] = email.group()
        taken.append(email.span())
    if order := _compile(order_number_pattern).search(text):
        details["order_number"] = order.group().strip()
        taken.append(order.span())
    if amount := _find_amount(text):
        details["amount"], details["currency"], spans = amount
        taken.extend(spans)
    if phone := _find_phone(text, taken):
        details["phone"] = phone
    if name := _find_name(text):
        details["name"] = name
    return details
