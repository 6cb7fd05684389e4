"""Fixtures for gateways that serve SMS and WhatsApp through the local fake Twilio API
(tests/fakes/twilio_api.py): the real twilio client talks to it, and it signs what it posts to the gateway.

Registered for tests/integration and tests/contract by their conftest files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway, free_port
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.twilio_api import FakeTwilioApi
from tests.integration.slack_desk import Desk, start_desk

SMS_FROM = "+15550001111"  # our number
WHATSAPP_FROM = "+15550002222"  # our WhatsApp sender


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilioApi]:
    fake = await FakeTwilioApi().start()
    yield fake
    await fake.close()


def twilio_settings(fake: FakeTwilioApi, **overrides: Any) -> dict[str, Any]:
    """Both senders; the gateway gets its port up front, so PUBLIC_BASE_URL is where it listens."""
    port = free_port()
    return {
        "gateway_port": port,
        "public_base_url": f"http://127.0.0.1:{port}",
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_sms_from": SMS_FROM,
        "twilio_whatsapp_from": f"whatsapp:{WHATSAPP_FROM}",
        "twilio_api_url": fake.url,
        **overrides,
    }


async def start_twilio(gateway_factory: GatewayFactory, fake: FakeTwilioApi, **kw: Any) -> RunningGateway:
    return await gateway_factory(**twilio_settings(fake, **kw))


async def start_twilio_desk(
    gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path, fake: FakeTwilioApi, **kw: Any
) -> Desk:
    return await start_desk(gateway_factory, slack, routing_file, **twilio_settings(fake, **kw))


def messages_url(gateway: RunningGateway) -> str:
    return f"{gateway.base_url}/twilio/messages"


async def sms(fake: FakeTwilioApi, gateway: RunningGateway, number: str, body: str, **kw: Any) -> int:
    status, _text, _headers = await fake.send_inbound(
        messages_url(gateway), fake.sms_params(number, SMS_FROM, body, **kw)
    )
    return status


async def whatsapp(fake: FakeTwilioApi, gateway: RunningGateway, number: str, body: str = "", **kw: Any) -> int:
    params = fake.whatsapp_params(f"whatsapp:{number}", f"whatsapp:{WHATSAPP_FROM}", body, **kw)
    status, _text, _headers = await fake.send_inbound(messages_url(gateway), params)
    return status


def bodies_to(fake: FakeTwilioApi, to: str) -> list[str]:
    return [m.body or "" for m in fake.messages_to(to)]
