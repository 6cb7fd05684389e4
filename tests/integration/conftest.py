"""A local fake provider and the HTTP channel adapter that talks to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.http_channel import HttpTestChannel
from tests.fakes.provider import FakeProvider
from tests.integration.email_desk import dovecot, email_gateway, mail_certs, smtp  # noqa: F401
from tests.integration.slack_desk import desk, routing_file, slack  # noqa: F401  (fixtures for every module here)
from tests.integration.telegram_bot import telegram  # noqa: F401
from tests.integration.twilio_phone import twilio  # noqa: F401


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    fake = await FakeProvider().start()
    yield fake
    await fake.close()


@pytest.fixture
async def channel(provider: FakeProvider) -> AsyncIterator[HttpTestChannel]:
    adapter = HttpTestChannel(provider.url)
    yield adapter
    await adapter.close()
