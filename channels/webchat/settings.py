"""Web chat settings: the `WEBCHAT_` variables in the env file (config/example.env documents each)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.settings import long_secret


class WebchatSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WEBCHAT_", extra="ignore", case_sensitive=False, env_file_encoding="utf-8"
    )

    # On by default: the embedded demo is the ten-minute install. WEBCHAT_ENABLED=false turns it off.
    enabled: bool = True
    secret: SecretStr | None = None
    token_ttl_days: int = Field(30, ge=1, le=3650)
    allowed_origins: str = "*"
    max_text: int = Field(4000, ge=1, le=100_000)
    rate_max_messages: int = Field(20, ge=1, le=10_000_000)
    rate_window_seconds: float = Field(10.0, gt=0, le=3600)
    max_sockets_per_conversation: int = Field(10, ge=1, le=1000)
    sessions_per_ip_per_hour: int = Field(30, ge=1, le=10_000_000)
    empty_session_ttl_hours: float = Field(24.0, gt=0, le=8760)
    unattached_upload_ttl_hours: float = Field(24.0, gt=0, le=8760)
    demo_page: bool = True

    @field_validator("secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        return long_secret(value)

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip())
