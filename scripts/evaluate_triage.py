"""Measure the offline intent classifier: cross-validated accuracy, handoff recall, speed, robustness.

    .venv/bin/python scripts/evaluate_triage.py                   # 5-fold CV on the Bitext rows
    .venv/bin/python scripts/evaluate_triage.py --holdout FILE    # train on all examples, score FILE

Only rows whose `source` is `bitext` are ever scored; the handwritten rows join every training fold,
as they do in production, but are never evaluated as if they were Bitext data. Every random choice
(folds, typos, rambling) uses a fixed seed, so two runs print the same numbers (timings aside).
"""

from __future__ import annotations

import argparse
import csv
import platform
import random
import string
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import classification_report, f1_score
from sklearn.model_selection import StratifiedKFold

from agent_bridge.ai.escalation import Assessment, Triage
from agent_bridge.ai.knowledge_base import KnowledgeBase
from agent_bridge.ai.offline import OfflineResponder
from agent_bridge.ai.rules import load_rules
from agent_bridge.ai.triage.intents import IntentClassifier, IntentPrediction
from agent_bridge.ai.triage.sentiment import analyse_sentiment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "triage" / "intent-examples.csv"
MOOD_EXAMPLES = ROOT / "scripts" / "data" / "mood-examples.csv"
WORDING_HOLDOUT = ROOT / "scripts" / "data" / "wording-holdout.csv"
HANDOFF_INTENTS = frozenset(
    {"contact_human_agent", "contact_customer_service", "complaint", "get_refund", "payment_issue"}
)
PERSON_INTENTS = frozenset({"contact_human_agent", "contact_customer_service"})
# The routing rules' default `triggers.low_confidence.intent_threshold`: below it the escalation
# engine treats the intent as unknown, so a handoff intent predicted below it is not a sure handoff.
INTENT_THRESHOLD = 0.4

# Not customer-service requests: chit-chat, general knowledge, other domains. None of these, nor
# anything like them, is in the training examples.
OFF_TOPIC = [
    "what's the weather like in Paris tomorrow",
    "tell me a joke",
    "who won the football match last night",
    "how do I bake sourdough bread",
    "what is the capital of Mongolia",
    "my cat is sleeping on the sofa",
    "can you recommend a good movie",
    "how tall is the eiffel tower",
    "lorem ipsum dolor sit amet",
    "what time is it in Tokyo",
    "translate hello into japanese",
    "the quick brown fox jumps over the lazy dog",
    "is it going to rain this afternoon",
    "write me a poem about the sea",
    "how many legs does a spider have",
    "bitcoin price today",
    "my favourite colour is blue",
    "what is 2 plus 2",
    "who is the president of France",
    "play some music",
    "I went hiking yesterday with friends",
    "do you like dogs",
    "how do I fix a flat bicycle tyre",
    "recommend a hotel in Rome",
    "what's the meaning of life",
    "sing happy birthday",
    "how old are you",
    "where can I watch the game tonight",
    "how do I write a list comprehension in python",
    "the meeting is moved to 3pm",
    "what's a good name for a goldfish",
    "can penguins fly",
    "how long should I boil an egg",
    "who wrote war and peace",
    "convert 10 miles to kilometres",
    "my neighbour's garden looks lovely",
    "is pluto a planet",
    "explain quantum physics simply",
    "what should I cook for dinner",
    "how far is the moon",
]
# Requests for a person worded differently from every handwritten training row (same author, so a
# sanity check of generalisation, not an independent test set).
PERSON_REQUESTS = {
    "en": [
        "yo get me a human",
        "can i get an actual person here",
        "need 2 talk to sum1 real",
        "pls connect me to an agent",
        "i want a human not a bot",
        "real person plz",
    ],
    "es": [
        "oye, me pasas con alguien de carne y hueso?",
        "necesito hablar con un empleado",
        "Quisiera que me atienda un agente, por favor",
        "prefiero hablar con una persona",
        "no entiendo nada, quiero un operador humano",
        "pueden llamarme? quiero hablar con alguien",
    ],
    "fr": [
        "je préfère parler à quelqu'un",
        "est-ce qu'un conseiller peut m'appeler ?",
        "vous pouvez me passer quelqu'un ?",
        "je veux un vrai conseiller humain",
        "y a-t-il un agent disponible ?",
        "je voudrais être mis en relation avec une personne",
    ],
    "de": [
        "kann ich bitte mit jemandem persönlich sprechen?",
        "ich hätte gern einen echten Ansprechpartner",
        "verbinden Sie mich bitte mit einem Menschen",
        "gibt es einen Mitarbeiter, der mir helfen kann?",
        "ich möchte lieber mit einer Person chatten",
        "holen Sie mir einen Kundenberater",
    ],
    "pt": [
        "queria falar com um humano, por favor",
        "tem algum atendente disponível?",
        "me conecta com uma pessoa de verdade",
        "prefiro conversar com uma pessoa",
        "posso falar com alguém da equipe?",
        "preciso de um atendente humano agora",
    ],
    "it": [
        "vorrei parlare con qualcuno dell'assistenza",
        "c'è un operatore disponibile?",
        "mi metta in contatto con una persona reale",
        "preferisco parlare con un essere umano",
        "potrei parlare con un consulente?",
        "voglio un operatore adesso",
    ],
}
# Generic story sentences with no request in them, prepended to test long rambling messages.
RAMBLE = [
    "Hi there, I hope you are having a good day.",
    "So I have been buying from you for about three years now.",
    "Last week I was travelling with my family and everything was hectic.",
    "My sister recommended you to me a long time ago.",
    "I am writing this from my phone so sorry for any mistakes.",
    "It has been a really long and stressful week at work.",
    "Honestly I never thought I would have to write something like this.",
    "I have tried to sort this out myself but I could not.",
    "We were planning a small party for the weekend.",
    "My kids keep asking me about it every single day.",
]
PROFANITY = ["wtf ", "damn it, ", "what the fuck, ", "ffs ", "this is bullshit, "]
SLANG = {"you": "u", "your": "ur", "please": "pls", "are": "r", "want to": "wanna", "thanks": "thx"}


def load_rows(path: Path) -> list[tuple[str, str, str]]:
    """(text, intent, source) rows; a file without a `source` column counts as all Bitext."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        text_column = "text" if "text" in (reader.fieldnames or []) else "utterance"
        return [(r[text_column], r["intent"], r.get("source") or "bitext") for r in reader]


# --- variants of held-out messages ----------------------------------------------------------------


def typos(text: str, rng: random.Random) -> str:
    """About one random edit (delete, insert, replace, swap) per 12 characters, at least one."""
    chars = list(text)
    for _ in range(max(1, len(text) // 12)):
        letters = [i for i, c in enumerate(chars) if c.isalpha()]
        if not letters:
            break
        i = rng.choice(letters)
        edit = rng.choice("dirs")
        if edit == "d":
            del chars[i]
        elif edit == "i":
            chars.insert(i, rng.choice(string.ascii_lowercase))
        elif edit == "r":
            chars[i] = rng.choice(string.ascii_lowercase)
        elif i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def slang(text: str, rng: random.Random) -> str:
    words = f" {text.lower()} "
    for formal, short in SLANG.items():
        words = words.replace(f" {formal} ", f" {short} ")
    return words.strip()


def profanity(text: str, rng: random.Random) -> str:
    return rng.choice(PROFANITY) + text


def shouting(text: str, rng: random.Random) -> str:
    return text.upper() + "!!!"


def rambling(text: str, rng: random.Random) -> str:
    """Four to six story sentences, then the request."""
    story = " ".join(rng.sample(RAMBLE, rng.randint(4, 6)))
    return f"{story} {text[:1].upper()}{text[1:]}"


PADDING_BEFORE = [
    "Hi there, hope you're well, quick question: ",
    "Hello! Sorry to bother you, ",
    "Good morning, I hope this finds you well. ",
    "hey, quick one - ",
]
PADDING_AFTER = ["", " Thanks so much!", " Many thanks in advance.", " thx"]


def padding(text: str, rng: random.Random) -> str:
    """Greetings and politeness around the question, as customers write them."""
    return rng.choice(PADDING_BEFORE) + text + rng.choice(PADDING_AFTER)


VARIANTS: dict[str, Callable[[str, random.Random], str]] = {
    "typos": typos,
    "slang": slang,
    "profanity": profanity,
    "shouting": shouting,
    "rambling": rambling,
    "padding": padding,
}


# --- reporting -----------------------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> str:
    p = np.percentile(values, [5, 25, 50, 75, 95])
    return "p5 {:.2f}  p25 {:.2f}  median {:.2f}  p75 {:.2f}  p95 {:.2f}".format(*p)


def handoff_recall(truth: Sequence[str], predicted: Sequence[IntentPrediction]) -> tuple[float, float, float, int]:
    """On rows whose true intent hands off: recall as "any handoff intent", exact, and confident."""
    rows = [(t, p) for t, p in zip(truth, predicted, strict=True) if t in HANDOFF_INTENTS]
    binary = sum(p.intent in HANDOFF_INTENTS for _, p in rows) / len(rows)
    exact = sum(p.intent == t for t, p in rows) / len(rows)
    confident = sum(p.intent in HANDOFF_INTENTS and p.confidence >= INTENT_THRESHOLD for _, p in rows) / len(rows)
    return binary, exact, confident, len(rows)


def report_scores(
    title: str, texts: Sequence[str], truth: Sequence[str], predicted: Sequence[IntentPrediction]
) -> None:
    labels = [p.intent for p in predicted]
    errors = [(x, t, p) for x, t, p in zip(texts, truth, predicted, strict=True) if t != p.intent]
    binary, exact, confident, n = handoff_recall(truth, predicted)
    print(f"\n## {title}")
    print(
        f"rows {len(truth)}  accuracy {1 - len(errors) / len(truth):.4f} ({len(errors)} errors)  "
        f"macro-F1 {f1_score(truth, labels, average='macro'):.4f}"
    )
    print(
        f"handoff intents ({n} rows): recall binary {binary:.4f}  exact {exact:.4f}  "
        f"binary with confidence >= {INTENT_THRESHOLD}: {confident:.4f}"
    )
    print("\nper intent (* = handoff intent):")
    report = classification_report(truth, labels, digits=3, zero_division=0)
    for line in report.splitlines():
        name = line.split()[0] if line.split() else ""
        print(("* " if name in HANDOFF_INTENTS else "  ") + line)
    print("confusions (true -> predicted: count):")
    for (t, p), count in Counter((t, p.intent) for _, t, p in errors).most_common():
        mark = "  [handoff missed]" if t in HANDOFF_INTENTS and p not in HANDOFF_INTENTS else ""
        print(f"  {t} -> {p}: {count}{mark}")
    right = [p.confidence for t, p in zip(truth, predicted, strict=True) if t == p.intent]
    print(f"\nconfidence of correct predictions: {percentiles(right)}")
    if errors:
        print(f"confidence of wrong predictions:   {percentiles([p.confidence for _, _, p in errors])}")
    below = np.mean([p.confidence < INTENT_THRESHOLD for p in predicted])
    print(f"share of all rows below {INTENT_THRESHOLD}: {below:.4f}")
    print("\nerrors (true -> predicted confidence: text):")
    for text, t, p in errors:
        print(f"  {t} -> {p.intent} {p.confidence:.2f}: {text}")


def report_variants(variants: dict[str, list[tuple[str, str, IntentPrediction]]]) -> None:
    print("\n## Robustness: held-out Bitext rows changed, scored against their original intent")
    for name, make in VARIANTS.items():
        print(f"  e.g. {name}: {make('I need help with canceling the last order', random.Random(1))!r}")
    for name, rows in variants.items():
        truth = [t for _, t, _ in rows]
        predicted = [p for _, _, p in rows]
        accuracy = np.mean([t == p.intent for t, p in zip(truth, predicted, strict=True)])
        binary, exact, confident, _ = handoff_recall(truth, predicted)
        print(
            f"{name:10s} accuracy {accuracy:.4f}  handoff recall binary {binary:.4f} exact {exact:.4f} "
            f"confident {confident:.4f}  median confidence {np.median([p.confidence for p in predicted]):.2f}"
        )
        missed = [(x, t, p) for x, t, p in rows if t in HANDOFF_INTENTS and p.intent not in HANDOFF_INTENTS]
        for text, t, p in missed[:3]:
            print(f"    handoff missed: {t} -> {p.intent} {p.confidence:.2f}: {text[-90:]}")


Scored = list[tuple[str, IntentPrediction]]  # (true intent, prediction)


def gibberish() -> list[str]:
    """40 strings of random letters, fixed seed."""
    rng = random.Random(7)
    return [
        " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(rng.randint(1, 4)))
        for _ in range(40)
    ]


def report_wording(classifier: IntentClassifier) -> None:
    """The whole turn on hand-written customer messages no training row resembles closely
    (scripts/data/wording-holdout.csv: typos, slang, run-on, padding), four per covered intent."""
    scorer = AnswerScore()
    triage = Triage(scorer.rules, classifier)
    with WORDING_HOLDOUT.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    texts = [r["text"] for r in rows]
    print(f"\n## Hand-written wording, whole turn ({WORDING_HOLDOUT.name}, model trained on all examples)")
    by_style: dict[str, list[tuple[bool, bool]]] = {}
    misses = []
    for row, assessment in zip(rows, triage.assess_many(texts), strict=True):
        article = scorer.answered_from(triage, row["text"], assessment)
        right = article is not None and row["intent"] in scorer.covers.get(article, ())
        by_style.setdefault(row["style"], []).append((article is not None, right))
        if not right:
            where = article or triage.decide(assessment, None).reason
            guess = f"{assessment.intent} {assessment.intent_confidence:.2f}"
            misses.append(f"{row['intent']} -> {guess}, {where}: {row['text']}")
    everything = [o for outcomes in by_style.values() for o in outcomes]
    for style, outcomes in [*sorted(by_style.items()), ("all", everything)]:
        answered = sum(a for a, _ in outcomes)
        right = sum(r for _, r in outcomes)
        rate = answered / len(outcomes)
        print(f"{style:8s} {len(outcomes):3d} messages  answered {rate:.1%}  right article {right}/{answered}")
    for line in misses:
        print(f"    {line}")


def report_off_topic_answers(classifier: IntentClassifier) -> None:
    """The whole turn on messages the knowledge base does not cover: each answer is a wrong one."""
    scorer = AnswerScore()
    triage = Triage(scorer.rules, classifier)
    print("\n## The whole turn on messages the knowledge base does not cover (model trained on all examples)")
    for name, texts in ((f"off-topic ({len(OFF_TOPIC)})", OFF_TOPIC), ("gibberish (40)", gibberish())):
        answered = []
        for text, assessment in zip(texts, triage.assess_many(texts), strict=True):
            if (article := scorer.answered_from(triage, text, assessment)) is not None:
                answered.append(f"{text!r} -> {article}")
        print(f"{name}: answered from an article {len(answered)}/{len(texts)}")
        for line in answered:
            print(f"    {line}")


def report_confidence(classifier: IntentClassifier, in_domain: dict[str, Scored]) -> None:
    """Confidence distributions, how often each band is right, and what a threshold would cost."""
    off_topic = classifier.predict_many(OFF_TOPIC)
    outside = {
        f"off-topic ({len(OFF_TOPIC)} hand-written)": off_topic,
        "gibberish (40 random strings)": classifier.predict_many(gibberish()),
    }
    print("\n## Confidence: in-domain (CV held-out) vs off-topic (model trained on all examples)")
    for name, scored in in_domain.items():
        print(f"{name:32s} {percentiles([p.confidence for _, p in scored])}")
    for name, predictions in outside.items():
        print(f"{name:32s} {percentiles([p.confidence for p in predictions])}")
    print("most confident off-topic messages:")
    for text, p in sorted(zip(OFF_TOPIC, off_topic, strict=True), key=lambda z: -z[1].confidence)[:5]:
        print(f"  {p.confidence:.2f} {p.intent}: {text}")

    print("\nhow often the predicted intent is right, by confidence band (in-domain rows):")
    bands = [(0.0, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.01)]
    for name, scored in in_domain.items():
        cells = []
        for low, high in bands:
            hits = [t == p.intent for t, p in scored if low <= p.confidence < high]
            cells.append(f"[{low:.1f},{min(high, 1):.1f}) {np.mean(hits) if hits else float('nan'):.2f} of {len(hits)}")
        print(f"  {name}: " + "  ".join(cells))

    print("\nwhat a confidence threshold would cost (share of rows below it / at or above it):")
    for threshold in (0.2, 0.3, 0.4, 0.5):
        cells = []
        for name, scored in in_domain.items():
            below = np.mean([p.confidence < threshold for _, p in scored])
            handoff = [p.confidence < threshold for t, p in scored if t in HANDOFF_INTENTS]
            cells.append(f"{name} below {below:.3f} (handoff rows {np.mean(handoff):.3f})")
        for name, predictions in outside.items():
            cells.append(
                f"{name.split(' (')[0]} at/above {np.mean([p.confidence >= threshold for p in predictions]):.2f}"
            )
        print(f"  {threshold:.1f}: " + "; ".join(cells))


def report_person_requests(classifier: IntentClassifier) -> None:
    print("\n## Requests for a person, wording not in the training examples")
    for language, texts in PERSON_REQUESTS.items():
        predictions = classifier.predict_many(texts)
        hits = sum(p.intent in PERSON_INTENTS and p.confidence >= INTENT_THRESHOLD for p in predictions)
        lowest = min(p.confidence for p in predictions)
        print(f"{language}: {hits}/{len(texts)} contact_* with confidence >= {INTENT_THRESHOLD} (lowest {lowest:.2f})")
        for text, p in zip(texts, predictions, strict=True):
            if p.intent not in PERSON_INTENTS:
                print(f"    missed: {p.intent} {p.confidence:.2f}: {text}")


def report_mood() -> None:
    """Hand-labelled messages (scripts/data/mood-examples.csv): upset customers, many of them over
    several sentences, and calm ones whose stories or apologies carry negative words."""
    rules = load_rules(ROOT / "config" / "routing.yaml").triggers.negative_sentiment
    with MOOD_EXAMPLES.open(encoding="utf-8", newline="") as handle:
        rows = [(r["text"], r["upset"] == "yes") for r in csv.DictReader(handle)]
    print("\n## Upset customers (hand-labelled, scripts/data/mood-examples.csv)")
    flagged = []
    for text, upset in rows:
        sentiment = analyse_sentiment(text)
        flagged.append((text, upset, bool(sentiment.upset_cue) or sentiment.score <= rules.threshold, sentiment))
    upset_rows = [f for f in flagged if f[1]]
    calm_rows = [f for f in flagged if not f[1]]
    print(f"upset recognised: {sum(f[2] for f in upset_rows)}/{len(upset_rows)}")
    print(f"calm read as upset: {sum(f[2] for f in calm_rows)}/{len(calm_rows)}")
    for text, upset, hit, sentiment in flagged:
        if hit != upset:
            print(f"    {'missed' if upset else 'false alarm'}: {sentiment.score:.2f} {sentiment.upset_cue!r}: {text}")


def report_speed(rows: Sequence[tuple[str, str, str]]) -> IntentClassifier:
    examples = [(t, i) for t, i, _ in rows]
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        classifier = IntentClassifier.train(examples)
        timings.append(time.perf_counter() - start)
    print("\n## Speed")
    print(f"training on all {len(examples)} examples: {min(timings):.2f} s best, {max(timings):.2f} s worst of 3")
    rng = random.Random(3)
    texts = [t for t, _, _ in rows]
    short = [rng.choice(texts) for _ in range(10_000)]
    long = [rambling(rng.choice(texts), rng) for _ in range(2_000)]
    for name, batch in (("short messages", short), ("rambling messages (~70 words)", long)):
        start = time.perf_counter()
        classifier.predict_many(batch)
        elapsed = time.perf_counter() - start
        print(f"predict_many, {len(batch)} {name}: {len(batch) / elapsed:,.0f} messages/s")
    start = time.perf_counter()
    for text in short[:500]:
        classifier.predict(text)
    print(f"predict, one message at a time: {(time.perf_counter() - start) / 500 * 1000:.2f} ms per message")
    return classifier


class AnswerScore:
    """What the whole turn does with held-out questions whose intent an article declares: the triage
    (this fold's classifier, the shipped rules) then the offline responder, with and without the
    intent. Answer rate: share answered rather than handed off. Precision: share of those answered
    from an article that declares the question's true intent."""

    def __init__(self) -> None:
        self.rules = load_rules(ROOT / "config" / "routing.yaml")
        self.responder = OfflineResponder(KnowledgeBase.load(ROOT / "config" / "kb"))
        self.covers = self.responder.knowledge_base.article_intents
        covered = set().union(*self.covers.values())
        self.covered = frozenset(covered)
        self.outcomes: dict[str, list[tuple[str, str | None]]] = {"with intent": [], "retrieval only": []}

    def score(
        self, classifier: IntentClassifier, texts: Sequence[str], truth: Sequence[str], variant: str = ""
    ) -> None:
        """Clean rows in both modes; a variant's rows (`variant`) with the intent only."""
        triage = Triage(self.rules, classifier)
        rows = [(t, i) for t, i in zip(texts, truth, strict=True) if i in self.covered]
        modes = [f"with intent, {variant}"] if variant else ["with intent", "retrieval only"]
        for mode in modes:
            self.outcomes.setdefault(mode, [])
        for (text, intent), assessment in zip(rows, triage.assess_many([t for t, _ in rows]), strict=True):
            for mode in modes:
                article = self.answered_from(triage, text, assessment, use_intent=mode.startswith("with intent"))
                self.outcomes[mode].append((intent, article))

    def answered_from(self, triage: Triage, text: str, assessment: Assessment, use_intent: bool = True) -> str | None:
        """The whole turn: the article the AI answers `text` from, or None when it hands off (or answers
        with no article, which only small talk does)."""
        reply = None
        if assessment.trigger is None:
            intent = (assessment.intent, assessment.intent_confidence) if use_intent else (None, 0.0)
            reply = self.responder.answer(text, *intent)
        if triage.decide(assessment, reply).action != "answer" or reply is None or not reply.articles:
            return None
        return reply.articles[0].article_id

    def report(self) -> None:
        print(f"\n### Answers on intents an article covers ({len(self.covered)} intents)")
        print("mode | questions | answer rate | answer precision")
        print("(profanity and shouting variants hand off by design: swearing and shouting are handoff triggers)")
        for mode, outcomes in self.outcomes.items():
            answered = [(i, a) for i, a in outcomes if a is not None]
            right = sum(1 for i, a in answered if i in self.covers.get(a, ()))
            rate = len(answered) / len(outcomes) if outcomes else 0.0
            precision = right / len(answered) if answered else 0.0
            print(f"{mode} | {len(outcomes)} | {rate:.2%} | {precision:.2%} ({right}/{len(answered)})")


def cross_validate(rows: Sequence[tuple[str, str, str]], folds: int, seed: int) -> dict[str, Scored]:
    """Scores held-out Bitext rows and their variants; returns (truth, prediction) pairs to study."""
    bitext = [(t, i) for t, i, s in rows if s == "bitext"]
    extra = [(t, i) for t, i, s in rows if s != "bitext"]
    texts = [t for t, _ in bitext]
    truth = [i for _, i in bitext]
    print(f"\n## {folds}-fold stratified cross-validation (seed {seed})")
    print(f"scored: {len(bitext)} Bitext rows of {len(set(truth))} intents; added to every training fold: {len(extra)}")
    predicted: dict[int, IntentPrediction] = {}
    variants: dict[str, list[tuple[str, str, IntentPrediction]]] = {name: [] for name in VARIANTS}
    rng = random.Random(seed)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    answers = AnswerScore()
    for train_index, test_index in splitter.split(texts, truth):
        classifier = IntentClassifier.train([bitext[i] for i in train_index] + extra)
        predicted.update(zip(test_index, classifier.predict_many([texts[i] for i in test_index]), strict=True))
        answers.score(classifier, [texts[i] for i in test_index], [truth[i] for i in test_index])
        for name, make in VARIANTS.items():
            changed = [make(texts[i], rng) for i in test_index]
            for i, text, p in zip(test_index, changed, classifier.predict_many(changed), strict=True):
                variants[name].append((text, truth[i], p))
            answers.score(classifier, changed, [truth[i] for i in test_index], variant=name)
    in_order = [predicted[i] for i in range(len(bitext))]
    report_scores("Held-out Bitext rows", texts, truth, in_order)
    answers.report()
    report_variants(variants)
    return {
        "held-out Bitext": list(zip(truth, in_order, strict=True)),
        "held-out with typos": [(t, p) for _, t, p in variants["typos"]],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=Path, default=EXAMPLES, help="training examples (text,intent[,source])")
    parser.add_argument("--holdout", type=Path, help="labelled CSV (text or utterance, intent) to score instead of CV")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows = load_rows(args.examples)
    print("# Offline triage evaluation")
    print(f"python {platform.python_version()} on {platform.machine()}; examples {args.examples}")
    classifier = report_speed(rows)
    if args.holdout:
        held = load_rows(args.holdout)
        texts = [t for t, _, _ in held]
        truth = [i for _, i, _ in held]
        predicted = classifier.predict_many(texts)
        report_scores(f"Holdout {args.holdout}", texts, truth, predicted)
        in_domain = {"holdout": list(zip(truth, predicted, strict=True))}
    else:
        in_domain = cross_validate(rows, args.folds, args.seed)
    report_confidence(classifier, in_domain)
    report_off_topic_answers(classifier)
    report_wording(classifier)
    report_person_requests(classifier)
    report_mood()
    return 0


if __name__ == "__main__":
    sys.exit(main())
