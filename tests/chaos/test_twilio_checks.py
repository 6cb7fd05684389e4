"""The crash test's SMS checks hold for a clean exchange and catch each kind of fault they name.

A check that cannot fail proves nothing: a gateway (in process, SMS through the fake Twilio API) answers a
chaos SMS customer, the checks pass; then faults are planted the way a crash would leave them.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import aiohttp
from pymongo import AsyncMongoClient

from bench.webchat_roundtrip import answered_questions
from tests.chaos.twilio_checks import verify_twilio
from tests.chaos.twilio_customers import SMS_FROM, SmsSent, TwilioCustomer
from tests.conftest import GatewayFactory
from tests.fakes.twilio_api import API_VERSION, FakeTwilioApi, new_sid
from tests.helpers import eventually
from tests.integration.twilio_phone import start_twilio, twilio  # noqa: F401  (fixture)


async def test_twilio_checks_pass_a_clean_exchange_and_catch_planted_faults(
    gateway_factory: GatewayFactory,
    twilio: FakeTwilioApi,  # noqa: F811
    mongo: AsyncMongoClient,
    db_name: str,
) -> None:
    gateway = await start_twilio(gateway_factory, twilio, twilio_sms_from=SMS_FROM)
    questions, _ = answered_questions()
    # Customer 1 asks three questions with three different answers, the last one long enough for two SMS.
    customer = TwilioCustomer(
        1, twilio, gateway.base_url, questions, random.Random(1), answer_wait=10.0, think=(0.0, 0.0)
    )
    await customer.start(asyncio.Event(), 3)
    db = mongo[db_name]

    async def reply_of(n: int) -> dict:
        stored = await db.messages.find_one({"idempotency_key": customer.sent[n].key})
        return await db.messages.find_one({"meta.in_reply_to": stored["_id"]})

    # The last answer's parts may still be on their way: check until everything holds, as the run does.
    async def consistent() -> bool:
        return (await verify_twilio(db, twilio, [customer])).ok

    await eventually(consistent, every=0.1)
    clean = await verify_twilio(db, twilio, [customer])
    assert clean.ok, clean.table()
    replies = [await reply_of(n) for n in range(3)]
    jobs = [
        await db.outbox.find({"channel": "sms", "message.message_id": str(r["_id"])}).sort("part").to_list()
        for r in replies
    ]
    assert (clean.stored_customer_messages, clean.stored_replies) == (3, 3)
    assert clean.delivered == sum(map(len, jobs)) and len(jobs[2]) > 1  # one SMS per part
    assert (clean.not_acknowledged, clean.not_acknowledged_stored) == (0, 0)
    assert all(m.answered and m.acked and (m.rounds, m.posts) == (1, 1) for m in customer.sent)

    number = customer.number
    # The first reply sent again (as after a kill between Twilio's answer and the outbox's "sent" write).
    first = next(m for m in twilio.messages_to(number) if m.sid == jobs[0][0]["provider_message_id"])
    async with aiohttp.ClientSession(auth=aiohttp.BasicAuth(twilio.account_sid, twilio.auth_token)) as http:
        url = f"{twilio.url}/{API_VERSION}/Accounts/{twilio.account_sid}/Messages.json"
        async with http.post(url, data={"To": number, "From": SMS_FROM, "Body": first.body}) as response:
            assert response.status == 201
    # The second reply never reached the phone: Twilio has no record of it.
    second = {str(job["provider_message_id"]) for job in jobs[1]}
    twilio.messages[:] = [m for m in twilio.messages if m.sid not in second]
    # A message the gateway answered 200 for but never stored; one it never acknowledged (Twilio's 11200,
    # not a loss); one it refused with 403.
    down = ["ClientConnectorError"] * 4
    customer.sent.append(SmsSent(number, new_sid("SM"), "never stored", 3, rounds=1, posts=1, statuses=[200]))
    customer.sent.append(SmsSent(number, new_sid("SM"), "gateway down", 4, rounds=1, posts=4, errors=down))
    customer.sent.append(SmsSent(number, new_sid("SM"), "refused", 5, rounds=1, posts=4, statuses=[403] * 4))
    # Stored, but every answer to Twilio failed (killed before the 200): no loss, counted apart.
    customer.sent[1].statuses = [502]
    # The third answer gone from the database: its message is unanswered, its SMS are strays.
    await db.messages.delete_one({"_id": replies[2]["_id"]})

    faulty = await verify_twilio(db, twilio, [customer])
    assert faulty.counts == Counter(
        {
            "delivered twice": 1,
            "not delivered": len(jobs[1]),
            "lost": 1,
            "refused": 1,
            "unanswered": 1,
            "stray message": len(jobs[2]),
        }
    ), faulty.table()
    assert (faulty.not_acknowledged, faulty.not_acknowledged_stored) == (2, 1)
