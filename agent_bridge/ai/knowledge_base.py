"""A small BM25-searchable knowledge base built from a directory of markdown articles.

Articles are split into `##` sections so an answer can quote one focused passage instead of a
whole page; the index lives in memory because a support KB is a few hundred passages at most.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
import yaml
from bm25s.stopwords import STOPWORDS_EN


def word_set(words: str) -> frozenset[str]:
    """A frozenset from a whitespace-separated word list, so long vocabularies stay readable."""
    return frozenset(words.split())


# bm25s' defaults, spelled out because SearchHit.relative_score relies on Lucene scoring: there a
# term occurring once in a passage of average length contributes exactly its IDF.
BM25_K1 = 1.5
BM25_B = 0.75

# bm25s' English list is Lucene's 33 words, made for documents. Customer questions are full of
# pronouns, auxiliaries, question words and politeness that say nothing about the topic, and
# counting them would let "how can you help me" partly "match" every passage.
CONVERSATIONAL_STOPWORDS = word_set(
    """
    i me my mine myself we us our ours you your yours he him his she her it its they them their
    am is are was were be been being do does did doing done have has had having can could would
    should shall may might must will what when where which who whom whose why how whats
    im ive ill youre youve dont doesnt didnt cant cannot couldnt wont wouldnt isnt arent wasnt
    hi hello hey please thanks thank thx ok okay yes yeah just also any some much many more
    really very so too about from up out get got need want know tell like help hear let anyone
    someone something anything there here still again ever already
    """
)
STOPWORDS = frozenset(STOPWORDS_EN) | CONVERSATIONAL_STOPWORDS

_WORD = re.compile(r"\b\w\w+\b")
_APOSTROPHES = re.compile(r"['’]")
_TITLE_LINE = re.compile(r"^#\s+(?P<title>\S.*?)\s*#*\s*$")
_SECTION_LINE = re.compile(r"^##\s+(?P<heading>\S.*?)\s*#*\s*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<yaml>.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_INTENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

_stemmer = Stemmer.Stemmer("english")


class KnowledgeBaseError(Exception):
    """Raised at startup when the knowledge-base directory cannot be turned into an index."""


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable unit: a `##` section (or an article's intro) with its article attached."""

    article_id: str  # file stem, e.g. "shipping"
    title: str  # the article's `# Title`
    heading: str | None  # the `## Heading`, None for the text before the first section
    text: str  # the section body as written, without the heading line
    # The intents the article declares it answers (front matter `intents: [...]`), e.g. delivery_period.
    intents: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A passage with the evidence for how well it matches one query."""

    passage: Passage
    score: float  # raw BM25 score; only comparable between hits of the same query
    # BM25 score divided by what a passage of average length containing every query term once
    # would score (the sum of the query terms' IDFs); ~1.0 is a full, ordinary match.
    relative_score: float
    # Summed IDF of the query terms the passage contains: how much evidence the match rests on.
    matched_idf: float
    # matched_idf as a share of the whole query's IDF, in [0, 1]; query terms the KB never
    # mentions weigh the most, so a question about something the KB lacks stays low.
    coverage: float

    @property
    def article_id(self) -> str:
        return self.passage.article_id

    @property
    def title(self) -> str:
        return self.passage.title

    @property
    def text(self) -> str:
        return self.passage.text


def content_terms(text: str) -> list[str]:
    """Lower-cased, stopword-free, stemmed terms: the one analyser for both passages and queries."""
    words = _WORD.findall(_APOSTROPHES.sub("", text.lower()))
    return _stemmer.stemWords([w for w in words if w not in STOPWORDS])


def lucene_idf(document_frequency: int, num_documents: int) -> float:
    """Lucene's BM25 IDF, as bm25s uses it; a term no passage contains gets the largest value."""
    return math.log(1 + (num_documents - document_frequency + 0.5) / (document_frequency + 0.5))


class KnowledgeBase:
    """Passages of every article in a directory, indexed with BM25 for keyword search.

    Immutable once built: to pick up edited articles, load a new one and swap it in.
    """

    def __init__(self, passages: Sequence[Passage], source: Path | None = None) -> None:
        if not passages:
            raise KnowledgeBaseError(f"knowledge base {source or '(in memory)'} has no passages")
        self.source = source
        self.passages: tuple[Passage, ...] = tuple(passages)
        # The article title and section heading are indexed with the body so that a section such as
        # "Free shipping threshold" still matches a question that only says "shipping".
        corpus = [content_terms(f"{p.title}\n{p.heading or ''}\n{p.text}") for p in self.passages]
        self._terms: tuple[frozenset[str], ...] = tuple(frozenset(doc) for doc in corpus)
        self._bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
        self._bm25.index(corpus, show_progress=False)
        document_frequency: dict[str, int] = {}
        for terms in self._terms:
            for term in terms:
                document_frequency[term] = document_frequency.get(term, 0) + 1
        self._idf = {t: lucene_idf(df, len(corpus)) for t, df in document_frequency.items()}
        self._unseen_idf = lucene_idf(0, len(corpus))
        self._article_intents = {p.article_id: p.intents for p in self.passages if p.intents}
        by_intent: dict[str, set[str]] = {}
        for article, intents in self._article_intents.items():
            for intent in intents:
                by_intent.setdefault(intent, set()).add(article)
        self._by_intent = {intent: frozenset(articles) for intent, articles in by_intent.items()}

    @classmethod
    def load(cls, path: str | Path) -> KnowledgeBase:
        """Read every `*.md` article under `path` (not recursive) and index its passages."""
        directory = Path(path)
        if not directory.is_dir():
            raise KnowledgeBaseError(f"knowledge base directory {directory} does not exist or is not a directory")
        files = sorted(f for f in directory.glob("*.md") if f.is_file() and not f.name.startswith("."))
        if not files:
            raise KnowledgeBaseError(f"knowledge base directory {directory} contains no *.md articles")
        passages: list[Passage] = []
        for file in files:
            try:
                markdown = file.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as error:
                raise KnowledgeBaseError(f"cannot read knowledge base article {file}: {error}") from error
            passages.extend(parse_article(file.stem, markdown, origin=file))
        return cls(passages, source=directory)

    @property
    def article_titles(self) -> dict[str, str]:
        """Article id -> title, in load order."""
        return {p.article_id: p.title for p in self.passages}

    @property
    def article_intents(self) -> dict[str, frozenset[str]]:
        """Article id -> the intents it declares, for the articles that declare any."""
        return dict(self._article_intents)

    def articles_for(self, intent: str | None) -> frozenset[str]:
        """The articles that declare `intent` (computed once: this runs on every AI turn)."""
        return self._by_intent.get(intent or "", frozenset())

    def __len__(self) -> int:
        return len(self.passages)

    def idf(self, term: str) -> float:
        """IDF of an analysed term; terms the KB never mentions count as maximally specific."""
        return self._idf.get(term, self._unseen_idf)

    def search(self, query: str, k: int = 3, articles: frozenset[str] | None = None) -> list[SearchHit]:
        """Best `k` passages for `query` by BM25, best first; only passages sharing a term with it,
        and only of `articles` when given."""
        terms = list(dict.fromkeys(content_terms(query)))  # a repeated word is not extra evidence
        known = [t for t in terms if t in self._idf]
        if k <= 0 or not known:
            return []
        scores = self._bm25.get_scores(known)
        if articles is not None:
            scores = np.where([p.article_id in articles for p in self.passages], scores, 0.0)
        query_weight = sum(self.idf(t) for t in terms)
        order = np.argsort(-scores, kind="stable")[:k]
        hits = []
        for index in order:
            score = float(scores[index])
            if score <= 0.0:
                break
            matched = sum(self.idf(t) for t in terms if t in self._terms[index])
            hits.append(
                SearchHit(
                    passage=self.passages[index],
                    score=score,
                    relative_score=score / query_weight,
                    matched_idf=matched,
                    coverage=matched / query_weight,
                )
            )
        return hits


def front_matter(markdown: str, origin: Path | str = "<string>") -> tuple[frozenset[str], str]:
    """The intents a `---` front-matter block declares (`intents: [a, b]`), and the article after it."""
    match = _FRONT_MATTER.match(markdown.lstrip("\ufeff"))
    if match is None:
        return frozenset(), markdown
    try:
        meta = yaml.safe_load(match["yaml"]) or {}
    except yaml.YAMLError as error:
        raise KnowledgeBaseError(f"knowledge base article {origin}: front matter is not valid YAML ({error})") from None
    intents = meta.get("intents", []) if isinstance(meta, dict) else None
    if isinstance(intents, str):
        intents = [intents]
    if not isinstance(intents, list) or not all(isinstance(i, str) and _INTENT_NAME.fullmatch(i) for i in intents):
        raise KnowledgeBaseError(
            f"knowledge base article {origin}: front matter `intents` must be a list of intent names like "
            "[delivery_period, delivery_options]"
        )
    return frozenset(intents), markdown[match.end() :]


def parse_article(article_id: str, markdown: str, origin: Path | str = "<string>") -> list[Passage]:
    """Split one article into its intro and `##` sections. It may open with a front-matter block
    declaring its intents; then the first line must be `# Title`."""
    intents, markdown = front_matter(markdown, origin)
    lines = markdown.strip().splitlines()
    title_match = _TITLE_LINE.match(lines[0]) if lines else None
    if title_match is None:
        raise KnowledgeBaseError(f"knowledge base article {origin} must start with a '# Title' line")
    title = title_match["title"]

    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in lines[1:]:
        section = _SECTION_LINE.match(line)
        if section:
            sections.append((section["heading"], []))
        else:
            sections[-1][1].append(line)
    passages = [
        Passage(article_id, title, heading, text, intents)
        for heading, body in sections
        if (text := "\n".join(body).strip())
    ]
    if not passages:
        raise KnowledgeBaseError(f"knowledge base article {origin} has a title but no text")
    return passages
