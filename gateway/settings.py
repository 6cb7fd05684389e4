"""Gateway settings, read from the environment and an env file (GATEWAY_ENV_FILE, default `.env`).

Every setting is documented in `config/example.env`. Invalid values are reported one clear line each,
by `gateway check-config` and at start, so a manager editing an env file sees exactly what to fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ENV_FILE = ".env"
_SLACK_WHERE = {
    "slack_bot_token": "OAuth & Permissions → Bot User OAuth Token",
    "slack_app_token": "Basic Information → App-Level Tokens, with connections:write",
    "slack_signing_secret": "Basic Information → Signing Secret",
}


class SettingsError(Exception):
    """Raised with one human-readable line per wrong value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_file_encoding="utf-8")
    _source_env_file: Path | None = PrivateAttr(default=None)

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(8080, ge=1, le=65535)
    public_base_url: AnyHttpUrl | None = None
    gateway_data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    mongodb_uri: SecretStr | None = None
    mongodb_db: str = "gateway"

    kb_dir: Path = Path("config/kb")
    routing_file: Path = Path("config/routing.yaml")
    ai_timeout_seconds: float = Field(20.0, gt=0, le=300)

    openai_api_key: SecretStr | None = None
    openai_base_url: AnyHttpUrl | None = None
    openai_model: str = "gpt-4o-mini"

    # Signs the file store's links; channels derive their own keys from it where they have none.
    gateway_secret: SecretStr | None = None
    trusted_proxies: str = ""

    outbox_lease_seconds: float = Field(30.0, gt=0, le=3600)
    outbox_backoff_base_seconds: float = Field(1.0, gt=0, le=3600)
    outbox_backoff_max_seconds: float = Field(300.0, gt=0, le=86_400)
    outbox_give_up_seconds: float = Field(86_400.0, gt=0)
    outbox_poll_seconds: float = Field(1.0, gt=0, le=60)

    recovery_sweep_seconds: float = Field(5.0, gt=0, le=3600)
    recovery_lease_seconds: float = Field(15.0, ge=1, le=3600)
    recovery_max_age_hours: float = Field(24.0, gt=0, le=8760)
    embedded_db_sync_on_commit: bool = True

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: AnyHttpUrl = AnyHttpUrl("https://slack.com/api/")
    slack_default_channel: str = ""
    slack_note_prefix: str = Field("note:", min_length=1, max_length=40)
    slack_mirror_max_posts: int = Field(10, ge=1, le=100)
    agent_name_style: Literal["display_name", "real_name", "first_name", "none"] = "display_name"
    sla_check_seconds: float = Field(30.0, gt=0, le=3600)

    files_max_mb: float = Field(10.0, gt=0, le=1000)
    files_allowed_types: str = (
        "image/jpeg,image/png,image/gif,image/webp,application/pdf,text/plain,audio/ogg,audio/mpeg,audio/mp4,video/mp4"
    )

    @field_validator("mongodb_uri")
    @classmethod
    def _mongodb_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("mongodb_db")
    @classmethod
    def _database_name(cls, value: str) -> str:
        # MongoDB forbids these characters in database names: /\. "$ and NUL.
        if not value or len(value) > 63 or re.search(r'[/\\. "$\x00]', value):
            raise ValueError('must be 1-63 characters without / \\ . space " or $')
        return value

    @field_validator("gateway_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        return long_secret(value)

    @field_validator("slack_bot_token", "slack_signing_secret", "slack_app_token")
    @classmethod
    def _slack_credential(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        # Slack's token prefixes ("Token types"): bot tokens xoxb-, app-level tokens xapp-.
        prefix = {"slack_bot_token": "xoxb-", "slack_app_token": "xapp-"}.get(info.field_name or "")
        if prefix and not value.get_secret_value().startswith(prefix):
            raise ValueError(f"must start with {prefix} (Slack app settings → {_SLACK_WHERE[info.field_name or '']})")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        for item in (t.strip() for t in value.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR range like 10.0.0.0/8") from None
        return value

    @field_validator("files_allowed_types")
    @classmethod
    def _media_types(cls, value: str) -> str:
        for item in (t.strip() for t in value.split(",")):
            if item and not re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+*-]+", item):
                raise ValueError(f"{item!r} is not a media type like image/png")
        return value

    @model_validator(mode="after")
    def _slack_complete(self) -> Settings:
        if self.slack_bot_token is None:
            return self
        if self.slack_signing_secret is None and self.slack_app_token is None:
            raise ValueError(
                "SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET (events over HTTP) nor "
                "SLACK_APP_TOKEN (Socket Mode) is: Slack's events could not reach the gateway"
            )
        return self

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def files_max_bytes(self) -> int:
        return int(self.files_max_mb * 1024 * 1024)

    @property
    def allowed_file_types(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.files_allowed_types.split(",") if t.strip())

    @property
    def embedded_database(self) -> bool:
        return self.mongodb_uri is None

    @property
    def base_url(self) -> str:
        if self.public_base_url is not None:
            return str(self.public_base_url).rstrip("/")
        host = "127.0.0.1" if self.gateway_host in ("0.0.0.0", "::") else self.gateway_host
        return f"http://{host}:{self.gateway_port}"

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        items = (t.strip() for t in self.trusted_proxies.split(","))
        return tuple(ipaddress.ip_network(t, strict=False) for t in items if t)

    @property
    def source_env_file(self) -> Path | None:
        """The env file these settings were read from; channels read their own settings from it too."""
        return self._source_env_file


def long_secret(value: SecretStr | None) -> SecretStr | None:
    """A signing secret: unset when empty, else at least 32 characters."""
    if value is None or not value.get_secret_value():
        return None
    if len(value.get_secret_value()) < 32:
        raise ValueError(
            "must be at least 32 characters; make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return value


def env_file_path(environ: os._Environ[str] | dict[str, str] = os.environ) -> tuple[Path, bool]:
    """The env file to read and whether it was named explicitly (an explicit missing file is an error)."""
    named = environ.get("GATEWAY_ENV_FILE")
    return Path(named or DEFAULT_ENV_FILE), bool(named)


def load_settings(**overrides: object) -> Settings:
    """Environment variables win over the env file, which wins over defaults."""
    path, explicit = env_file_path()
    if explicit and not path.is_file():
        raise SettingsError([f"GATEWAY_ENV_FILE: {path} does not exist"])
    env_file = path if path.is_file() else None
    try:
        settings = Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
    settings._source_env_file = env_file
    return settings


# scheme://userinfo@ : the userinfo runs to the last "@" before the path, so a password with an
# unescaped "@" in it (mongodb://app:p@ss@db) is hidden whole, not cut at its first "@".
_URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/?#]*@")


def redact_url_credentials(text: str) -> str:
    """`text` with the user:password of every URL in it replaced by `***`, for terminals and logs."""
    return _URL_USERINFO.sub(r"\1***@", text)


def describe_errors(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per wrong value, named as the env variable (`prefix`: a channel's own, as its settings declare)."""
    problems = []
    for error in exc.errors():
        field = "_".join(str(part) for part in error["loc"])
        name = (prefix + field).upper() if field else f"{prefix.upper().rstrip('_') or 'gateway'} settings"
        message = error["msg"].removeprefix("Value error, ")
        shown = error.get("input")
        # Never echo secrets back into a terminal or log.
        if any(word in name for word in ("SECRET", "KEY", "TOKEN", "URI", "PASSWORD")):
            shown = None
        problems.append(
            redact_url_credentials(f"{name}: {message}" + (f" (got {shown!r})" if isinstance(shown, str | int) else ""))
        )
    return problems
