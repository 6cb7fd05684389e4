"""Telegram's entry in the channel registry: its settings and how its plug-in is built."""

from __future__ import annotations

from channels.telegram.settings import TelegramSettings
from gateway.channel import ChannelSpec
from gateway.settings import Settings, SettingsError

WEBHOOK_PATH = "/telegram/webhook"
# Bot API setWebhook: "Ports currently supported for webhooks: 443, 80, 88, 8443", HTTPS only
# (a self-hosted Bot API server lifts both rules).
WEBHOOK_PORTS = (443, 80, 88, 8443)


def mode(settings: TelegramSettings, core: Settings) -> str:
    return settings.mode or ("webhook" if core.public_base_url is not None else "polling")


def describe(settings: TelegramSettings, core: Settings) -> str | None:
    if settings.bot_token is None:
        return None
    api = "" if settings.official_api else f", Bot API at {settings.api_root}"
    if mode(settings, core) == "polling":
        return f"long polling{api}"
    if core.public_base_url is None:
        raise SettingsError(
            ["TELEGRAM_MODE: webhook needs PUBLIC_BASE_URL (the https address Telegram posts to); or use polling"]
        )
    url = core.public_base_url
    if settings.official_api and (url.scheme != "https" or (url.port or 443) not in WEBHOOK_PORTS):
        raise SettingsError(
            [
                f"PUBLIC_BASE_URL: Telegram delivers webhooks only to https on ports {WEBHOOK_PORTS} "
                f"(got {url.scheme}://…:{url.port}); set TELEGRAM_MODE=polling otherwise"
            ]
        )
    secret = "TELEGRAM_WEBHOOK_SECRET" if settings.webhook_secret else "secret derived from the bot token"
    return f"webhook at {core.base_url}{WEBHOOK_PATH} ({secret}){api}"


def build(settings: TelegramSettings, core: Settings):
    if settings.bot_token is None:
        return None
    from channels.telegram.channel import TelegramChannel

    return TelegramChannel(settings, mode=mode(settings, core), base_url=core.base_url)


TELEGRAM = ChannelSpec(
    name="telegram",
    label="Telegram",
    settings=TelegramSettings,
    describe=describe,
    build=build,
    not_configured="not connected (set TELEGRAM_BOT_TOKEN; see docs/telegram.md)",
)
