"""Fixtures for gateways that serve Telegram through the local fake Bot API (tests/fakes/telegram_api.py).

Registered for tests/integration and tests/contract by their conftest files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway, free_port
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.telegram_api import FakeTelegramApi
from tests.helpers import eventually
from tests.integration.slack_desk import Desk, start_desk

TOKEN = "123456789:AAHfakeTokenForGatewayTests-0123456789"
WEBHOOK_SECRET = "webhook-secret-for-tests_0123456789"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegramApi]:
    fake = await FakeTelegramApi(TOKEN).start()
    yield fake
    await fake.close()


def telegram_settings(fake: FakeTelegramApi, **overrides: Any) -> dict[str, Any]:
    return {
        "telegram_bot_token": TOKEN,
        "telegram_api_url": fake.base_url.removesuffix("/bot"),
        "telegram_poll_timeout_seconds": 1,
        **overrides,
    }


async def start_polling(gateway_factory: GatewayFactory, fake: FakeTelegramApi, **kw: Any) -> RunningGateway:
    gw = await gateway_factory(**telegram_settings(fake, telegram_mode="polling"), **kw)
    await eventually(lambda: bool(fake.calls_to("getUpdates")))
    return gw


def webhook_settings(fake: FakeTelegramApi) -> dict[str, Any]:
    """Webhook mode: the gateway gets its port up front, so the URL it registers is where it listens."""
    port = free_port()
    return {
        **telegram_settings(fake, telegram_mode="webhook", telegram_webhook_secret=WEBHOOK_SECRET),
        "gateway_port": port,
        "public_base_url": f"http://127.0.0.1:{port}",
    }


async def start_webhook(gateway_factory: GatewayFactory, fake: FakeTelegramApi, **kw: Any) -> RunningGateway:
    gw = await gateway_factory(**webhook_settings(fake), **kw)
    await eventually(lambda: fake.webhook is not None)
    return gw


async def start_webhook_desk(
    gateway_factory: GatewayFactory, slack: FakeSlackApi, routing_file: Path, fake: FakeTelegramApi
) -> Desk:
    """A gateway serving Telegram by webhook, with the Slack desk."""
    desk = await start_desk(gateway_factory, slack, routing_file, **webhook_settings(fake))
    await eventually(lambda: fake.webhook is not None)
    return desk


def texts_to(fake: FakeTelegramApi, chat_id: int) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in fake.sent_messages(chat_id)]
