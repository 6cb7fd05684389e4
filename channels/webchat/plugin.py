"""The web chat's entry in the channel registry: its settings and how its plug-in is built."""

from __future__ import annotations

from pathlib import Path

from channels.webchat.channel import WebchatChannel
from channels.webchat.settings import WebchatSettings
from channels.webchat.tokens import TokenSigner
from gateway.channel import ChannelSpec
from gateway.data_dir import SECRET_FILE as GATEWAY_SECRET_FILE
from gateway.data_dir import configured_or_generated, create_once
from gateway.settings import Settings

SECRET_FILE = "webchat-secret"


def token_secret(settings: WebchatSettings, core: Settings) -> bytes:
    """WEBCHAT_SECRET, or one generated once and kept in the data dir so sessions survive restarts."""
    return configured_or_generated(settings.secret, Path(core.gateway_data_dir) / SECRET_FILE)


def adopt_legacy_key(core: Settings) -> None:
    """Before channels were plug-ins, the web chat's generated key also signed the file store's links.
    A data dir that has one hands it on as the gateway's key, so links already posted keep working."""
    data = Path(core.gateway_data_dir)
    if core.gateway_secret is None and (data / SECRET_FILE).is_file():
        create_once(data / GATEWAY_SECRET_FILE, (data / SECRET_FILE).read_text())


def build(settings: WebchatSettings, core: Settings) -> WebchatChannel | None:
    adopt_legacy_key(core)
    if not settings.enabled:
        return None
    signer = TokenSigner(token_secret(settings, core), settings.token_ttl_days * 86_400)
    return WebchatChannel.from_settings(signer, settings, core)


def describe(settings: WebchatSettings, core: Settings) -> str | None:
    if not settings.enabled:
        return None
    key = "WEBCHAT_SECRET" if settings.secret else f"generated, kept in {Path(core.gateway_data_dir) / SECRET_FILE}"
    return f"{core.base_url}/ (widget {core.base_url}/webchat/widget.js; session key: {key})"


WEBCHAT = ChannelSpec(
    name="webchat",
    label="Web chat",
    settings=WebchatSettings,
    describe=describe,
    build=build,
    not_configured="off (WEBCHAT_ENABLED=false)",
)
