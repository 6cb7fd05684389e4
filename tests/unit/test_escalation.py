"""Each escalation trigger, on the shipped rules and the real offline triage and responder."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_bridge.ai.escalation import Context, Triage
from agent_bridge.ai.offline import OfflineResponder
from agent_bridge.ai.responder import HandoffRequest, Reply
from agent_bridge.ai.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def triage() -> Triage:
    return Triage.load(load_rules(ROOT / "config" / "routing.yaml"), base_dir=ROOT)


@pytest.fixture(scope="module")
def responder() -> OfflineResponder:
    return OfflineResponder.from_directory(ROOT / "config" / "kb")


def decide(triage: Triage, responder: OfflineResponder, text: str, context: Context | None = None):
    context = context or Context()
    assessment = triage.assess(text, context)
    # As a live turn does: the responder gets the triage's intent (gateway/ingest.py).
    reply = None
    if assessment.trigger is None:
        reply = responder.answer(text, assessment.intent, assessment.intent_confidence)
    return triage.decide(assessment, reply, context)


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a real person",
        "can i speak with an agent please",
        "Quiero hablar con una persona",
        "Je voudrais parler à un conseiller",
        "Ich möchte mit einem Mitarbeiter sprechen",
        "Quero falar com um atendente",
        "Vorrei parlare con un operatore",
    ],
)
def test_a_request_for_a_person_hands_off_in_six_languages(triage, responder, text: str) -> None:
    decision = decide(triage, responder, text)
    assert (decision.action, decision.trigger) == ("handoff", "human_request"), decision
    assert decision.queue == "general"


@pytest.mark.parametrize(
    ("text", "queue"),
    [
        ("I want to dispute a charge on my card, this is a chargeback", "billing"),
        ("my order arrived damaged, the lamp is cracked", None),
        ("I was charged twice for the same order", "billing"),
    ],
)
def test_sensitive_topics_hand_off(triage, responder, text: str, queue: str | None) -> None:
    decision = decide(triage, responder, text)
    assert (decision.action, decision.trigger) == ("handoff", "sensitive_topic"), decision
    if queue:
        assert decision.queue == queue


def test_handoff_intents_hand_off_with_their_queue(triage, responder) -> None:
    decision = decide(triage, responder, "I want a refund for my last order")
    assert decision.action == "handoff" and decision.intent == "get_refund" and decision.queue == "billing"


def test_an_upset_or_urgent_customer_is_handed_off(triage, responder) -> None:
    upset = decide(triage, responder, "This is the worst, most useless shop ever. I am furious and disgusted.")
    assert (upset.action, upset.trigger, upset.urgency) == ("handoff", "negative_sentiment", "high")
    urgent = decide(triage, responder, "URGENT!!! I need the delivery options right now, it's an emergency")
    assert urgent.action == "handoff" and urgent.trigger in ("urgency", "negative_sentiment")


def test_low_confidence_hands_off_instead_of_guessing(triage, responder) -> None:
    decision = decide(triage, responder, "What is the capital of Mongolia?")
    assert (decision.action, decision.trigger) == ("handoff", "low_confidence")


def test_an_informational_question_is_answered(triage, responder) -> None:
    decision = decide(triage, responder, "How much does shipping cost?")
    assert decision.action == "answer" and decision.trigger is None
    assert decision.reason == "answered from the knowledge base"


def test_a_customer_repeating_themselves_counts_as_failure(triage, responder) -> None:
    text = "How much does shipping cost?"
    first = triage.assess(text)
    context = Context(recent_customer_texts=(text,), turns_without_progress=1)
    second = triage.assess(text, context)
    assert second.repeated and not first.repeated
    decision = triage.decide(second, responder.answer(text), context)
    assert (decision.action, decision.trigger) == ("handoff", "repeated_failure")


def test_policy_limits_hand_off_above_the_amount(triage, responder) -> None:
    below = decide(triage, responder, "Can I pay $120 with PayPal?")
    above = decide(triage, responder, "Can I pay $2,400 with PayPal for three sofas?")
    assert below.trigger != "policy_limit"
    assert (above.action, above.trigger, above.queue) == ("handoff", "policy_limit", "billing")


def test_back_office_actions_hand_off(triage, responder) -> None:
    decision = decide(triage, responder, "please change the shipping address on order NW-1234567")
    assert (decision.action, decision.trigger) == ("handoff", "back_office")
    assert decision.details["order_number"].upper().replace(" ", "-") == "NW-1234567"


def test_the_model_cannot_route_to_a_queue_that_does_not_exist(triage) -> None:
    assessment = triage.assess("I have a question about my invoice")
    bogus = Reply("Let me get someone.", False, 0.0, handoff=HandoffRequest("needs review", queue="vip-lounge"))
    decision = triage.decide(assessment, bogus)
    assert decision.action == "handoff" and decision.trigger == "model_request"
    assert decision.queue in triage.rules.queue_names and decision.queue != "vip-lounge"
    real = Reply("Let me get someone.", False, 0.0, handoff=HandoffRequest("needs review", queue="accounts"))
    assert triage.decide(assessment, real).queue == "accounts"


def test_no_reply_at_all_hands_off_as_ai_unavailable(triage) -> None:
    decision = triage.decide(triage.assess("How much does shipping cost?"), None)
    assert (decision.action, decision.trigger) == ("handoff", "ai_unavailable")


def test_details_are_collected_across_turns(triage, responder) -> None:
    context = Context(details={"name": "Dana Smith"})
    decision = decide(triage, responder, "my email is dana@example.com, how much does shipping cost?", context)
    assert decision.details["name"] == "Dana Smith" and decision.details["email"] == "dana@example.com"


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("my package never arrived and I'm really upset, this is the third time", "repeat contact: 'the third time'"),
        ("How many times do I have to ask where my order is", "repeat contact: 'how many times'"),
        ("I keep asking and nobody answers", "repeat contact: 'i keep asking'"),
        ("this is useless, I asked again and still nothing", "repeat contact: 'again' in a negative message"),
        ("I will file a chargeback if this is not sorted", "threat: 'chargeback'"),
        ("I'm going to take my business elsewhere", "threat: 'take my business elsewhere'"),
        ("es la tercera vez que escribo por lo mismo", "repeat contact: 'es la tercera vez'"),
        ("c'est la troisième fois, je vais porter plainte", "threat: 'porter plainte'"),
        ("Ich warte immer noch auf mein Paket, das ist eine Frechheit", "repeat contact: 'warte immer noch'"),
        ("pela terceira vez, cadê o meu pedido", "repeat contact: 'pela terceira vez'"),
        ("vi scrivo per la terza volta", "repeat contact: 'per la terza volta'"),
        # They say so, or pass a verdict on us; VADER alone scores these above -0.6 (two as positive).
        ("I'm really upset, my package never arrived", 'says: "i\'m really upset"'),
        ("I can't believe how bad your service is. Nobody cares", "says: 'how bad your service'"),
        ("Awful. Just awful. I waited all day for a delivery that never came", "says: 'awful'"),
        ("You people are incompetent. Three weeks and no refund", "says: 'you people are incompetent'"),
        ("Estoy muy enfadada, el pedido llegó roto", "says: 'estoy muy enfadada'"),
        ("C'est inadmissible, colis perdu", 'says: "c\'est inadmissible"'),
        ("Ich bin total enttäuscht von der Lieferung", "says: 'ich bin total enttauscht'"),
        ("Isso é um absurdo, ninguém responde", "says: 'isso e um absurdo'"),
        ("Sono davvero arrabbiato, il pacco è sparito", "says: 'sono davvero arrabbiato'"),
    ],
)
def test_upset_customers_are_recognised_whatever_the_intent(
    triage: Triage, responder: OfflineResponder, text: str, cue: str
) -> None:
    assert triage.assess(text).sentiment.upset_cue == cue
    decision = decide(triage, responder, text)
    assert decision.action == "handoff", decision
    # An earlier trigger may name it first (a chargeback is a refund dispute); else the reason names the cue.
    if decision.trigger == "negative_sentiment":
        assert decision.reason == f"the customer is upset ({cue})"
    else:
        assert decision.trigger in ("sensitive_topic", "human_request"), decision


@pytest.mark.parametrize(
    "text",
    [
        "Can I order the same thing again?",
        "Is the sale still on?",
        "How long does delivery take?",
        "My kids keep asking me about it every single day.",  # a story, not a complaint about us
    ],
)
def test_again_and_still_alone_are_no_complaint(triage: Triage, text: str) -> None:
    assert triage.assess(text).sentiment.upset_cue == ""


@pytest.mark.parametrize(
    "text",
    [
        # A long message's mild words do not add up to an upset customer: its worst sentence counts.
        "It has been a really long and stressful week at work. I am writing this from my phone so sorry for "
        "any mistakes. How do I reset my password?",
        # Politeness formulas carry VADER's negative words without any mood.
        "I hate to ask but could you explain the refund policy again?",
        "Busy week, sorry for the slow reply. I still need the invoice for March.",
        "I am sorry if this is a silly question but do you ship to Canada?",
        "Is it terrible? I mean the weather where the parcel is.",
    ],
)
def test_stories_and_politeness_are_not_upset(triage: Triage, responder: OfflineResponder, text: str) -> None:
    sentiment = triage.assess(text).sentiment
    assert sentiment.upset_cue == "" and sentiment.score > -0.6, sentiment


def test_the_urgency_reason_names_the_cue(triage: Triage, responder: OfflineResponder) -> None:
    decision = decide(triage, responder, "WHERE IS MY ORDER!!!")
    assert decision.trigger == "urgency"
    assert decision.reason == "the customer says it is urgent (3 exclamation marks; shouting (all caps))"
