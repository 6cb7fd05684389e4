"""Fixtures for gateways that serve Telegram through the local fake Bot API (tests/fakes/telegram_api.py).

Registered for tests/integration and tests/contract by their conftest files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway, free_port
from tests.fakes.telegram_api import FakeTelegramApi
from tests.helpers import eventually

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


async def start_webhook(gateway_factory: GatewayFactory, fake: FakeTelegramApi, **kw: Any) -> RunningGateway:
    port = free_port()
    gw = await gateway_factory(
        **telegram_settings(fake, telegram_mode="webhook", telegram_webhook_secret=WEBHOOK_SECRET),
        gateway_port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        **kw,
    )
    await eventually(lambda: fake.webhook is not None)
    return gw


def texts_to(fake: FakeTelegramApi, chat_id: int) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in fake.sent_messages(chat_id)]
