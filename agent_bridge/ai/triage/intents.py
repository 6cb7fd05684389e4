"""Offline intent classification: TF-IDF word and character n-grams into a logistic regression.

Trained at start from a small CSV of examples (a few thousand rows train in about a second), so a
manager who adds rows teaches the gateway new wording without a build step, a download or a GPU.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from agent_bridge.ai.spelling import Speller

# Same rule as an intent name in the routing rules file, so every trainable intent can be routed.
INTENT_NAME = re.compile(r"^[a-z0-9_]+$")

# Inverse regularisation strength. The examples are short and nearly noise-free, so a weakly
# regularised model fits them best; 10-50 all cross-validate the same on the Bitext data (see
# docs/triage.md), and 20 keeps the probabilities of clear in-domain messages close to 1 while
# unfamiliar text stays spread out (low confidence).
REGULARISATION_C = 20.0

# Long messages are also classified a sentence (or, for run-on text, a word window) at a time, and
# the most confident reading wins: five sentences of story dilute "I want my money back" in the
# whole-message vector but not in its own sentence. Windows overlap so a request is never cut in two.
LONG_MESSAGE_WORDS = 25
WINDOW_WORDS = 16
WINDOW_STEP = 8
# A pasted e-mail thread must not cost thousands of predictions; requests sit at the start or end.
MAX_SEGMENTS = 24
KEEP_FIRST_SEGMENTS = 8

TOP_ALTERNATIVES = 3


class ExamplesError(ValueError):
    """A training-examples file that cannot be used, with the file (and line) to fix."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line


@dataclass(frozen=True, slots=True)
class IntentPrediction:
    intent: str
    confidence: float  # the model's probability of `intent`, in [0, 1]
    # The most likely intents, best first (the first is `intent`), each with its probability.
    alternatives: tuple[tuple[str, float], ...]


# --- normalisation ------------------------------------------------------------------------------

# Chat shorthand mapped to the words the examples use. Only unambiguous forms: "u" and "ur" are
# pronouns in customer chat, never letters of an order code (digits are folded away before this).
_SLANG = {
    "u": "you",
    "ur": "your",
    "r": "are",
    "pls": "please",
    "plz": "please",
    "pleas": "please",
    "thx": "thanks",
    "ty": "thanks",
    "wanna": "want to",
    "gonna": "going to",
    "gotta": "have to",
    "gimme": "give me",
    "lemme": "let me",
    "dunno": "do not know",
    "cant": "cannot",
    "dont": "do not",
    "wont": "will not",
    "im": "i am",
    "acct": "account",
    "acc": "account",
    "pwd": "password",
    "pw": "password",
    "addr": "address",
    "info": "information",
    "asap": "as soon as possible",
}
_URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+")  # links carry no intent, only noise n-grams
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_DIGITS = re.compile(r"\d+")  # "order 12345" and "order 987" are the same request
# Three or more of the same letter is emphasis ("hellllp", "pleeeease"): keep two, which the
# character n-grams of the one-letter spelling mostly share; real words rarely triple a letter.
_REPEATS = re.compile(r"(\w)\1{2,}")
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """Lower-case, compatibility-normalised and without accents: "Atención" -> "atencion"."""
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalise(text: str, speller: Speller | None = None) -> str:
    """The text the features are computed on: folded, links and numbers neutralised, slang expanded,
    and (given a speller) typos corrected."""
    text = fold(text)
    text = _URL.sub(" link ", text)
    text = _EMAIL.sub(" email ", text)
    text = _DIGITS.sub("0", text)
    text = _REPEATS.sub(r"\1\1", text)
    if speller is None:
        return _WORD.sub(lambda m: _SLANG.get(m.group(), m.group()), text)
    correct = speller.correct
    return _WORD.sub(lambda m: _SLANG.get(m.group()) or correct(m.group()), text)


# --- long messages ------------------------------------------------------------------------------

# A sentence ends at . ! ? ; or a line break (chat messages often have no punctuation at all).
_SENTENCE_END = re.compile(r"(?<=[.!?;…])\s+|\s*\n+\s*")


def sentences(text: str) -> list[str]:
    """The message's sentences, without empty ones."""
    return [part for part in _SENTENCE_END.split(text) if part.strip()]


# Politeness around a question ("Hi there, hope you're well, quick question: …", "… Many thanks in
# advance, Maria") dilutes a short message the way a story dilutes a long one, and the training data
# has almost none of it. The question without it is read as one more segment; the most confident wins.
_GREETING = (
    r"(?:hi|hello|hey|hiya|heya|good (?:morning|afternoon|evening)|greetings|dear (?:team|support|sir or madam)"
    r"|hola|buenos dias|buenas tardes|bonjour|salut|hallo|guten (?:tag|morgen)|ola|bom dia|boa tarde|ciao|buongiorno)"
)
_PADDING_BEFORE = re.compile(
    rf"^\s*(?:{_GREETING}(?: there| team| all| guys| folks)?[\s,!.:-]+)?"
    r"(?:(?:i )?hope (?:you(?:'re| are)|this (?:message )?finds you|all is|you're)[^,.!?:]*[,.!?:]+\s*)?"
    r"(?:(?:sorry to bother you|sorry for the trouble|quick (?:question|one)|just (?:a quick question|wondering)"
    r"|i was (?:just )?wondering|one (?:more )?question)[\s,:.!-]+)?",
    re.IGNORECASE,
)
_PADDING_AFTER = re.compile(
    r"(?:[\s,.!-]+(?:many thanks|thanks|thank you|thx|cheers|ty|regards|best)"
    r"(?: so much| a lot| in advance| very much| again)?[\s,.!]*(?:[A-Z][a-z]+)?)+\s*$",
    re.IGNORECASE,
)


def without_padding(text: str) -> str:
    """`text` without a greeting or pleasantry before it and thanks after it ("" if nothing else)."""
    core = text
    for _ in range(3):  # "Hola, buenos días, …": a greeting may come twice
        stripped = _PADDING_BEFORE.sub("", core, count=1)
        if stripped == core:
            break
        core = stripped
    return _PADDING_AFTER.sub("", core, count=1).strip()


def segments(text: str) -> list[str]:
    """The whole message, plus its sentences and word windows when it is long enough to ramble, plus
    the message without its politeness when it has some."""
    core = without_padding(text)
    padded = [core] if core and core != text.strip() else []
    words = text.split()
    if len(words) <= LONG_MESSAGE_WORDS:
        return [text, *padded]
    parts: list[str] = []
    for sentence in sentences(text):
        sentence_words = sentence.split()
        if len(sentence_words) <= LONG_MESSAGE_WORDS:
            parts.append(sentence)
            continue
        last_start = max(len(sentence_words) - WINDOW_WORDS, 0)
        starts = [*range(0, last_start, WINDOW_STEP), last_start]
        parts.extend(" ".join(sentence_words[s : s + WINDOW_WORDS]) for s in starts)
    if len(parts) > MAX_SEGMENTS:
        parts = parts[:KEEP_FIRST_SEGMENTS] + parts[-(MAX_SEGMENTS - KEEP_FIRST_SEGMENTS) :]
    return [text, *parts, *padded]


# --- the classifier -----------------------------------------------------------------------------


def _features() -> FeatureUnion:
    # Word 1-2-grams carry the meaning ("cancel order" vs "cancel account"); character 2-5-grams
    # inside word boundaries survive typos ("cancelation", "cancle") and inflections, and cover
    # other languages' spellings from a handful of examples. sublinear_tf damps repeated words.
    # Input is already `normalise`d (once, not once per vectorizer), hence lowercase=False.
    common = {"lowercase": False, "sublinear_tf": True, "dtype": np.float32}
    return FeatureUnion(
        [
            # \b\w+\b keeps one-letter words: "i" and "u"-turned-"you" matter in short requests.
            ("words", TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", **common)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), **common)),
        ]
    )


class IntentClassifier:
    """Intent, confidence and runners-up for customer messages; `train` or `from_csv` to build one."""

    def __init__(self, features: FeatureUnion, model: LogisticRegression, speller: Speller) -> None:
        self._features = features
        self._model = model
        self._speller = speller
        self._classes: list[str] = [str(c) for c in model.classes_]
        # The weights split per feature block, contiguous once, for the sklearn-free fast path.
        self._coef_blocks: list[np.ndarray] = []
        offset = 0
        for _, vectorizer in features.transformer_list:
            width = len(vectorizer.vocabulary_)
            self._coef_blocks.append(np.ascontiguousarray(model.coef_[:, offset : offset + width].T, dtype=np.float64))
            offset += width

    @property
    def intents(self) -> frozenset[str]:
        return frozenset(self._classes)

    @classmethod
    def train(cls, examples: Iterable[tuple[str, str]]) -> IntentClassifier:
        """Fit on (text, intent) pairs; needs at least two intents and a non-empty text per example."""
        pairs = [(text, intent) for text, intent in examples if text.strip()]
        intents = {intent for _, intent in pairs}
        if len(intents) < 2:
            raise ValueError(f"need examples of at least two intents to train, got {sorted(intents)}")
        texts = [normalise(text) for text, _ in pairs]
        # Every example word is in the speller's vocabulary, so correcting the examples is a no-op.
        speller = Speller(texts)
        features = _features()
        matrix = features.fit_transform(texts)
        # Multinomial: one softmax over all intents, so probabilities sum to 1 and a message that
        # resembles nothing is spread thin instead of claiming 0.9 for some intent. newton-cg reaches
        # the same optimum as the default lbfgs in a third of the iterations here (~0.7 s vs ~1.2 s).
        # Balanced class weights: an intent with many (e.g. hand-added) examples must not gain a
        # larger prior and become the default for text the model does not recognise.
        model = LogisticRegression(C=REGULARISATION_C, solver="newton-cg", max_iter=500, class_weight="balanced")
        model.fit(matrix, [intent for _, intent in pairs])
        return cls(features, model, speller)

    @classmethod
    def from_csv(cls, path: str | Path) -> IntentClassifier:
        return cls.train(cls.read_examples(path))

    @staticmethod
    def read_examples(path: str | Path) -> list[tuple[str, str]]:
        """(text, intent) rows of a CSV with a `text,intent` header (other columns are ignored)."""
        return read_examples(path)

    def predict(self, text: str) -> IntentPrediction:
        return self.predict_many([text])[0]

    def _probabilities(self, normalised: list[str]) -> np.ndarray:
        """`model.predict_proba(features.transform(texts))`, without sklearn's per-call overhead.

        sklearn re-validates inputs on every call (check_array, narwhals dataframe probes) and runs
        FeatureUnion through joblib: ~3 ms for one message, ten times the arithmetic itself, paid on
        every live customer turn. The fitted pieces are applied directly instead: counts from each
        vectorizer's fixed vocabulary, sublinear tf, idf, l2 rows, then the multinomial softmax.
        `tests/unit/test_triage_models.py` checks this equals sklearn's own path.
        """
        logits = np.tile(self._model.intercept_, (len(normalised), 1))
        for (_, vectorizer), coef in zip(self._features.transformer_list, self._coef_blocks, strict=True):
            # A private sklearn method (the lock file pins the version), the one `transform` uses.
            _, counts = vectorizer._count_vocab(normalised, fixed_vocab=True)
            data = counts.data.astype(np.float64)
            if vectorizer.sublinear_tf:
                np.log(data, data)
                data += 1.0
            data *= vectorizer.idf_[counts.indices]
            # l2-normalise each row in place, on the raw CSR arrays (scipy's helpers cost more here).
            lengths = np.diff(counts.indptr)
            squares = np.zeros(len(lengths))
            filled = lengths > 0
            squares[filled] = np.add.reduceat(data * data, counts.indptr[:-1][filled])
            norms = np.sqrt(squares)
            norms[norms == 0] = 1.0
            data /= np.repeat(norms, lengths)
            block = scipy.sparse.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)
            # Each block against its slice of the weights: the same as one product on the stacked features.
            logits += block @ coef
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        return logits / logits.sum(axis=1, keepdims=True)

    def _sklearn_probabilities(self, normalised: list[str]) -> np.ndarray:
        """sklearn's own path, kept as the reference `_probabilities` is tested against."""
        return self._model.predict_proba(self._features.transform(normalised))

    def predict_many(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """One vectorised pass over all messages (and the sentences of long ones)."""
        if not texts:
            return []
        owners: list[int] = []
        pieces: list[str] = []
        for index, text in enumerate(texts):
            parts = segments(text)
            pieces.extend(parts)
            owners.extend([index] * len(parts))
        probabilities = self._probabilities([normalise(p, self._speller) for p in pieces])
        # Per message, keep its most confident segment: sort by (message, confidence), so the best
        # segment of each message is the last of its run, without a Python loop over segments.
        owner_ids = np.asarray(owners)
        confidence = probabilities.max(axis=1)
        order = np.lexsort((confidence, owner_ids))
        last_of_run = np.r_[owner_ids[order][1:] != owner_ids[order][:-1], True]
        best = probabilities[order[last_of_run]]
        top = np.argsort(-best, axis=1)[:, :TOP_ALTERNATIVES]
        results = []
        for row, ranks in zip(best, top, strict=True):
            ranked = tuple((self._classes[i], float(row[i])) for i in ranks)
            results.append(IntentPrediction(ranked[0][0], ranked[0][1], ranked))
        return results


def read_examples(path: str | Path) -> list[tuple[str, str]]:
    """Read and check a training-examples CSV; raises `ExamplesError` naming the file and line."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise ExamplesError(path, "file not found") from None
    except OSError as exc:
        raise ExamplesError(path, f"cannot be read: {exc.strerror or exc}") from None
    examples: list[tuple[str, str]] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip().lower() for name in next(reader, [])]
            if "text" not in header or "intent" not in header:
                raise ExamplesError(path, f"the first line must be a header with columns text,intent; got {header}", 1)
            text_at, intent_at = header.index("text"), header.index("intent")
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue  # blank lines between groups of examples are allowed
                if len(row) != len(header):
                    raise ExamplesError(
                        path, f"expected {len(header)} fields ({','.join(header)}), found {len(row)}", line
                    )
                text, intent = row[text_at].strip(), row[intent_at].strip()
                if not text:
                    raise ExamplesError(path, "empty text", line)
                if not INTENT_NAME.match(intent):
                    raise ExamplesError(
                        path, f"intent {intent!r} must be lower-case letters, digits and underscores", line
                    )
                examples.append((text, intent))
        except UnicodeDecodeError as exc:
            raise ExamplesError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise ExamplesError(path, f"not valid CSV: {exc}", reader.line_num) from None
    if not examples:
        raise ExamplesError(path, "no examples (expected a text,intent header and one example per line)")
    return examples
