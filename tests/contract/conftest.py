"""The contract suite runs once per registered channel, each through its own local fake provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from channels.registry import CHANNELS
from tests.contract.drivers import ChannelDriver, EmailDriver, TelegramDriver, TwilioDriver, WebchatDriver
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.twilio_api import FakeTwilioApi
from tests.integration.email_desk import mail_certs  # noqa: F401  (fixture)
from tests.integration.slack_desk import routing_file, slack  # noqa: F401  (fixtures)
from tests.integration.telegram_bot import TOKEN

# A plug-in with several adapters (Twilio: SMS and WhatsApp) runs the suite once per adapter.
ADAPTERS = {"twilio": ("sms", "whatsapp")}


@pytest.fixture(params=[name for spec in CHANNELS for name in ADAPTERS.get(spec.name, (spec.name,))])
async def driver(request: pytest.FixtureRequest) -> AsyncIterator[ChannelDriver]:
    made: ChannelDriver
    fake: FakeTelegramApi | FakeTwilioApi | None = None
    if request.param == "webchat":
        made = WebchatDriver()
    elif request.param == "telegram":
        fake = await FakeTelegramApi(TOKEN).start()
        made = TelegramDriver(fake)
    elif request.param in ("sms", "whatsapp"):
        fake = await FakeTwilioApi().start()
        made = TwilioDriver(fake, request.param)
    elif request.param == "email":
        made = EmailDriver(request.getfixturevalue("mail_certs"))
    else:
        pytest.fail(f"channel {request.param!r} is registered but has no contract driver in tests/contract/drivers.py")
    yield made
    await made.close()
    if fake is not None:
        await fake.close()
