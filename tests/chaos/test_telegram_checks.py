"""The crash test's Telegram checks hold for a clean exchange and catch each kind of fault they name.

A check that cannot fail proves nothing: a gateway (in process, long polling the fake Bot API) answers
a chaos customer, the checks pass; then faults are planted the way a crash would leave them.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import aiohttp
from pymongo import AsyncMongoClient

from bench.webchat_roundtrip import answered_questions
from tests.chaos.telegram_checks import verify_telegram
from tests.chaos.telegram_customers import TelegramCustomer, TelegramSent
from tests.conftest import GatewayFactory
from tests.fakes.telegram_api import FakeTelegramApi
from tests.integration.telegram_bot import TOKEN, start_polling, telegram  # noqa: F401  (fixture)


async def test_telegram_checks_pass_a_clean_exchange_and_catch_planted_faults(
    gateway_factory: GatewayFactory,
    telegram: FakeTelegramApi,  # noqa: F811
    mongo: AsyncMongoClient,
    db_name: str,
) -> None:
    await start_polling(gateway_factory, telegram)
    questions, _ = answered_questions()
    customer = TelegramCustomer(0, telegram, questions, random.Random(1), answer_wait=10.0, think=(0.0, 0.0))
    await customer.start(asyncio.Event(), 2)
    db = mongo[db_name]

    clean = await verify_telegram(db, telegram, [customer])
    assert clean.ok, clean.table()
    assert (clean.stored_customer_messages, clean.stored_replies, clean.delivered) == (2, 2, 2)
    assert all(m.answered and len(m.update_ids) == 1 for m in customer.sent)

    chat = customer.chat_id
    first, second = telegram.sent_messages(chat)
    # A reply sent again (as after a kill between Telegram's answer and the outbox's "sent" write).
    async with aiohttp.ClientSession() as http:
        await http.post(f"{telegram.base_url}{TOKEN}/sendMessage", json={"chat_id": chat, "text": first["text"]})
    # A message Telegram took that the gateway never stored, in an update past the confirmed offset.
    customer.sent.append(TelegramSent(chat, 999, "never stored", 2, [10**9]))
    # The second answer gone from the database: its message is unanswered, its bot message a stray.
    await db.messages.delete_one({"author": "ai", "text": second["text"]})

    faulty = await verify_telegram(db, telegram, [customer])
    assert faulty.counts == Counter(
        {"delivered twice": 1, "lost": 1, "offset behind": 1, "unanswered": 1, "stray message": 1}
    ), faulty.table()
