"""Typo correction towards a known vocabulary: the intent classifier's training examples, or the
knowledge base's articles. A word is only ever corrected into that vocabulary, never away from it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

# A word the vocabulary lacks, of at least this many letters, becomes its most frequent word one edit
# (delete, swap, replace, insert) away: "refnd" -> "refund", "humna" -> "human", "hellp" -> "help".
# Shorter words have too many neighbours to guess from: at four letters, off-topic words turned into
# support words ("tall" -> "talk", "bake" -> "make").
MIN_CORRECTABLE = 5
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORD = re.compile(r"\w+")


class Speller:
    """Corrects typos towards the words of `texts` (lower-cased text in, lower-cased words out)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._counts = Counter(word for text in texts for word in _WORD.findall(text))
        # Bounded: a long-running gateway sees an endless stream of names and one-off words.
        self.correct = lru_cache(maxsize=50_000)(self._correct)

    def _correct(self, word: str) -> str:
        if word in self._counts or len(word) < MIN_CORRECTABLE or not word.isalpha():
            return word
        splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
        candidates = {a + b[1:] for a, b in splits if b}
        candidates |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        candidates |= {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
        candidates |= {a + c + b for a, b in splits for c in _LETTERS}
        known = [c for c in candidates if c in self._counts]
        return max(known, key=lambda c: (self._counts[c], c)) if known else word
