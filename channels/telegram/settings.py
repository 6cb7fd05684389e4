"""Telegram settings: the `TELEGRAM_` variables in the env file (config/example.env documents each)."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFICIAL_API = "https://api.telegram.org"
# Bot API setWebhook: "secret_token: 1-256 characters. Only characters A-Z, a-z, 0-9, _ and - are allowed."
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# BotFather's tokens look like 123456789:AAH...: the bot's id, a colon, then the secret part.
BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}")


class TelegramSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TELEGRAM_", extra="ignore", case_sensitive=False, env_file_encoding="utf-8"
    )

    bot_token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    # None: webhook when PUBLIC_BASE_URL is set (Telegram needs a public address), else long polling.
    mode: Literal["webhook", "polling"] | None = None
    api_url: AnyHttpUrl = AnyHttpUrl(OFFICIAL_API)
    # How long one getUpdates call waits for news (Bot API long polling `timeout`).
    poll_timeout_seconds: int = Field(30, ge=0, le=50)
    # Offer 1-5 buttons with the satisfaction question; typed answers count either way.
    csat_buttons: bool = True

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not BOT_TOKEN.fullmatch(value.get_secret_value().strip()):
            raise ValueError("is not a bot token like 123456789:AAH... (BotFather → /mybots → API Token)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not SECRET_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @property
    def token(self) -> str:
        assert self.bot_token is not None
        return self.bot_token.get_secret_value()

    @property
    def api_root(self) -> str:
        return str(self.api_url).rstrip("/")

    @property
    def official_api(self) -> bool:
        return self.api_root == OFFICIAL_API

    def secret_token(self) -> str:
        """TELEGRAM_WEBHOOK_SECRET, or one derived from the bot token (so one setting is enough)."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        return hmac.new(self.token.encode(), b"gateway-telegram-webhook-v1", hashlib.sha256).hexdigest()
