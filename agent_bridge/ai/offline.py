"""The offline responder: answers from the markdown knowledge base with BM25, no model, no network.

It quotes the best-matching passage and cites its article, and says plainly that it does not know
when nothing in the knowledge base matches well enough, so a person can take over.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from agent_bridge.ai.knowledge_base import KnowledgeBase, SearchHit, word_set
from agent_bridge.ai.responder import ArticleRef, Reply, Turn

MAX_REPLY_CHARS = 700

# When is a passage a good enough match to quote? BM25 always ranks *something* first and its raw
# scores are not comparable between queries, so the gate uses two query-relative measures:
#  1. coverage >= 0.5: the passage contains the majority of the question's information, counted
#     as the IDF of its content terms. Terms the KB never uses weigh the most, so "capital of
#     Mongolia" or "order a pizza" cannot ride on a single generic word the KB happens to contain.
#  2. matched IDF >= ln 2: Lucene's IDF of a term found in exactly half of the passages, for any
#     KB size. A question matched only by vocabulary that half the KB shares ("where is my
#     order?" -> "order") does not single out a topic, however complete its coverage looks.
MIN_COVERAGE = 0.5
MIN_MATCHED_IDF = math.log(2)

SMALL_TALK_CONFIDENCE = 0.9
# Intent-aware answering. The classifier is trained on thousands of paraphrases, so a confident intent
# recognises "can you tell me about delivery period?" where BM25 sees no shared words. At or above
# INTENT_ANSWER_CONFIDENCE an article declaring the intent answers (its best-matching passage). Between
# the rules' intent threshold and it, retrieval must not point elsewhere: the intent answers unless the
# best passage belongs to another article and passes the answer gate on its own. Requiring retrieval to
# agree instead handed off one misspelt question in twenty ("how soln can I expeqct te item" shares no
# word with the delivery article), while retrieval's positive disagreement still catches the
# classifier's mistakes in this band.
INTENT_ANSWER_CONFIDENCE = 0.6
INTENT_AGREEMENT_CONFIDENCE = 0.4

DONT_KNOW_TEXT = (
    "I'm sorry, I don't know the answer to that, and I'd rather not guess. "
    "A member of our support team can help you with it."
)
GREETING_TEXT = "Hi there! How can I help you today?"
THANKS_TEXT = "You're welcome! Is there anything else I can help you with?"
FAREWELL_TEXT = "Thanks for getting in touch. Have a great day!"
THANKS_FAREWELL_TEXT = "You're welcome! Have a great day."
ACKNOWLEDGEMENT_TEXT = "Is there anything else I can help you with?"

_GREETING_WORDS = word_set("hi hello hey heya hiya howdy yo greetings morning afternoon evening")
_THANKS_WORDS = word_set("thanks thank thx ty tysm cheers appreciated appreciate")
_FAREWELL_WORDS = word_set("bye goodbye byebye cya later")
_ACKNOWLEDGEMENT_WORDS = word_set("ok okay kk alright great perfect cool awesome understood")
# Words that may accompany small talk without turning it into a question.
_SMALL_TALK_FILLER = word_set(
    """
    a all and again are day doing everyone folks for good got guys have helpful helped helps how i
    it its much nice oh really see so team that thats the there this very well you your
    """
)
_SMALL_TALK_VOCABULARY = _GREETING_WORDS | _THANKS_WORDS | _FAREWELL_WORDS | _ACKNOWLEDGEMENT_WORDS | _SMALL_TALK_FILLER
_SMALL_TALK_MAX_WORDS = 8

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A "sentence" ending in one of these was split at an abbreviation, not at a sentence end.
_ABBREVIATION_END = re.compile(r"(?:\b(?:[A-Za-z]\.){2,}|\b(?:e\.g|i\.e|vs|approx|No|Mr|Mrs|Ms|Dr|St)\.)$")
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_MARKDOWN_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(\S(?:.*?\S)?)\1")
_BULLET = re.compile(r"^[ \t]*[*+][ \t]+", re.MULTILINE)
_SUBHEADING = re.compile(r"^#{3,6}[ \t]+", re.MULTILINE)  # "###" inside a section; "##" splits passages


class OfflineResponder:
    """A `Responder` that answers from a `KnowledgeBase`, or says it does not know."""

    name = "offline"
    history_turns = 0  # each question is answered on its own words

    def __init__(self, knowledge_base: KnowledgeBase, *, max_chars: int = MAX_REPLY_CHARS) -> None:
        if max_chars < 200:
            raise ValueError(f"max_chars={max_chars} leaves no room for an answer and its citation")
        self.knowledge_base = knowledge_base
        self.max_chars = max_chars

    @classmethod
    def from_directory(cls, path: str | Path, *, max_chars: int = MAX_REPLY_CHARS) -> OfflineResponder:
        """Load the articles under `path`; raises `KnowledgeBaseError` naming the path if unusable."""
        return cls(KnowledgeBase.load(path), max_chars=max_chars)

    async def respond(self, turn: Turn) -> Reply:
        # Search is in-memory BM25 over a few dozen passages (well under a millisecond), so it runs
        # inline rather than in a thread.
        return self.answer(turn.text, turn.intent, turn.intent_confidence)

    def answer(self, question: str, intent: str | None = None, intent_confidence: float = 0.0) -> Reply:
        """The synchronous core of `respond`, for callers that have no event loop (benchmarks, CLI)."""
        small_talk = small_talk_reply(question)
        if small_talk is not None:
            return Reply(small_talk, answered=True, confidence=SMALL_TALK_CONFIDENCE, responder=self.name)

        hits = self.knowledge_base.search(question, k=1)
        declaring = self.knowledge_base.articles_for(intent)
        if declaring and intent_confidence >= INTENT_AGREEMENT_CONFIDENCE:
            agrees = bool(hits) and hits[0].article_id in declaring
            elsewhere = bool(hits) and not agrees and is_good_match(hits[0])
            if intent_confidence >= INTENT_ANSWER_CONFIDENCE or not elsewhere:
                own = hits if agrees else self.knowledge_base.search(question, k=1, articles=declaring)
                passage = own[0] if own else self._first_passage(declaring)
                return self._reply(passage, confidence=round(intent_confidence, 3))
        if not hits or not is_good_match(hits[0]):
            return Reply(DONT_KNOW_TEXT, answered=False, confidence=0.0, responder=self.name)
        return self._reply(hits[0], confidence=match_confidence(hits[0]))

    def _first_passage(self, articles: frozenset[str]) -> SearchHit:
        """An article's opening passage, when none of its passages shares a word with the question."""
        passage = next(p for p in self.knowledge_base.passages if p.article_id in articles)
        return SearchHit(passage, score=0.0, relative_score=0.0, matched_idf=0.0, coverage=0.0)

    def _reply(self, hit: SearchHit, *, confidence: float) -> Reply:
        return Reply(
            self._format_answer(hit),
            answered=True,
            confidence=confidence,
            articles=(ArticleRef(hit.article_id, hit.title, hit.score),),
            responder=self.name,
        )

    def _format_answer(self, hit: SearchHit) -> str:
        citation = f"\n\nSource: {hit.title}"
        body = trim_to_sentences(plain_text(hit.text), self.max_chars - len(citation))
        return body + citation


def is_good_match(hit: SearchHit) -> bool:
    """The answer gate; see MIN_COVERAGE and MIN_MATCHED_IDF for why these two conditions."""
    return hit.coverage >= MIN_COVERAGE and hit.matched_idf >= MIN_MATCHED_IDF


def match_confidence(hit: SearchHit) -> float:
    """Geometric mean of coverage and relative BM25 score: high only when both are high."""
    return round(math.sqrt(hit.coverage * min(1.0, hit.relative_score)), 3)


def small_talk_reply(text: str) -> str | None:
    """A short canned reply when the message is only a greeting, thanks, goodbye or "ok"; else None.

    Every word must be small talk, so "hi, how do I reset my password?" still goes to the search.
    """
    words = re.findall(r"[a-z]+", text.lower().replace("'", "").replace("’", ""))
    if not words or len(words) > _SMALL_TALK_MAX_WORDS:
        return None
    if any(word not in _SMALL_TALK_VOCABULARY for word in words):
        return None
    thanks = any(word in _THANKS_WORDS for word in words)
    farewell = any(word in _FAREWELL_WORDS for word in words)
    if thanks and farewell:
        return THANKS_FAREWELL_TEXT
    if thanks:
        return THANKS_TEXT
    if farewell:
        return FAREWELL_TEXT
    if any(word in _GREETING_WORDS for word in words) or "how are you" in " ".join(words):
        return GREETING_TEXT
    if any(word in _ACKNOWLEDGEMENT_WORDS for word in words):
        return ACKNOWLEDGEMENT_TEXT
    return None  # filler alone ("so", "the"): not clearly small talk, let the search decide


def plain_text(markdown: str) -> str:
    """Drop inline markdown that would show up as stray symbols in chat; keep `- ` bullets."""
    text = _MARKDOWN_LINK.sub(r"\1 (\2)", markdown)
    text = _MARKDOWN_EMPHASIS.sub(r"\2", text)
    text = _BULLET.sub("- ", text)
    text = _SUBHEADING.sub("", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def trim_to_sentences(text: str, limit: int) -> str:
    """Longest prefix of whole sentences (or list items) within `limit` characters.

    A single sentence longer than the limit is cut at a word boundary with an ellipsis, and a
    trailing lead-in such as "You can pay with:" is dropped when the list after it did not fit.
    """
    if len(text) <= limit:
        return text
    kept = ""
    for separator, sentence in _sentences(text):
        candidate = f"{kept}{separator}{sentence}" if kept else sentence
        if len(candidate) > limit:
            break
        kept = candidate
    if not kept:
        cut = text[: limit - 1].rsplit(maxsplit=1)[0] if " " in text[: limit - 1] else text[: limit - 1]
        return cut.rstrip(" ,;:-") + "…"
    head, _, last = kept.rpartition("\n")
    if head and last.rstrip().endswith(":"):
        kept = head.rstrip()
    return kept


def _sentences(text: str) -> list[tuple[str, str]]:
    """(separator, sentence) pairs that rebuild `text` when joined, split at sentence ends and lines."""
    pieces: list[tuple[str, str]] = []
    pending_separator = ""
    for line in text.split("\n"):
        if not line.strip():
            pending_separator = "\n\n" if pieces else ""
            continue
        separator = pending_separator or ("\n" if pieces else "")
        pending_separator = ""
        for index, sentence in enumerate(_merge_abbreviations(_SENTENCE_END.split(line.strip()))):
            pieces.append((separator if index == 0 else " ", sentence))
    return pieces


def _merge_abbreviations(sentences: list[str]) -> list[str]:
    merged: list[str] = []
    for sentence in sentences:
        if merged and _ABBREVIATION_END.search(merged[-1]):
            merged[-1] = f"{merged[-1]} {sentence}"
        else:
            merged.append(sentence)
    return merged
