"""Twilio settings: the `TWILIO_` variables in the env file (config/example.env documents each)."""

from __future__ import annotations

import re

from pydantic import AliasChoices, AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFICIAL_API = "https://api.twilio.com"
# Twilio's identifiers: two letters naming the kind, then 32 hex digits (AC… account, MG… messaging
# service, HX… content template).
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
# E.164: a plus and up to 15 digits. Alphanumeric sender ids (one-way SMS) cannot receive replies.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
DEFAULT_HELP = "Reply to this number to reach our support team. Reply STOP to stop messages, START to resume."


def _blank_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


class TwilioSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TWILIO_", extra="ignore", case_sensitive=False, env_file_encoding="utf-8", populate_by_name=True
    )

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    sms_from: str | None = None
    messaging_service_sid: str | None = None
    whatsapp_from: str | None = None
    whatsapp_template_sid: str | None = None
    api_url: AnyHttpUrl = AnyHttpUrl(OFFICIAL_API)
    # The URL Twilio is configured to post to, when it is not PUBLIC_BASE_URL + /twilio/messages
    # (a proxy that rewrites paths): the signature is computed over the URL Twilio used.
    webhook_url: AnyHttpUrl | None = None
    # Carriers join at most ~10 segments; six keeps a reply readable on a phone (issue 11: default 6).
    sms_max_segments: int = Field(
        6, ge=1, le=10, validation_alias=AliasChoices("sms_max_segments", "twilio_sms_max_segments")
    )
    sms_help_text: str = DEFAULT_HELP
    # MMS is a US/Canada feature: elsewhere files go as links.
    sms_media: bool = False

    @field_validator(
        "account_sid", "sms_from", "messaging_service_sid", "whatsapp_from", "whatsapp_template_sid", mode="before"
    )
    @classmethod
    def _strip(cls, value: object) -> object:
        value = _blank_to_none(value)
        return value.strip() if isinstance(value, str) else value

    @field_validator("auth_token", mode="before")
    @classmethod
    def _token(cls, value: object) -> object:
        return _blank_to_none(value)

    @field_validator("account_sid")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is not None and not ACCOUNT_SID.fullmatch(value):
            raise ValueError("is not an Account SID (AC followed by 32 hex digits; Twilio console → Account Info)")
        return value

    @field_validator("messaging_service_sid")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value is not None and not MESSAGING_SERVICE_SID.fullmatch(value):
            raise ValueError("is not a Messaging Service SID (MG followed by 32 hex digits)")
        return value

    @field_validator("whatsapp_template_sid")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and not CONTENT_SID.fullmatch(value):
            raise ValueError("is not a Content template SID (HX followed by 32 hex digits; Content Template Builder)")
        return value

    @field_validator("sms_from")
    @classmethod
    def _sms_from(cls, value: str | None) -> str | None:
        if value is not None and not E164.fullmatch(value):
            raise ValueError("must be a phone number in E.164 form, like +15551234567")
        return value

    @field_validator("whatsapp_from")
    @classmethod
    def _whatsapp_from(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("whatsapp:") or not E164.fullmatch(value.removeprefix("whatsapp:")):
            raise ValueError("must be whatsapp: and an E.164 number, like whatsapp:+15551234567")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> TwilioSettings:
        if self.senders and (self.account_sid is None or self.auth_token is None):
            missing = [n for n, v in (("ACCOUNT_SID", self.account_sid), ("AUTH_TOKEN", self.auth_token)) if v is None]
            raise ValueError(f"a sender is set, so TWILIO_{' and TWILIO_'.join(missing)} must be set too")
        return self

    @property
    def senders(self) -> bool:
        return bool(self.sms_enabled or self.whatsapp_enabled)

    @property
    def sms_enabled(self) -> bool:
        return self.sms_from is not None or self.messaging_service_sid is not None

    @property
    def whatsapp_enabled(self) -> bool:
        return self.whatsapp_from is not None

    @property
    def token(self) -> str:
        assert self.auth_token is not None
        return self.auth_token.get_secret_value()

    @property
    def api_root(self) -> str:
        return str(self.api_url).rstrip("/")

    @property
    def official_api(self) -> bool:
        return self.api_root == OFFICIAL_API
