"""The notes a parse collects: one sentence for each thing in a mail that could not be read as written.

Every step of reading a mail (charsets, headers, MIME parts, attachment names) adds to the same `Notes`, which
ends up as `ParsedMail.notes`. It lives on its own so that each of those modules can take it without importing
the parser; it keeps each note once and stops at a fixed count, so a pathological mail cannot flood it.
"""

from __future__ import annotations

_MAX_NOTES = 50


class Notes:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, note: str) -> None:
        if note not in self.items and len(self.items) < _MAX_NOTES:
            self.items.append(note)
