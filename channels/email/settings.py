"""Email settings: the `EMAIL_`, `SMTP_` and `IMAP_` variables in the env file (config/example.env
documents each). One settings class reads all three prefixes by their full names, so the env file reads
the way mail people name things (SMTP_HOST, IMAP_FOLDER) rather than EMAIL_SMTP_HOST."""

from __future__ import annotations

import ssl
from email.headerregistry import Address
from email.utils import getaddresses
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIXES = ("email_", "smtp_", "imap_")
# Ports by TLS mode, as mail providers document them (RFC 8314: implicit TLS on 465 and 993).
SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}
IMAP_PORTS = {"tls": 993, "starttls": 143, "none": 143}


def _blank_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def parse_address(value: str) -> Address:
    """ "Support Team <support@example.com>" or a bare address, as an Address (ValueError if it is not one)."""
    found = [(name, addr) for name, addr in getaddresses([value]) if addr]
    if len(found) != 1 or "@" not in found[0][1]:
        raise ValueError("must be one address, like Support <support@example.com>")
    name, addr = found[0]
    username, _, domain = addr.rpartition("@")
    if not username or not domain or any(c.isspace() for c in addr):
        raise ValueError("must be one address, like Support <support@example.com>")
    return Address(display_name=name.strip(), username=username, domain=domain.lower())


class EmailSettings(BaseSettings):
    # No env_prefix: fields carry their prefixes (ChannelSpec.prefixes names them for the registry).
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_file_encoding="utf-8")

    email_from: str | None = None
    email_reply_to: str | None = None
    email_inbound_secret: SecretStr | None = None
    # The largest mail taken in, whole (webhook body or IMAP message); attachments still meet FILES_MAX_MB.
    email_max_mb: float = Field(40.0, gt=0, le=500)
    # A private CA's certificate (PEM) to trust for SMTP and IMAP, besides the system's.
    email_tls_ca_file: Path | None = None
    # A mail without In-Reply-To/References joins the sender's conversation with the same subject
    # within this many days; after that it starts a new one.
    email_thread_days: int = Field(14, ge=0, le=365)

    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout_seconds: float = Field(30.0, gt=0, le=600)

    imap_host: str | None = None
    imap_port: int | None = Field(None, ge=1, le=65535)
    imap_username: str | None = None
    imap_password: SecretStr | None = None
    imap_folder: str = "INBOX"
    imap_tls: Literal["tls", "starttls", "none"] = "tls"
    # Where processed mail is moved; empty: it stays in IMAP_FOLDER, flagged \Seen.
    imap_processed_folder: str | None = None
    # How often the folder is checked when the server does not offer IDLE.
    imap_poll_seconds: float = Field(60.0, ge=1, le=3600)

    @field_validator(
        "email_from", "email_reply_to", "smtp_host", "smtp_username", "imap_host", "imap_username",
        "imap_processed_folder", mode="before",
    )  # fmt: skip
    @classmethod
    def _strip(cls, value: object) -> object:
        value = _blank_to_none(value)
        return value.strip() if isinstance(value, str) else value

    @field_validator("email_inbound_secret", "smtp_password", "imap_password", "email_tls_ca_file", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_to_none(value)

    @field_validator("email_from", "email_reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)
        return value

    @field_validator("imap_folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c in value for c in '\r\n"'):
            raise ValueError("must be a folder name, like INBOX or Support")
        return value

    @field_validator("email_tls_ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("is not a file (a PEM certificate of the CA to trust)")
        return value

    # derived

    @property
    def enabled(self) -> bool:
        return self.email_from is not None

    @property
    def sender(self) -> Address:
        assert self.email_from is not None
        return parse_address(self.email_from)

    @property
    def address(self) -> str:
        """Our own address, lower-cased: mail from it is our own, never answered."""
        return self.sender.addr_spec.lower()

    @property
    def domain(self) -> str:
        return self.sender.domain

    @property
    def reply_to(self) -> str:
        return str(parse_address(self.email_reply_to)) if self.email_reply_to else ""

    @property
    def smtp_port_used(self) -> int:
        return self.smtp_port or SMTP_PORTS[self.smtp_tls]

    @property
    def imap_port_used(self) -> int:
        return self.imap_port or IMAP_PORTS[self.imap_tls]

    @property
    def imap_enabled(self) -> bool:
        return self.imap_host is not None

    @property
    def max_bytes(self) -> int:
        return int(self.email_max_mb * 1024 * 1024)

    @property
    def inbound_secret(self) -> str:
        return self.email_inbound_secret.get_secret_value() if self.email_inbound_secret else ""

    def tls_context(self) -> ssl.SSLContext:
        """Certificates are always verified; EMAIL_TLS_CA_FILE adds a private CA to the system's."""
        context = ssl.create_default_context()
        if self.email_tls_ca_file is not None:
            context.load_verify_locations(cafile=str(self.email_tls_ca_file))
        return context
