"""The routing rules file (ROUTING_FILE, default config/routing.yaml): queues, intents and triggers.

Managers edit it; a wrong file is refused at start and by `gateway check-config`, with one message per
problem naming its place (`queues[1].business_hours.timezone: ...`).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class RulesError(Exception):
    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__("\n".join(f"{path}: {p}" for p in problems))
        self.path = path
        self.problems = [f"{path}: {p}" for p in problems]


class _Strict(BaseModel):
    # A misspelt key is an error, not silently ignored: "sla_minute: 5" must not fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_patterns(patterns: list[str], prefix: str = "") -> None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{prefix}{pattern!r} is not a valid regular expression: {exc}") from None


def _clock(value: str) -> time:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a time of day like 09:00")
    return time(int(match[1]), int(match[2]))


class BusinessHours(_Strict):
    timezone: str = "UTC"
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]))
    open: str = "09:00"
    close: str = "17:00"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/London)") from None
        return value

    @field_validator("open", "close")
    @classmethod
    def _valid_clock(cls, value: str) -> str:
        _clock(value)
        return value

    @model_validator(mode="after")
    def _open_before_close(self) -> BusinessHours:
        if _clock(self.open) >= _clock(self.close):
            raise ValueError(f"open ({self.open}) must be before close ({self.close})")
        if not self.days:
            raise ValueError("days must name at least one day")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        return WEEKDAYS[local.weekday()] in self.days and _clock(self.open) <= local.time() < _clock(self.close)

    def next_open(self, at: datetime) -> datetime:
        """When the team is next in (local time); `at` itself if it is open now."""
        local = at.astimezone(self.zone)
        if self.is_open(at):
            return local
        opening = _clock(self.open)
        for day in range(8):
            candidate = datetime.combine((local + timedelta(days=day)).date(), opening, self.zone)
            if candidate > local and WEEKDAYS[candidate.weekday()] in self.days:
                return candidate
        raise AssertionError("a week always has an opening day")  # validated: days is not empty


class Queue(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    team: str = ""  # how customers hear the queue named: "billing team"
    slack_channel: str = ""
    sla_minutes: int = Field(gt=0, le=10_080)
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    slack_user_group: str = ""

    @property
    def display_name(self) -> str:
        return self.team or self.name.replace("_", " ").replace("-", " ")

    def sla_due(self, handoff_at: datetime) -> datetime:
        """When the first human reply is due: the SLA counts from handoff, or from the next opening
        when the team is away (a conversation handed off at night is not overdue at dawn)."""
        return self.business_hours.next_open(handoff_at) + timedelta(minutes=self.sla_minutes)


class Intent(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    queue: str | None = None
    action: Literal["answer", "handoff"] = "answer"
    examples: list[str] = Field(default_factory=list)


class HumanRequestTrigger(_Strict):
    enabled: bool = True
    # Intents that mean "a person, please" whatever the wording.
    intents: list[str] = Field(default_factory=list)
    # Regular expressions per language (matched case-insensitively, accents stripped).
    patterns: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for language, patterns in value.items():
            _check_patterns(patterns, f"{language}: ")
        return value


class SensitiveTopic(_Strict):
    # The queue that owns the topic; unset = the queue of the message's intent.
    queue: str | None = None
    # Regular expressions that name the topic, matched like human-request patterns.
    patterns: list[str] = Field(min_length=1)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        _check_patterns(value)
        return value


class SensitiveTopicsTrigger(_Strict):
    enabled: bool = True
    # Intents that are sensitive whatever the wording.
    intents: list[str] = Field(default_factory=list)
    topics: dict[str, SensitiveTopic] = Field(default_factory=dict)
    queue: str | None = None


class SentimentTrigger(_Strict):
    enabled: bool = True
    # VADER compound score in [-1, 1]: at or below this, the customer is upset enough for a person.
    threshold: float = Field(-0.6, ge=-1, le=1)
    on_urgency: bool = True
    on_profanity: bool = True


class LowConfidenceTrigger(_Strict):
    enabled: bool = True
    # The responder's confidence in its answer; below this it hands off rather than guess.
    threshold: float = Field(0.3, ge=0, le=1)
    # The intent classifier's confidence; below this the intent is treated as unknown.
    intent_threshold: float = Field(0.4, ge=0, le=1)


class RepeatedFailureTrigger(_Strict):
    enabled: bool = True
    # Consecutive AI turns without progress (not answered, or the customer asking the same again).
    max_turns_without_progress: int = Field(2, ge=1, le=20)
    # Two customer messages at least this similar (0..1) count as the customer repeating themselves.
    repeat_similarity: float = Field(0.9, gt=0, le=1)


class PolicyLimitsTrigger(_Strict):
    enabled: bool = True
    max_order_amount: float | None = Field(500.0, gt=0)
    queue: str | None = None


class BackOfficeTrigger(_Strict):
    enabled: bool = True
    intents: list[str] = Field(default_factory=list)


class Triggers(_Strict):
    human_request: HumanRequestTrigger = Field(default_factory=HumanRequestTrigger)
    sensitive_topics: SensitiveTopicsTrigger = Field(default_factory=SensitiveTopicsTrigger)
    negative_sentiment: SentimentTrigger = Field(default_factory=SentimentTrigger)
    low_confidence: LowConfidenceTrigger = Field(default_factory=LowConfidenceTrigger)
    repeated_failure: RepeatedFailureTrigger = Field(default_factory=RepeatedFailureTrigger)
    policy_limits: PolicyLimitsTrigger = Field(default_factory=PolicyLimitsTrigger)
    back_office: BackOfficeTrigger = Field(default_factory=BackOfficeTrigger)


class Messages(_Strict):
    """What the customer is told on handoff; each template has its own placeholders (see PLACEHOLDERS)."""

    handoff: str = "I'm passing your conversation to our {team}. {wait}"
    wait_estimate: str = "Someone usually replies within {minutes} minutes. You don't need to repeat anything."
    after_hours: str = (
        "Our {team} is away right now and back {reopens}; they'll pick this up then. You don't need to repeat anything."
    )

    # After handoff: what the customer hears when a person acts.
    agent_joined: str = "{agent} from our {team} has joined the conversation."
    agent_joined_unnamed: str = "Someone from our {team} has joined the conversation."
    sla_update: str = (
        "Sorry for the wait. Your conversation is still with our {team} and someone will reply as soon as they can."
    )
    resolved: str = "Thanks for getting in touch. We've marked this conversation as resolved; write again any time."
    csat_question: str = "How did we do? Reply with a number from 1 (poor) to 5 (excellent)."
    csat_thanks: str = "Thank you for rating us {score} out of 5."
    returned_to_ai: str = "You're back with our virtual assistant. Our {team} can step in again whenever it's needed."
    correction: str = "Correction to my previous message: {text}"
    retraction: str = "Please disregard my previous message."
    # When a customer opens the chat (Telegram's /start).
    greeting: str = (
        "Hello! I'm the virtual assistant. Ask me about orders, delivery, returns or your account, "
        "or ask for a person at any time."
    )

    PLACEHOLDERS: ClassVar[dict[str, frozenset[str]]] = {
        "handoff": frozenset({"team", "wait", "queue"}),
        "wait_estimate": frozenset({"team", "minutes", "queue"}),
        "after_hours": frozenset({"team", "reopens", "queue"}),
        "agent_joined": frozenset({"team", "agent", "queue"}),
        "agent_joined_unnamed": frozenset({"team", "queue"}),
        "sla_update": frozenset({"team", "queue"}),
        "resolved": frozenset({"team", "queue"}),
        "csat_question": frozenset({"team", "queue"}),
        "csat_thanks": frozenset({"team", "queue", "score"}),
        "returned_to_ai": frozenset({"team", "queue"}),
        "correction": frozenset({"text"}),
        "retraction": frozenset(),
        "greeting": frozenset(),
    }

    @field_validator(
        "handoff",
        "wait_estimate",
        "after_hours",
        "agent_joined",
        "agent_joined_unnamed",
        "sla_update",
        "resolved",
        "csat_question",
        "csat_thanks",
        "returned_to_ai",
        "correction",
        "retraction",
        "greeting",
    )
    @classmethod
    def _formats(cls, value: str, info: ValidationInfo) -> str:
        # Format it now with the placeholders it will get: a typo must fail at start, not leave a
        # customer without an answer at the moment of handoff.
        allowed = cls.PLACEHOLDERS[info.field_name or ""]
        try:
            value.format(**dict.fromkeys(allowed, "x"))
        except KeyError as exc:
            raise ValueError(f"unknown placeholder {{{exc.args[0]}}}; use {', '.join(sorted(allowed))}") from None
        except (ValueError, IndexError) as exc:
            raise ValueError(f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}") from None
        return value


class RoutingRules(_Strict):
    default_queue: str
    queues: list[Queue] = Field(min_length=1)
    intents: list[Intent] = Field(default_factory=list)
    triggers: Triggers = Field(default_factory=Triggers)
    training_examples: str | None = "config/triage/intent-examples.csv"
    order_number_pattern: str = r"\b(?:NW|ORD)[-\s]?\d{5,8}\b"
    messages: Messages = Field(default_factory=Messages)

    @field_validator("order_number_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _references_exist(self) -> RoutingRules:
        names = [q.name for q in self.queues]
        problems = []
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"queues: duplicate queue names {duplicates}")
        known = set(names)
        if self.default_queue not in known:
            problems.append(f"default_queue: {self.default_queue!r} is not one of the queues {sorted(known)}")
        intent_names = [i.name for i in self.intents]
        for index, intent in enumerate(self.intents):
            if intent.queue is not None and intent.queue not in known:
                problems.append(f"intents[{index}] ({intent.name}).queue: {intent.queue!r} is not a queue")
            if intent_names.count(intent.name) > 1:
                problems.append(f"intents[{index}]: intent {intent.name!r} is listed twice")
        for trigger in ("sensitive_topics", "policy_limits"):
            queue = getattr(self.triggers, trigger).queue
            if queue is not None and queue not in known:
                problems.append(f"triggers.{trigger}.queue: {queue!r} is not a queue")
        for topic, spec in self.triggers.sensitive_topics.topics.items():
            if spec.queue is not None and spec.queue not in known:
                problems.append(f"triggers.sensitive_topics.topics.{topic}.queue: {spec.queue!r} is not a queue")
        for trigger in ("human_request", "sensitive_topics", "back_office"):
            for name in getattr(self.triggers, trigger).intents:
                if name not in intent_names:
                    problems.append(f"triggers.{trigger}.intents: {name!r} is not an intent listed under intents")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def queue(self, name: str | None) -> Queue:
        by_name = {q.name: q for q in self.queues}
        return by_name.get(name or "", by_name[self.default_queue])

    def intent(self, name: str) -> Intent | None:
        return next((i for i in self.intents if i.name == name), None)

    @property
    def queue_names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.queues)

    @property
    def intent_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.intents)


def load_rules(path: str | Path) -> RoutingRules:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(path, ["file not found (set ROUTING_FILE, or copy config/routing.yaml)"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise RulesError(path, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(raw, dict):
        raise RulesError(path, ["must be a mapping with queues, intents and triggers"])
    try:
        return RoutingRules.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            place = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{place}: {message}" if place else message)
        raise RulesError(path, problems) from None
