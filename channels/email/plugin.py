"""Email's entry in the channel registry: its settings and how its plug-in is built."""

from __future__ import annotations

from channels.email.settings import PREFIXES, EmailSettings
from gateway.channel import ChannelSpec
from gateway.settings import Settings, SettingsError

INBOUND_PATH = "/email/inbound"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def problems(settings: EmailSettings) -> list[str]:
    """What makes a set-up unable to work, one line per variable."""
    found = []
    others = [name for name in ("smtp_host", "imap_host", "email_inbound_secret") if getattr(settings, name)]
    if not settings.enabled:
        if others:
            found.append(f"EMAIL_FROM: must be set to use email ({', '.join(n.upper() for n in others)} is set)")
        return found
    if settings.smtp_host is None:
        found.append("SMTP_HOST: must be set: replies go out through an SMTP server (see docs/email.md)")
    if (settings.smtp_username is None) != (settings.smtp_password is None):
        found.append("SMTP_USERNAME and SMTP_PASSWORD: set both, or neither for a server that needs no login")
    if settings.smtp_tls == "none" and settings.smtp_password is not None and settings.smtp_host not in LOOPBACK:
        found.append("SMTP_TLS: 'none' would send SMTP_PASSWORD unencrypted; use starttls or tls")
    if not settings.imap_enabled and not settings.inbound_secret:
        found.append(
            "IMAP_HOST or EMAIL_INBOUND_SECRET: mail needs a way in: read a mailbox over IMAP, or have a "
            "provider forward it to POST /email/inbound (see docs/email.md)"
        )
    if settings.imap_enabled:
        if settings.imap_username is None or settings.imap_password is None:
            found.append("IMAP_USERNAME and IMAP_PASSWORD: must be set to read IMAP_HOST's mailbox")
        if settings.imap_tls == "none" and settings.imap_host not in LOOPBACK:
            found.append("IMAP_TLS: 'none' would send IMAP_PASSWORD unencrypted; use tls or starttls")
        if settings.imap_processed_folder and settings.imap_processed_folder == settings.imap_folder:
            found.append("IMAP_PROCESSED_FOLDER: must differ from IMAP_FOLDER (or be empty to flag mail as read)")
    return found


def describe(settings: EmailSettings, core: Settings) -> str | None:
    if found := problems(settings):
        raise SettingsError(found)
    if not settings.enabled:
        return None
    login = f" as {settings.smtp_username}" if settings.smtp_username else ""
    parts = [
        f"from {settings.email_from}",
        f"sends via {settings.smtp_host}:{settings.smtp_port_used} ({settings.smtp_tls}{login})",
    ]
    if settings.imap_enabled:
        done = f"moved to {settings.imap_processed_folder}" if settings.imap_processed_folder else "flagged read"
        server = f"{settings.imap_host}:{settings.imap_port_used}"
        parts.append(
            f"reads {settings.imap_folder} of {settings.imap_username} on {server} "
            f"({settings.imap_tls}; IDLE, else every {settings.imap_poll_seconds:g} s; processed mail {done})"
        )
    if settings.inbound_secret:
        parts.append(f"forwarded mail at {core.base_url}{INBOUND_PATH}")
    return "; ".join(parts)


def build(settings: EmailSettings, core: Settings):
    if not settings.enabled:
        return None
    from channels.email.channel import EmailChannel

    return EmailChannel(settings)


EMAIL = ChannelSpec(
    name="email",
    label="Email",
    settings=EmailSettings,
    describe=describe,
    build=build,
    not_configured="not connected (set EMAIL_FROM, SMTP_HOST and IMAP_HOST or EMAIL_INBOUND_SECRET; see docs/email.md)",
    prefixes=PREFIXES,
)
