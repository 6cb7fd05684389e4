"""The model-backed responder: an OpenAI-compatible chat model answering from the knowledge base.

It speaks Chat Completions with function calling, so it works with OpenAI and with local servers
(Ollama, vLLM, llama.cpp). The model reaches the knowledge base, the handoff and the customer's
details only through tools, and every failure falls back to another responder (normally the offline
one) so a customer is never left without a reply.

How the reply's judgement fields are derived (the model itself reports none of them):
- `articles`: passages the model retrieved with `search_knowledge_base` in this turn *and* cited in
  its answer (the article title, or the article id as a whole word, appears in the text). Retrieved
  but uncited passages are not claimed as sources; they stay visible in `tool_calls`.
- `answered`: True when the model gave a final answer, did not hand off, did not refuse, did not
  end with the `[no-answer]` tag the system prompt asks for, and the text does not read like
  "I don't know" (a phrase list backs up models that ignore the tag). Errs towards False, which
  only brings a person in sooner.
- `confidence`: 0.8 when answered and citing a retrieved article, 0.4 when answered without one
  (small talk, or a model answering from general knowledge), 0.0 when not answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import openai
from openai import AsyncOpenAI

from agent_bridge.ai.knowledge_base import KnowledgeBase
from agent_bridge.ai.offline import DONT_KNOW_TEXT
from agent_bridge.ai.responder import (
    ArticleRef,
    HandoffRequest,
    HistoryItem,
    Reply,
    Responder,
    ToolCall,
    Turn,
)

log = logging.getLogger("agent_bridge.ai.model")

NAME = "openai"
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_MAX_TOOL_ROUNDS = 4
# Local OpenAI-compatible servers accept any key, but the SDK refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"

# Request size bounds: the newest history wins, and no single text can crowd out the rest.
MAX_HISTORY_ITEMS = 20
MAX_HISTORY_ITEM_CHARS = 2_000
MAX_HISTORY_CHARS = 16_000
MAX_MESSAGE_CHARS = 4_000
SEARCH_RESULTS = 3
MAX_PASSAGE_CHARS = 1_200
MAX_QUERY_CHARS = 300
MAX_DETAIL_VALUE_CHARS = 200
MAX_SUMMARY_CHARS = 600
MAX_TOOL_RESULT_SUMMARY = 160
# Malformed tool calls (invalid JSON, unknown tool) answered with an error result before giving up.
MAX_MALFORMED_TOOL_CALLS = 1

GROUNDED_CONFIDENCE = 0.8
UNGROUNDED_CONFIDENCE = 0.4

UNAVAILABLE_TEXT = "I'm having trouble right now — I'm passing you to our team."
HANDOFF_TEXT = "I'm passing you to a member of our team."
URGENCIES = ("low", "normal", "high")
AGENT_PREFIX = "[Support agent] "

# The marker the system prompt asks for when the knowledge base has no answer; removed before sending.
_NO_ANSWER_TAG = re.compile(r"\[\s*no[\s_-]?answer\s*\]", re.IGNORECASE)
_DONT_KNOW = re.compile(
    r"\b(?:i\s+(?:do\s+not|don't|dont)\s+(?:know|have\s+(?:any\s+|that\s+|the\s+)?information)"
    r"|i(?:'m|\s+am)\s+not\s+sure"
    r"|i\s+(?:couldn't|could\s+not|can't|cannot|can\s+not)\s+(?:find|answer|help\s+with)"
    r"|(?:unable|not\s+able)\s+to\s+(?:answer|find|help\s+with)"
    r"|(?:no|not\s+have\s+any)\s+information\s+(?:about|on))",
    re.IGNORECASE,
)

DEFAULT_SYSTEM_PROMPT = """\
You are the customer-support assistant for {shop_name}. Customers write from their phones: keep \
every reply short (two to four sentences), in plain text, without headings or tables.

Rules:
- Answer only from the knowledge base. Call search_knowledge_base before answering any question \
about orders, shipping, delivery, payments, returns, refunds, invoices, accounts or other store \
policy, and use only what the returned passages say. Never invent prices, dates, order statuses or \
policies.
- End an answer that uses the knowledge base with "Source: " followed by the exact title of each \
article you used.
- If the knowledge base does not cover the question, say that you don't know rather than guessing, \
and end that reply with the tag [no-answer] (it is removed before the customer sees the reply).
- Call handoff_to_human when the customer asks for a person, or when the matter needs a human: \
complaints, damaged or missing items, billing disputes, account security, legal matters. Then \
reply with one short sentence saying a team member will take over; do not promise times.
- When the customer tells you their name, email, phone number or an order number, call \
record_customer_detail for each one.
- Never ask for passwords or full card numbers.
- Messages starting with "{agent_prefix}" were written by a human colleague; never start your own \
reply with that prefix."""


class _ModelFailure(Exception):
    """A failure detected in the conversation with the model, named by its fallback reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class _TurnState:
    """What the tools collected during one turn; survives a failure so the fallback keeps it."""

    queues: tuple[str, ...]
    tool_calls: list[ToolCall] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    retrieved: dict[str, ArticleRef] = field(default_factory=dict)  # article id -> best hit
    handoff: HandoffRequest | None = None
    malformed_tool_calls: int = 0
    requests: int = 0


class ModelResponder:
    """A `Responder` backed by an OpenAI-compatible chat model with knowledge-base tools."""

    name = NAME
    history_turns = 20  # the model answers follow-ups; older turns are cut by history_messages anyway

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        knowledge_base: KnowledgeBase,
        *,
        fallback: Responder | None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
        shop_name: str = "our shop",
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s} must be positive")
        if max_tool_rounds < 1:
            raise ValueError(f"max_tool_rounds={max_tool_rounds} leaves the model no search")
        self.client = client
        self.model = model
        self.knowledge_base = knowledge_base
        self.fallback = fallback
        # One deadline for the whole turn: every request, tool round and SDK retry sleep.
        self.timeout_s = timeout_s
        self.max_tool_rounds = max_tool_rounds
        # A format template: {shop_name} and {agent_prefix} are filled in; literal braces need doubling.
        self.system_prompt = system_prompt.format(shop_name=shop_name, agent_prefix=AGENT_PREFIX.strip())

    async def close(self) -> None:
        """Close the SDK's HTTP connection pool; call once at gateway shutdown."""
        await self.client.close()

    async def respond(self, turn: Turn) -> Reply:
        state = _TurnState(queues=tuple(turn.queues))
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._converse(turn, state, started + self.timeout_s)
        except _ModelFailure as failure:
            reason, detail, error = failure.reason, failure.detail, None
        except (TimeoutError, openai.APITimeoutError) as exc:
            reason, detail, error = "timeout", f"no answer within {self.timeout_s:g}s", exc
        except openai.APIConnectionError as exc:
            reason, detail, error = "connection_error", type(exc.__cause__ or exc).__name__, exc
        except openai.RateLimitError as exc:
            # The SDK's single retry (max_retries=1) honours Retry-After within the turn deadline;
            # past that we fall back rather than keep the customer waiting.
            reason, detail, error = "rate_limited", _error_code(exc), exc
        except openai.APIStatusError as exc:
            kind = "server_error" if exc.status_code >= 500 else "api_error"
            reason, detail, error = f"{kind}: {exc.status_code}", _error_code(exc), exc
        except openai.OpenAIError as exc:  # e.g. APIResponseValidationError: a body we cannot parse
            reason, detail, error = "bad_response", type(exc).__name__, exc
        except Exception as exc:  # a bug here must still not leave the customer unanswered
            log.exception("ai_model_internal_error", extra={"conversation_id": turn.conversation_id})
            reason, detail, error = "internal_error", type(exc).__name__, exc
        return await self._fail(turn, state, reason, detail, error, started)

    async def _fail(
        self,
        turn: Turn,
        state: _TurnState,
        reason: str,
        detail: str,
        error: BaseException | None,
        started: float,
    ) -> Reply:
        """Log one line, then answer through the fallback, or hand off when there is none or it fails."""
        log.warning(
            "ai_model_failed",
            extra={
                "conversation_id": turn.conversation_id,
                "reason": reason,
                "detail": detail,
                "error": type(error).__name__ if error is not None else None,
                "model": self.model,
                "requests": state.requests,
                "tools_called": [c.name for c in state.tool_calls],
                "elapsed_ms": round((time.monotonic() - started) * 1000),
                "fallback": self.fallback.name if self.fallback is not None else None,
            },
        )
        if state.handoff is not None:  # the model already decided on a person: honour that
            return replace(self._reply(HANDOFF_TEXT, state, answered=False), fallback_reason=reason)
        if self.fallback is not None:
            reply = await _call_fallback(self.fallback, turn)
            if reply is not None:
                return replace(
                    reply,
                    fallback_reason=reason,
                    details={**state.details, **reply.details},
                    tool_calls=tuple(state.tool_calls) + tuple(reply.tool_calls),
                )
        return Reply(
            text=UNAVAILABLE_TEXT,
            answered=False,
            confidence=0.0,
            responder=self.name,
            handoff=HandoffRequest(
                reason="ai_unavailable",
                summary=f"The AI model failed ({reason}) and the customer's last message is unanswered.",
            ),
            details=dict(state.details),
            tool_calls=tuple(state.tool_calls),
            fallback_reason=reason,
        )

    # --- the conversation with the model ---------------------------------------------------------

    async def _converse(self, turn: Turn, state: _TurnState, deadline: float) -> Reply:
        messages = self._initial_messages(turn)
        tools = tool_definitions(state.queues)
        for round_number in range(self.max_tool_rounds + 1):
            final_round = round_number == self.max_tool_rounds
            state.requests += 1
            completion = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                tools=tools,  # type: ignore[arg-type]
                # The last allowed request forbids tools so the model must answer. Some local servers
                # ignore tool_choice; if tools still come back, that is "max_tool_rounds" below.
                tool_choice="none" if final_round else "auto",
                timeout=max(0.05, deadline - time.monotonic()),
            )
            message = _first_message(completion)
            calls = list(getattr(message, "tool_calls", None) or [])
            if not calls:
                return self._final_reply(message, state)
            if final_round:
                raise _ModelFailure("max_tool_rounds", f"still calling tools after {round_number} rounds")
            messages.append(self._assistant_echo(message, calls, round_number))
            for index, call in enumerate(calls):
                call_id = getattr(call, "id", None) or f"call_{round_number}_{index}"
                result = self._run_tool(call, state)
                messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
            content = (getattr(message, "content", None) or "").strip()
            if state.handoff is not None and content:
                # The model handed off and already wrote its line to the customer: no extra round.
                return self._final_text_reply(content, state)
        raise AssertionError("unreachable: the final round returns or raises")

    def _initial_messages(self, turn: Turn) -> list[dict[str, Any]]:
        context = [self.system_prompt]
        titles = sorted(set(self.knowledge_base.article_titles.values()))
        context.append("Knowledge base articles: " + "; ".join(titles) + ".")
        if turn.queues:
            context.append("Teams you can hand off to (queue names): " + ", ".join(turn.queues) + ".")
        if turn.details:
            known = ", ".join(f"{k}: {_clip(v, MAX_DETAIL_VALUE_CHARS)}" for k, v in turn.details.items())
            context.append(f"Details already known about this customer: {known}.")
        messages: list[dict[str, Any]] = [{"role": "system", "content": "\n\n".join(context)}]
        messages.extend(history_messages(turn.history))
        messages.append({"role": "user", "content": _clip(turn.text, MAX_MESSAGE_CHARS)})
        return messages

    @staticmethod
    def _assistant_echo(message: Any, calls: Sequence[Any], round_number: int) -> dict[str, Any]:
        """The model's tool-call message as it goes back into the next request."""
        echoed = []
        for index, call in enumerate(calls):
            function = getattr(call, "function", None)
            if function is None:  # a "custom" tool call: we define none, so the model is off the rails
                raise _ModelFailure("bad_response", "tool call without a function")
            arguments = function.arguments if _parses_as_object(function.arguments) else "{}"
            echoed.append(
                {
                    "id": getattr(call, "id", None) or f"call_{round_number}_{index}",
                    "type": "function",
                    # Quirk: some servers (llama.cpp, Ollama) re-parse echoed arguments and answer
                    # 400/500 on invalid JSON, so a broken call goes back as "{}"; the tool result
                    # carries the error instead.
                    "function": {"name": function.name, "arguments": arguments},
                }
            )
        return {"role": "assistant", "content": getattr(message, "content", None), "tool_calls": echoed}

    def _final_reply(self, message: Any, state: _TurnState) -> Reply:
        content = (getattr(message, "content", None) or "").strip()
        refusal = (getattr(message, "refusal", None) or "").strip()
        if not content and refusal:
            return self._reply(refusal, state, answered=False)
        if not content:
            if state.handoff is not None:
                return self._reply(HANDOFF_TEXT, state, answered=False)
            raise _ModelFailure("bad_response", "empty answer")
        return self._final_text_reply(content, state)

    def _final_text_reply(self, content: str, state: _TurnState) -> Reply:
        if content.startswith(AGENT_PREFIX.strip()):  # the model imitating the history's agent prefix
            content = content[len(AGENT_PREFIX.strip()) :].strip()
        tagged = bool(_NO_ANSWER_TAG.search(content))
        text = re.sub(r"[ \t]+\n", "\n", _NO_ANSWER_TAG.sub("", content)).strip() or DONT_KNOW_TEXT
        answered = state.handoff is None and not tagged and not _DONT_KNOW.search(text)
        return self._reply(text, state, answered=answered)

    def _reply(self, text: str, state: _TurnState, *, answered: bool) -> Reply:
        articles = cited_articles(text, state.retrieved.values())
        grounded = GROUNDED_CONFIDENCE if articles else UNGROUNDED_CONFIDENCE
        confidence = grounded if answered else 0.0
        return Reply(
            text=text,
            answered=answered,
            confidence=confidence,
            articles=articles,
            responder=self.name,
            handoff=state.handoff,
            details=dict(state.details),
            tool_calls=tuple(state.tool_calls),
        )

    # --- tools -------------------------------------------------------------------------------------

    def _run_tool(self, call: Any, state: _TurnState) -> str:
        """Execute one tool call and return the tool result text the model sees."""
        name = call.function.name
        raw = call.function.arguments
        # Quirk: arguments arrive as a JSON *string* that may be invalid, a non-object, or "" (some
        # local servers send "" for a call without arguments).
        try:
            arguments = json.loads(raw) if raw and raw.strip() else {}
        except (TypeError, ValueError):
            arguments = None
        handler = getattr(self, _TOOLS[name]) if name in _TOOLS else None
        if not isinstance(arguments, dict) or handler is None:
            state.malformed_tool_calls += 1
            problem = (
                f"unknown tool {name!r}; available: {', '.join(_TOOLS)}"
                if handler is None
                else "the arguments were not a valid JSON object"
            )
            state.tool_calls.append(ToolCall(name, {"_raw": _clip(str(raw), 200)}, f"error: {problem}"))
            if state.malformed_tool_calls > MAX_MALFORMED_TOOL_CALLS:
                raise _ModelFailure("bad_response", f"malformed tool call: {problem}")
            return f"Error: {problem}. Call the tool again with valid JSON arguments matching its schema."
        result, summary = handler(arguments, state)
        state.tool_calls.append(ToolCall(name, arguments, _clip(summary, MAX_TOOL_RESULT_SUMMARY)))
        return result

    def _search_knowledge_base(self, arguments: dict[str, Any], state: _TurnState) -> tuple[str, str]:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return "Error: 'query' must be a non-empty string.", "error: empty query"
        hits = self.knowledge_base.search(_clip(query.strip(), MAX_QUERY_CHARS), k=SEARCH_RESULTS)
        if not hits:
            return (
                "No article matches this search. If another wording does not help, tell the customer you don't know.",
                "no matches",
            )
        blocks = []
        for rank, hit in enumerate(hits, 1):
            known = state.retrieved.get(hit.article_id)
            if known is None or hit.score > known.score:
                state.retrieved[hit.article_id] = ArticleRef(hit.article_id, hit.title, round(hit.score, 3))
            section = f" | section: {hit.passage.heading}" if hit.passage.heading else ""
            blocks.append(
                f"[{rank}] article_id: {hit.article_id} | title: {hit.title}{section}\n"
                f"{_clip(hit.text, MAX_PASSAGE_CHARS)}"
            )
        summary = ", ".join(dict.fromkeys(h.article_id for h in hits))
        return "\n\n".join(blocks), f"{len(hits)} passages: {summary}"

    def _handoff_to_human(self, arguments: dict[str, Any], state: _TurnState) -> tuple[str, str]:
        reason = _text_arg(arguments, "reason", 200) or "model_requested"
        summary = _text_arg(arguments, "summary", MAX_SUMMARY_CHARS)
        urgency = _text_arg(arguments, "urgency", 10).lower()
        urgency = urgency if urgency in URGENCIES else "normal"
        named = _text_arg(arguments, "queue", 100)
        queue = _match_queue(named, state.queues)
        state.handoff = HandoffRequest(reason=reason, queue=queue, summary=summary, urgency=urgency)
        after = (
            "Now reply to the customer with one short sentence saying a team member will take over; "
            "do not promise times."
        )
        if named and queue is None:
            # Never route to a queue that does not exist: the gateway's rules pick one instead.
            if state.queues:
                valid = ", ".join(state.queues)
                return (
                    f"Handoff recorded, but queue {named!r} does not exist. Valid queues: {valid}. "
                    f"Call handoff_to_human again with one of these if one fits; otherwise the routing "
                    f"rules will choose. {after}",
                    f"unknown queue {named!r}; valid: {valid}",
                )
            return (
                f"Handoff recorded. Queue {named!r} was ignored: the routing rules choose the team. {after}",
                f"queue {named!r} ignored (no queues configured)",
            )
        where = f" to queue {queue}" if queue else ""
        return f"Handoff recorded{where}. {after}", f"handoff{where}"

    def _record_customer_detail(self, arguments: dict[str, Any], state: _TurnState) -> tuple[str, str]:
        name = re.sub(r"[^a-z0-9]+", "_", _text_arg(arguments, "name", 60).lower()).strip("_")[:40]
        value = _text_arg(arguments, "value", MAX_DETAIL_VALUE_CHARS)
        if not name or not value:
            return "Error: both 'name' and 'value' must be non-empty strings.", "error: empty name or value"
        state.details[name] = value
        return f"Saved {name}.", f"saved {name}"


# Tool name -> the ModelResponder method that runs it; the schemas are in tool_definitions().
_TOOLS = {
    "search_knowledge_base": "_search_knowledge_base",
    "handoff_to_human": "_handoff_to_human",
    "record_customer_detail": "_record_customer_detail",
}


def build_model_responder(
    api_key: str | None,
    base_url: str | None,
    model: str,
    knowledge_base: KnowledgeBase,
    fallback: Responder | None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_retries: int = 1,
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    shop_name: str = "our shop",
) -> ModelResponder:
    """The responder as the gateway configures it from OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL.

    One SDK retry smooths over a blip; more would only keep the customer waiting for the fallback.
    """
    client = AsyncOpenAI(
        api_key=api_key or PLACEHOLDER_API_KEY,
        base_url=base_url or None,
        max_retries=max_retries,
        timeout=timeout_s,
    )
    return ModelResponder(
        client,
        model,
        knowledge_base,
        fallback=fallback,
        timeout_s=timeout_s,
        max_tool_rounds=max_tool_rounds,
        shop_name=shop_name,
    )


def tool_definitions(queues: Sequence[str]) -> list[dict[str, Any]]:
    """The three function tools, in the documented `{"type": "function", "function": {...}}` shape."""
    handoff_properties: dict[str, Any] = {
        "reason": {"type": "string", "description": "Why a person is needed, in a few words."},
        "summary": {
            "type": "string",
            "description": "Two or three sentences for the agent: what the customer wants and what is known.",
        },
        "urgency": {"type": "string", "enum": list(URGENCIES), "description": "Default normal."},
    }
    if queues:
        handoff_properties["queue"] = {
            "type": "string",
            "enum": list(queues),
            "description": "The team to hand to; leave out when unsure and the routing rules decide.",
        }
    return [
        _function(
            "search_knowledge_base",
            "Search the store's help articles. Returns the best passages with article ids and titles.",
            {"query": {"type": "string", "description": "Keywords describing what the customer asks."}},
            ["query"],
        ),
        _function(
            "handoff_to_human",
            "Hand the conversation to a human support agent.",
            handoff_properties,
            ["reason", "summary"],
        ),
        _function(
            "record_customer_detail",
            "Save a detail the customer gave, such as name, email, phone or order_number.",
            {
                "name": {"type": "string", "description": "name, email, phone, order_number, ..."},
                "value": {"type": "string", "description": "The value exactly as the customer gave it."},
            },
            ["name", "value"],
        ),
    ]


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def history_messages(history: Sequence[HistoryItem]) -> list[dict[str, Any]]:
    """The newest history items as chat messages, bounded in count and total size."""
    messages: list[dict[str, Any]] = []
    budget = MAX_HISTORY_CHARS
    for item in reversed(list(history)[-MAX_HISTORY_ITEMS:]):
        text = _clip(item.text.strip(), MAX_HISTORY_ITEM_CHARS)
        if not text:
            continue
        budget -= len(text)
        if budget < 0:
            break
        if item.author == "ai":
            messages.append({"role": "assistant", "content": text})
        elif item.author == "agent":
            messages.append({"role": "assistant", "content": AGENT_PREFIX + text})
        elif item.author == "system":
            # Quirk: some local chat templates reject a system message after the first one; the
            # gateway's system notes are rare enough to keep as-is.
            messages.append({"role": "system", "content": text})
        else:
            messages.append({"role": "user", "content": text})
    messages.reverse()
    return messages


def cited_articles(text: str, retrieved: Iterable[ArticleRef]) -> tuple[ArticleRef, ...]:
    """Retrieved articles whose title, or id as a whole word, appears in the answer."""
    folded = " ".join(text.casefold().split())
    cited = []
    for article in retrieved:
        title = " ".join(article.title.casefold().split())
        by_id = re.search(rf"(?<![\w-]){re.escape(article.article_id.casefold())}(?![\w-])", folded)
        if title in folded or by_id:
            cited.append(article)
    return tuple(cited)


def _first_message(completion: Any) -> Any:
    """The first choice's message, or a `bad_response` failure for bodies without one."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise _ModelFailure("bad_response", "no choices")
    message = getattr(choices[0], "message", None)
    if message is None or isinstance(message, dict | str):
        raise _ModelFailure("bad_response", "choice without a message")
    return message


def _match_queue(named: str, queues: Sequence[str]) -> str | None:
    """The configured queue the model named (case-insensitively), or None if there is no such queue."""
    if not named:
        return None
    for queue in queues:
        if queue.casefold() == named.casefold():
            return queue
    return None


def _parses_as_object(raw: Any) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (TypeError, ValueError):
        return False


def _text_arg(arguments: Mapping[str, Any], key: str, limit: int) -> str:
    value = arguments.get(key)
    return _clip(value.strip(), limit) if isinstance(value, str) else ""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _error_code(exc: openai.APIStatusError) -> str:
    code = getattr(exc, "code", None)
    return f"HTTP {exc.status_code}" + (f" {code}" if code else "")


async def _call_fallback(fallback: Responder, turn: Turn) -> Reply | None:
    try:
        return await fallback.respond(turn)
    except Exception:
        log.exception("ai_fallback_failed", extra={"conversation_id": turn.conversation_id, "fallback": fallback.name})
        return None
