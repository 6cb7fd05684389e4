"""Escalation: decide for each customer turn whether the AI answers or people take over, and why.

Two steps around the responder. `assess` runs before it: intent, sentiment, details, and the hard
triggers (a request for a person, a sensitive topic, an upset or urgent customer, a policy limit, a
back-office action, a configured handoff intent) — these fire whatever a model would say, so the model
is not even asked. `decide` runs after it: the model's own handoff request (to a queue that exists),
low confidence, and repeated failure. Every decision carries its trigger and a one-line reason.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent_bridge.ai.responder import Reply
from agent_bridge.ai.rules import RoutingRules
from agent_bridge.ai.triage.details import extract_details
from agent_bridge.ai.triage.intents import IntentClassifier, fold
from agent_bridge.ai.triage.sentiment import Sentiment, analyse_sentiment

UNKNOWN_INTENT = "unknown"


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str  # human_request | sensitive_topic | negative_sentiment | urgency | policy_limit | ...
    reason: str
    queue: str


@dataclass(frozen=True, slots=True)
class Context:
    """What earlier turns left on the conversation: enough to spot repetition and failure."""

    recent_customer_texts: Sequence[str] = ()
    turns_without_progress: int = 0
    details: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_conversation(cls, conversation: Mapping[str, Any]) -> Context:
        state = conversation.get("triage") or {}
        return cls(
            recent_customer_texts=tuple(state.get("recent_customer_texts", ())),
            turns_without_progress=int(state.get("turns_without_progress", 0)),
            details=dict(conversation.get("details") or {}),
        )


@dataclass(frozen=True, slots=True)
class Assessment:
    text: str
    intent: str
    intent_confidence: float
    sentiment: Sentiment
    details: Mapping[str, str]  # found in this message
    repeated: bool  # the customer is repeating an earlier message
    trigger: Trigger | None  # a hard trigger: hand off without asking the responder


@dataclass(frozen=True, slots=True)
class Decision:
    action: Literal["answer", "handoff"]
    trigger: str | None
    reason: str
    queue: str
    intent: str
    intent_confidence: float
    sentiment: str
    sentiment_score: float
    urgency: Literal["low", "normal", "high"]
    details: Mapping[str, str]  # everything collected so far in the conversation
    made_progress: bool

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["details"] = dict(self.details)
        doc["intent_confidence"] = round(self.intent_confidence, 4)
        doc["sentiment_score"] = round(self.sentiment_score, 4)
        return doc


class Triage:
    def __init__(self, rules: RoutingRules, classifier: IntentClassifier) -> None:
        self.rules = rules
        self.classifier = classifier
        triggers = rules.triggers
        self._human = [re.compile(p) for ps in triggers.human_request.patterns.values() for p in ps]
        self._topics = {
            topic: (spec.queue, [re.compile(p) for p in spec.patterns])
            for topic, spec in triggers.sensitive_topics.topics.items()
        }
        self._order_pattern = re.compile(rules.order_number_pattern, re.IGNORECASE)

    @classmethod
    def load(cls, rules: RoutingRules, base_dir: Path = Path()) -> Triage:
        """Train the intent classifier on the shipped examples plus those listed in the rules file."""
        examples: list[tuple[str, str]] = []
        if rules.training_examples:
            examples.extend(IntentClassifier.read_examples(base_dir / rules.training_examples))
        examples.extend((text, intent.name) for intent in rules.intents for text in intent.examples)
        return cls(rules, IntentClassifier.train(examples))

    # before the responder

    def assess(self, text: str, context: Context = Context()) -> Assessment:
        prediction = self.classifier.predict(text)
        return self._assess(text, prediction.intent, prediction.confidence, context)

    def assess_many(self, texts: Sequence[str]) -> list[Assessment]:
        """The same as `assess` for independent messages (no conversation), vectorised for the CLI."""
        predictions = self.classifier.predict_many(list(texts))
        return [self._assess(t, p.intent, p.confidence, Context()) for t, p in zip(texts, predictions, strict=True)]

    def _assess(self, text: str, intent: str, confidence: float, context: Context) -> Assessment:
        if confidence < self.rules.triggers.low_confidence.intent_threshold:
            intent = UNKNOWN_INTENT
        sentiment = analyse_sentiment(text)
        details = extract_details(text, self._order_pattern)
        repeated = self._is_repeat(text, context)
        trigger = self._hard_trigger(fold(text), intent, confidence, sentiment, details)
        return Assessment(text, intent, confidence, sentiment, details, repeated, trigger)

    def _is_repeat(self, text: str, context: Context) -> bool:
        threshold = self.rules.triggers.repeated_failure.repeat_similarity
        # SequenceMatcher indexes its second sequence once; the cheap upper bounds skip the full
        # comparison for messages that cannot be that similar.
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(fold(text).strip())
        for earlier in context.recent_customer_texts:
            matcher.set_seq1(fold(earlier).strip())
            bounds_pass = matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold
            if bounds_pass and matcher.ratio() >= threshold:
                return True
        return False

    def _queue_for(self, intent: str, override: str | None = None) -> str:
        if override:
            return override
        configured = self.rules.intent(intent)
        return self.rules.queue(configured.queue if configured else None).name

    def _hard_trigger(
        self, folded: str, intent: str, confidence: float, sentiment: Sentiment, details: Mapping[str, str]
    ) -> Trigger | None:
        t = self.rules.triggers
        queue = self._queue_for(intent)
        if t.human_request.enabled and any(p.search(folded) for p in self._human):
            return Trigger("human_request", "the customer asked for a person", queue)
        if t.human_request.enabled and intent in t.human_request.intents:
            return Trigger(
                "human_request", f"the customer asked for a person (intent {intent}, {confidence:.2f})", queue
            )
        if t.policy_limits.enabled and t.policy_limits.max_order_amount is not None and "amount" in details:
            try:
                amount = float(details["amount"])
            except ValueError:
                amount = 0.0
            if amount > t.policy_limits.max_order_amount:
                return Trigger(
                    "policy_limit",
                    f"amount {details['amount']} is above the limit of {t.policy_limits.max_order_amount:g}",
                    self._queue_for(intent, t.policy_limits.queue),
                )
        if t.sensitive_topics.enabled:
            for topic, (topic_queue, patterns) in self._topics.items():
                if any(p.search(folded) for p in patterns):
                    target = self._queue_for(intent, topic_queue or t.sensitive_topics.queue)
                    return Trigger("sensitive_topic", f"sensitive topic: {topic}", target)
            if intent in t.sensitive_topics.intents:
                return Trigger(
                    "sensitive_topic",
                    f"sensitive topic: intent {intent} ({confidence:.2f})",
                    self._queue_for(intent, t.sensitive_topics.queue),
                )
        if t.negative_sentiment.enabled:
            s = t.negative_sentiment
            if sentiment.upset_cue:
                return Trigger("negative_sentiment", f"the customer is upset ({sentiment.upset_cue})", queue)
            if sentiment.score <= s.threshold:
                return Trigger("negative_sentiment", f"the customer is upset (sentiment {sentiment.score:.2f})", queue)
            if s.on_urgency and sentiment.urgency:
                # Which cue: "urgency: 'asap'", "4 exclamation marks", "shouting (all caps)".
                cues = [c for c in sentiment.signals if c.startswith(("urgency", "shouting")) or "exclamation" in c]
                return Trigger("urgency", f"the customer says it is urgent ({'; '.join(cues)})", queue)
            if s.on_profanity and sentiment.profanity:
                return Trigger("negative_sentiment", "the customer is swearing", queue)
        if t.back_office.enabled and intent in t.back_office.intents:
            return Trigger("back_office", f"needs a back-office action: {intent} ({confidence:.2f})", queue)
        configured = self.rules.intent(intent)
        if configured is not None and configured.action == "handoff":
            name = "human_request" if intent in ("contact_human_agent", "contact_customer_service") else "intent_rule"
            return Trigger(name, f"intent {intent} ({confidence:.2f}) is set to hand off", queue)
        return None

    # after the responder

    def decide(self, assessment: Assessment, reply: Reply | None, context: Context = Context()) -> Decision:
        details = {**context.details, **assessment.details, **(dict(reply.details) if reply else {})}
        made_progress = reply is not None and reply.answered and not assessment.repeated
        no_progress = 0 if made_progress else context.turns_without_progress + 1
        t = self.rules.triggers

        def decision(action: str, trigger: Trigger | None, queue: str | None = None) -> Decision:
            urgent = assessment.sentiment.urgency or assessment.sentiment.score <= t.negative_sentiment.threshold
            requested = reply.handoff.urgency if reply is not None and reply.handoff is not None else None
            return Decision(
                action="handoff" if action == "handoff" else "answer",
                trigger=trigger.name if trigger else None,
                reason=trigger.reason if trigger else "answered from the knowledge base",
                queue=queue or (trigger.queue if trigger else self._queue_for(assessment.intent)),
                intent=assessment.intent,
                intent_confidence=assessment.intent_confidence,
                sentiment=assessment.sentiment.label,
                sentiment_score=assessment.sentiment.score,
                urgency="high" if urgent or requested == "high" else ("low" if requested == "low" else "normal"),
                details=details,
                made_progress=made_progress,
            )

        if assessment.trigger is not None:
            return decision("handoff", assessment.trigger)
        queue = self._queue_for(assessment.intent)
        if reply is None:
            return decision("handoff", Trigger("ai_unavailable", "no reply from the AI", queue))
        if reply.handoff is not None:
            requested = reply.handoff.queue
            # A model cannot invent a queue: an unknown name falls back to the intent's queue.
            target = requested if requested in self.rules.queue_names else queue
            trigger_name = "ai_unavailable" if reply.handoff.reason == "ai_unavailable" else "model_request"
            return decision(
                "handoff", Trigger(trigger_name, reply.handoff.reason or "the AI asked for a person", target)
            )
        if t.low_confidence.enabled and (not reply.answered or reply.confidence < t.low_confidence.threshold):
            return decision(
                "handoff",
                Trigger(
                    "low_confidence",
                    f"the AI could not answer reliably (confidence {reply.confidence:.2f})",
                    queue,
                ),
            )
        if t.repeated_failure.enabled and no_progress >= t.repeated_failure.max_turns_without_progress:
            return decision("handoff", Trigger("repeated_failure", f"{no_progress} turns without progress", queue))
        return decision("answer", None)

    def next_state(self, assessment: Assessment, decision: Decision, context: Context) -> dict[str, Any]:
        """What to keep on the conversation for the next turn's `Context`."""
        recent = [*context.recent_customer_texts, assessment.text][-3:]
        return {
            "recent_customer_texts": [t[:500] for t in recent],
            "turns_without_progress": 0 if decision.made_progress else context.turns_without_progress + 1,
            "last_intent": assessment.intent,
        }
