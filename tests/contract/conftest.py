"""The contract suite runs once per registered channel, each through its own local fake provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from channels.registry import CHANNELS
from tests.contract.drivers import ChannelDriver, TelegramDriver, WebchatDriver
from tests.fakes.telegram_api import FakeTelegramApi
from tests.integration.slack_desk import routing_file, slack  # noqa: F401  (fixtures)
from tests.integration.telegram_bot import TOKEN


@pytest.fixture(params=[spec.name for spec in CHANNELS])
async def driver(request: pytest.FixtureRequest) -> AsyncIterator[ChannelDriver]:
    made: ChannelDriver
    fake: FakeTelegramApi | None = None
    if request.param == "webchat":
        made = WebchatDriver()
    elif request.param == "telegram":
        fake = await FakeTelegramApi(TOKEN).start()
        made = TelegramDriver(fake)
    else:
        pytest.fail(f"channel {request.param!r} is registered but has no contract driver in tests/contract/drivers.py")
    yield made
    await made.close()
    if fake is not None:
        await fake.close()
