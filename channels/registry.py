"""Every channel the gateway can serve. Adding a channel: one package in `channels/`, one line here."""

from __future__ import annotations

from channels.email.plugin import EMAIL
from channels.telegram.plugin import TELEGRAM
from channels.twilio.plugin import TWILIO
from channels.webchat.plugin import WEBCHAT
from gateway.channel import ChannelSpec

CHANNELS: tuple[ChannelSpec, ...] = (WEBCHAT, TELEGRAM, TWILIO, EMAIL)
