"""Twilio's entry in the channel registry: its settings and how its plug-in is built."""

from __future__ import annotations

from channels.twilio.settings import TwilioSettings
from gateway.channel import ChannelSpec
from gateway.settings import Settings, SettingsError

MESSAGES_PATH = "/twilio/messages"
STATUS_PATH = "/twilio/status"


def public_base(settings: TwilioSettings, core: Settings) -> str:
    """Where Twilio reaches the gateway: it posts inbound messages and delivery statuses there."""
    if core.public_base_url is None:
        raise SettingsError(
            [
                "PUBLIC_BASE_URL: Twilio posts messages and delivery statuses to the gateway, so it needs "
                "the gateway's public address (see docs/twilio.md)"
            ]
        )
    return core.base_url


def describe(settings: TwilioSettings, core: Settings) -> str | None:
    if not settings.senders:
        return None
    base = public_base(settings, core)
    sms = "not connected (set TWILIO_SMS_FROM or TWILIO_MESSAGING_SERVICE_SID)"
    if settings.messaging_service_sid:
        sms = f"messaging service {settings.messaging_service_sid}"
    elif settings.sms_from:
        sms = f"from {settings.sms_from}"
    whatsapp = (
        f"from {settings.whatsapp_from}" if settings.whatsapp_from else "not connected (set TWILIO_WHATSAPP_FROM)"
    )
    if settings.whatsapp_from:
        whatsapp += ", template " + (settings.whatsapp_template_sid or "none: replies after 24 h of silence fail")
    webhook = str(settings.webhook_url) if settings.webhook_url else f"{base}{MESSAGES_PATH}"
    api = "" if settings.official_api else f"; API at {settings.api_root}"
    return f"SMS {sms}; WhatsApp {whatsapp}; messages to {webhook}, statuses to {base}{STATUS_PATH}{api}"


def build(settings: TwilioSettings, core: Settings):
    if not settings.senders:
        return None
    from channels.twilio.channel import TwilioChannel

    return TwilioChannel(settings, base_url=public_base(settings, core))


TWILIO = ChannelSpec(
    name="twilio",
    label="Twilio",
    settings=TwilioSettings,
    describe=describe,
    build=build,
    not_configured="not connected (set TWILIO_SMS_FROM or TWILIO_WHATSAPP_FROM; see docs/twilio.md)",
)
