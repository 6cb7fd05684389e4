"""`gateway triage`: customer messages on stdin, one JSON decision per line on stdout.

The same triage, rules and offline responder as live traffic, so a manager can try a rules change on
real messages before deploying it. Each line is judged on its own (no conversation history); the model
responder is never called here, so thousands of lines take seconds and cost nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from agent_bridge.ai.escalation import Triage
from agent_bridge.ai.offline import OfflineResponder
from agent_bridge.ai.responder import Reply
from agent_bridge.ai.rules import load_rules
from gateway.settings import Settings

BATCH = 1000


def parse_line(line: str) -> tuple[str | None, Any, str | None]:
    """(text, id, error): a plain line is the text; a JSON object line gives `text` and optional `id`."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return stripped, None, None
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError as exc:
        return None, None, f"invalid JSON: {exc.msg}"
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return None, obj.get("id") if isinstance(obj, dict) else None, 'a JSON line needs a "text" string'
    return obj["text"], obj.get("id"), None


def _batches(lines: TextIO) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        if line.strip():
            batch.append(line)
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def triage_stream(triage: Triage, responder: OfflineResponder, lines: TextIO, out: TextIO) -> int:
    count = 0
    for batch in _batches(lines):
        parsed = [parse_line(line) for line in batch]
        texts = [text for text, _, error in parsed if error is None and text is not None]
        assessments = iter(triage.assess_many(texts))
        for text, line_id, error in parsed:
            result: dict[str, Any] = {} if line_id is None else {"id": line_id}
            if error is not None or text is None:
                result["error"] = error
            else:
                assessment = next(assessments)
                reply = None
                if assessment.trigger is None:
                    reply = responder.answer(text, assessment.intent, assessment.intent_confidence)
                decision = triage.decide(assessment, reply)
                result |= {
                    "intent": decision.intent,
                    "confidence": round(decision.intent_confidence, 4),
                    "action": decision.action,
                    "reason": decision.reason,
                    "trigger": decision.trigger,
                    "queue": decision.queue,
                    "sentiment": decision.sentiment,
                    "urgency": decision.urgency,
                    "details": dict(decision.details),
                    # The article the AI would answer from, so a change of articles can be checked too.
                    "article": _article(reply) if decision.action == "answer" else None,
                }
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            count += 1
    out.flush()
    return count


def _article(reply: Reply | None) -> dict[str, str] | None:
    if reply is None or not reply.answered or not reply.articles:
        return None
    return {"article_id": reply.articles[0].article_id, "title": reply.articles[0].title}


def run(settings: Settings) -> int:
    from agent_bridge.ai.knowledge_base import KnowledgeBase

    triage = Triage.load(load_rules(settings.routing_file))
    responder = OfflineResponder(KnowledgeBase.load(settings.kb_dir))
    triage_stream(triage, responder, sys.stdin, sys.stdout)
    return 0
