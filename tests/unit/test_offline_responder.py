"""The offline responder against the real sample knowledge base and against throwaway ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_bridge.ai.knowledge_base import KnowledgeBase, KnowledgeBaseError, parse_article
from agent_bridge.ai.offline import (
    DONT_KNOW_TEXT,
    MAX_REPLY_CHARS,
    OfflineResponder,
    trim_to_sentences,
)
from agent_bridge.ai.responder import HistoryItem, Reply, Turn

KB_DIR = Path(__file__).resolve().parents[2] / "config" / "kb"


@pytest.fixture(scope="module")
def responder() -> OfflineResponder:
    return OfflineResponder.from_directory(KB_DIR)


async def ask(responder: OfflineResponder, text: str) -> Reply:
    return await responder.respond(Turn(conversation_id="c-1", text=text))


def assert_answered_from(reply: Reply, article_id: str) -> None:
    assert reply.answered, reply.text
    assert [a.article_id for a in reply.articles] == [article_id]
    title = reply.articles[0].title
    assert reply.text.endswith(f"\n\nSource: {title}")
    assert 0.0 < reply.confidence <= 1.0
    assert reply.articles[0].score > 0
    assert reply.responder == "offline"


# --- the sample knowledge base ------------------------------------------------------------------


def test_sample_kb_has_the_expected_articles() -> None:
    kb = KnowledgeBase.load(KB_DIR)
    titles = kb.article_titles
    assert 8 <= len(titles) <= 12
    for article_id in ("shipping", "refunds", "returns", "accounts", "payment-methods", "order-tracking"):
        assert article_id in titles
    for path in KB_DIR.glob("*.md"):
        words = len(path.read_text(encoding="utf-8").split())
        assert 150 <= words <= 400, f"{path.name} has {words} words"


async def test_shipping_question_cites_shipping_article(responder: OfflineResponder) -> None:
    reply = await ask(responder, "How much does shipping cost?")
    assert_answered_from(reply, "shipping")
    assert "Source: Shipping options and costs" in reply.text
    assert "$5.95" in reply.text


async def test_free_shipping_question_quotes_threshold(responder: OfflineResponder) -> None:
    reply = await ask(responder, "Is there free shipping?")
    assert_answered_from(reply, "shipping")
    assert "$75" in reply.text


async def test_refund_time_question_cites_refund_article(responder: OfflineResponder) -> None:
    reply = await ask(responder, "How long does it take to get my refund?")
    assert_answered_from(reply, "refunds")
    assert "Source: Refund policy" in reply.text
    assert "business days" in reply.text


async def test_password_question_cites_accounts_article(responder: OfflineResponder) -> None:
    reply = await ask(responder, "I forgot my password, how do I reset it?")
    assert_answered_from(reply, "accounts")
    assert "Source: Accounts and passwords" in reply.text
    assert "reset link" in reply.text


@pytest.mark.parametrize(
    ("question", "article_id"),
    [
        ("What payment methods do you accept?", "payment-methods"),
        ("How do I cancel my subscription?", "cancellation-fees"),
        ("How do I track my package?", "order-tracking"),
        ("How many days do I have to return something?", "returns"),
        ("How do I unsubscribe from the newsletter?", "newsletter"),
        ("Where can I download an invoice?", "invoices"),
        ("How long does delivery take?", "delivery-times"),
    ],
)
async def test_other_topics_cite_their_article(responder: OfflineResponder, question: str, article_id: str) -> None:
    assert_answered_from(await ask(responder, question), article_id)


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of Mongolia?",
        "Can you fix my car engine?",
        "Can I order a pizza?",
        "Who won the football game last night?",
        # These share a selective word or two with the KB ("weekend", "credit card") but most of
        # the question is about something it never mentions.
        "Can you recommend a good movie to watch this weekend?",
        "What is the best credit card for travel rewards?",
        # Only "order" matches, a word most passages share: not enough to pick a topic.
        "Where is my order?",
        "",
        "?!",
    ],
)
async def test_unmatched_question_says_it_does_not_know(responder: OfflineResponder, question: str) -> None:
    reply = await ask(responder, question)
    assert reply.answered is False
    assert reply.text == DONT_KNOW_TEXT
    assert "don't know" in reply.text
    assert "support team can help" in reply.text
    assert reply.articles == ()
    assert reply.confidence == 0.0
    assert reply.responder == "offline"


@pytest.mark.parametrize(
    "message",
    ["hi", "Hello there!", "good morning", "how are you?", "thanks!", "Thank you so much", "bye", "ok"],
)
async def test_small_talk_gets_a_friendly_reply(responder: OfflineResponder, message: str) -> None:
    reply = await ask(responder, message)
    assert reply.answered is True
    assert reply.articles == ()
    assert reply.text != DONT_KNOW_TEXT
    assert "Source:" not in reply.text
    assert len(reply.text) < 100
    assert 0.5 <= reply.confidence <= 1.0


async def test_thanks_and_greeting_get_different_replies(responder: OfflineResponder) -> None:
    greeting = await ask(responder, "hi")
    thanks = await ask(responder, "thanks")
    assert greeting.text != thanks.text
    assert "welcome" in thanks.text.lower()


async def test_greeting_with_a_question_answers_the_question(responder: OfflineResponder) -> None:
    reply = await ask(responder, "Hi! How do I reset my password?")
    assert_answered_from(reply, "accounts")


async def test_history_does_not_change_the_answer_to_a_standalone_question(
    responder: OfflineResponder,
) -> None:
    history = (HistoryItem("customer", "hi"), HistoryItem("ai", "Hi there! How can I help you today?"))
    turn = Turn(conversation_id="c-2", text="Is there free shipping?", history=history)
    assert_answered_from(await responder.respond(turn), "shipping")


QUESTIONS = [
    "How much does shipping cost?",
    "Do you ship to Canada?",
    "How long does it take to get my refund?",
    "What payment methods do you accept?",
    "How do I cancel my subscription?",
    "I forgot my password",
    "How do I change my email address?",
    "How do I track my package?",
    "How do I return an item?",
    "What do the order statuses mean?",
    "How do I unsubscribe from the newsletter?",
    "Can I add my company tax ID to an invoice?",
    "What is the capital of Mongolia?",
    "hello",
]


@pytest.mark.parametrize("max_chars", [MAX_REPLY_CHARS, 300, 200])
async def test_reply_never_exceeds_the_cap(max_chars: int) -> None:
    responder = OfflineResponder(KnowledgeBase.load(KB_DIR), max_chars=max_chars)
    answered = 0
    for question in QUESTIONS:
        reply = await ask(responder, question)
        assert len(reply.text) <= max_chars, (question, len(reply.text))
        if reply.answered and reply.articles:
            answered += 1
            assert reply.text.endswith(f"Source: {reply.articles[0].title}")
    assert answered >= len(QUESTIONS) - 3


async def test_long_answer_is_cut_at_a_sentence_boundary(tmp_path: Path) -> None:
    sentences = [f"Parcel rule number {n} applies to every crate we dispatch." for n in range(40)]
    (tmp_path / "crates.md").write_text("# Crate dispatch\n\n## Rules\n\n" + " ".join(sentences) + "\n")
    responder = OfflineResponder(KnowledgeBase.load(tmp_path), max_chars=400)
    reply = await ask(responder, "Which rules apply to crate dispatch?")
    assert reply.answered
    body, _, citation = reply.text.rpartition("\n\nSource: ")
    assert citation == "Crate dispatch"
    assert len(reply.text) <= 400
    assert body.endswith("dispatch.")
    assert body.startswith(sentences[0])
    assert len(body) < len(" ".join(sentences))


def test_trim_to_sentences() -> None:
    text = "First sentence here. Second one is a bit longer. Third."
    assert trim_to_sentences(text, 100) == text
    assert trim_to_sentences(text, 30) == "First sentence here."
    # "p.m." is not a sentence end, so the cut never leaves "Order by 2 p.m." looking complete.
    assert trim_to_sentences("Order by 2 p.m. Eastern for same-day dispatch. Later orders wait.", 50) == (
        "Order by 2 p.m. Eastern for same-day dispatch."
    )
    assert trim_to_sentences("Order by 2 p.m. Eastern for same-day dispatch. Later orders wait.", 30) == (
        "Order by 2 p.m. Eastern for…"
    )
    cut = trim_to_sentences("one enormous sentence without any full stop " * 5, 40)
    assert len(cut) <= 40
    assert cut.endswith("…")
    # A lead-in whose list did not fit is dropped rather than left dangling.
    assert trim_to_sentences("Costs are low.\nYou can pay with:\n- a very long list item " + "x" * 50, 40) == (
        "Costs are low."
    )


# --- retrieval is real: answers follow the files --------------------------------------------------


def write_article(directory: Path, stem: str, markdown: str) -> None:
    (directory / f"{stem}.md").write_text(markdown, encoding="utf-8")


LLAMAS = """# Llama grooming

## Brushing

Brush your llama's fleece once a week with a wide-tooth comb, working from the neck to the tail.

## Shearing

Shear llamas every spring, before the weather turns hot. A full shearing takes about 40 minutes.
"""

TEAPOTS = """# Teapot care

## Descaling

Descale a teapot monthly by soaking it in warm water with two spoons of citric acid.

## Cracked lids

A cracked porcelain lid can be replaced for $12 through our spare-parts service.
"""


async def test_answers_come_from_the_files_on_disk(tmp_path: Path) -> None:
    write_article(tmp_path, "llamas", LLAMAS)
    write_article(tmp_path, "teapots", TEAPOTS)
    responder = OfflineResponder.from_directory(tmp_path)

    reply = await ask(responder, "When should I shear my llama?")
    assert_answered_from(reply, "llamas")
    assert "every spring" in reply.text
    assert reply.text.endswith("Source: Llama grooming")

    reply = await ask(responder, "My teapot lid is cracked, can it be replaced?")
    assert_answered_from(reply, "teapots")
    assert "$12" in reply.text

    # A question the real KB answers means nothing to this one.
    reply = await ask(responder, "How much does shipping cost?")
    assert reply.answered is False


async def test_editing_an_article_changes_the_answer(tmp_path: Path) -> None:
    write_article(tmp_path, "llamas", LLAMAS)
    write_article(tmp_path, "teapots", TEAPOTS)
    before = await ask(OfflineResponder.from_directory(tmp_path), "How much is a replacement teapot lid?")
    assert "$12" in before.text

    write_article(tmp_path, "teapots", TEAPOTS.replace("$12", "$18"))
    after = await ask(OfflineResponder.from_directory(tmp_path), "How much is a replacement teapot lid?")
    assert "$18" in after.text
    assert "$12" not in after.text

    (tmp_path / "teapots.md").unlink()
    gone = await ask(OfflineResponder.from_directory(tmp_path), "How much is a replacement teapot lid?")
    assert gone.answered is False


async def test_a_word_every_passage_shares_is_not_enough_to_answer(tmp_path: Path) -> None:
    write_article(
        tmp_path,
        "care",
        "# Widget care\n\n## Cleaning\n\nWipe the widget dry.\n\n## Storage\n\nStore the widget cool.\n",
    )
    write_article(tmp_path, "warranty", "# Widget warranty\n\n## Cover\n\nThe widget has two years of cover.\n")
    kb = KnowledgeBase.load(tmp_path)
    hits = kb.search("widget", k=10)
    assert len(hits) == len(kb) == 3, "every passage contains the word"
    assert hits[0].coverage == pytest.approx(1.0)
    responder = OfflineResponder(kb)
    assert (await ask(responder, "widget?")).answered is False
    # Control: the same KB does answer once the question has a selective term.
    assert_answered_from(await ask(responder, "How should I store the widget?"), "care")


def test_search_returns_passages_with_title_and_scores(tmp_path: Path) -> None:
    write_article(tmp_path, "llamas", LLAMAS)
    write_article(tmp_path, "teapots", TEAPOTS)
    kb = KnowledgeBase.load(tmp_path)
    assert len(kb) == 4
    hits = kb.search("descale teapot citric acid", k=3)
    assert hits[0].article_id == "teapots"
    assert hits[0].title == "Teapot care"
    assert hits[0].passage.heading == "Descaling"
    assert "citric acid" in hits[0].text
    assert hits[0].coverage == pytest.approx(1.0)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert kb.search("zeppelin", k=3) == []


def test_article_is_split_into_sections() -> None:
    passages = parse_article("x", "# Title\n\nIntro text.\n\n## One\n\nFirst.\n\n## Two\n\nSecond.\n")
    assert [(p.heading, p.text) for p in passages] == [
        (None, "Intro text."),
        ("One", "First."),
        ("Two", "Second."),
    ]
    assert {p.title for p in passages} == {"Title"}


# --- configuration errors -------------------------------------------------------------------------


def test_missing_directory_raises_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kb"
    with pytest.raises(KnowledgeBaseError, match="does not exist") as error:
        OfflineResponder.from_directory(missing)
    assert str(missing) in str(error.value)


def test_directory_without_articles_raises_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not markdown")
    with pytest.raises(KnowledgeBaseError, match=r"no \*\.md articles") as error:
        KnowledgeBase.load(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_article_without_title_raises_a_clear_error(tmp_path: Path) -> None:
    write_article(tmp_path, "untitled", "Just some text without a heading.\n")
    with pytest.raises(KnowledgeBaseError, match=r"untitled\.md") as error:
        KnowledgeBase.load(tmp_path)
    assert "# Title" in str(error.value)


async def test_a_confident_intent_answers_from_the_article_that_declares_it(responder: OfflineResponder) -> None:
    question = "can you tell me about delivery period?"
    assert not (await ask(responder, question)).answered, "retrieval alone finds no article for this wording"
    reply = await responder.respond(
        Turn(conversation_id="c-1", text=question, intent="delivery_period", intent_confidence=0.98)
    )
    assert_answered_from(reply, "delivery-times")
    assert reply.confidence == 0.98


def test_a_middling_intent_answers_unless_retrieval_points_elsewhere(responder: OfflineResponder) -> None:
    agreeing = responder.answer("How many business days does standard delivery take?", "delivery_period", 0.5)
    assert agreeing.answered and agreeing.articles[0].article_id == "delivery-times"
    # Misspelt beyond retrieval's reach: no passage stands out, so the middling intent answers.
    misspelt = responder.answer("how soln can I expeqct te item", "delivery_period", 0.5)
    assert misspelt.answered and misspelt.articles[0].article_id == "delivery-times"
    # Retrieval finds another article on its own: that is evidence against the intent, which gives way.
    elsewhere = responder.answer("How do I reset my password?", "delivery_period", 0.5)
    assert elsewhere.answered and elsewhere.articles[0].article_id != "delivery-times"
    assert elsewhere.articles[0].article_id == responder.answer("How do I reset my password?").articles[0].article_id
    # Below the band the intent is not used; an intent no article declares changes nothing.
    assert not responder.answer("what is the capital of Mongolia?", "delivery_period", 0.39).answered
    assert not responder.answer("what is the capital of Mongolia?", "review", 0.99).answered


def test_front_matter_declares_intents_and_a_bad_one_is_refused() -> None:
    [passage] = parse_article("x", "---\nintents: [delivery_period, delivery_options]\n---\n# Delivery\n\nText.\n")
    assert passage.intents == {"delivery_period", "delivery_options"} and passage.title == "Delivery"
    with pytest.raises(KnowledgeBaseError, match="must be a list of intent names"):
        parse_article("x", "---\nintents: [Delivery Period]\n---\n# Delivery\n\nText.\n")
    with pytest.raises(KnowledgeBaseError, match="not valid YAML"):
        parse_article("x", "---\nintents: [a\n---\n# Delivery\n\nText.\n")
    assert KnowledgeBase.load(KB_DIR).article_intents["delivery-times"] == {"delivery_period"}
