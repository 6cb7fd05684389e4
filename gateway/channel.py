"""The channel contract. Channel packages live in `channels/` and are listed in `channels/registry.py`;
the core only sees these shapes.

A channel package exposes one `ChannelSpec`: how to read its settings (its own env prefix) and build its
plug-in, or `None` when it is not configured. The plug-in adds its HTTP routes, starts and stops its
own loops (long polling, webhook registration, IMAP), and registers one or more adapters, each the
outbound side of one customer channel (Twilio registers `sms` and `whatsapp`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from gateway.models import ConversationRef, OutboundMessage, SendResult
from gateway.settings import Settings, SettingsError, describe_errors

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.chat_events import ChatEvents
    from gateway.events import EventBus
    from gateway.files import FileStore
    from gateway.ingest import Ingest
    from gateway.store import ConversationStore


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel can show. The core shapes every outbound message to fit before `send`
    (gateway/shaping.py): long text is split, files become links, edits become corrections."""

    max_text: int
    attachments: bool = False
    edits: bool = False
    typing: bool = False
    # How the provider counts `max_text`: Telegram counts UTF-16 code units, most others characters.
    text_units: str = "chars"


class ChannelAdapter(Protocol):
    """The outbound side of one channel. `send` returns the provider's message id or raises
    `DeliveryError`; the outbox owns retries. Inbound parsing lives in the plug-in's routes."""

    name: str
    label: str  # what people read: "Web chat", "Telegram", "SMS"
    capabilities: Capabilities

    async def send(self, ref: ConversationRef, message: OutboundMessage) -> SendResult: ...


@dataclass(frozen=True)
class ChannelContext:
    """What a channel gets from the core at start: ingest for inbound messages, chats for what else
    a channel reports (gateway/chat_events.py), the store (web chat reads its history and opens
    sessions there; channels keep their own small state), the file store, the event bus, and the
    core settings."""

    ingest: Ingest
    chats: ChatEvents
    store: ConversationStore
    files: FileStore
    events: EventBus
    settings: Settings


class ChannelPlugin(Protocol):
    name: str
    adapters: Sequence[ChannelAdapter]

    def add_routes(self, app: web.Application) -> None: ...

    async def start(self, context: ChannelContext) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ChannelSpec:
    """A channel package's entry in the registry.

    `settings` is a pydantic-settings class with the channel's own env prefix. `describe` says, in
    one line for `gateway check-config`, how the channel is reached, or None when it is not
    configured (`not_configured` is printed then); it raises `SettingsError` for a set-up that
    cannot work, and has no side effects. `build` makes the plug-in (or None when not configured).
    """

    name: str
    label: str
    settings: type[BaseSettings]
    describe: Callable[[Any, Settings], str | None]
    build: Callable[[Any, Settings], ChannelPlugin | None]
    not_configured: str
    # The env prefixes the channel's settings use, when not its settings class's one `env_prefix`
    # (email's read EMAIL_, SMTP_ and IMAP_ variables, by their full names).
    prefixes: tuple[str, ...] = ()

    @property
    def env_prefixes(self) -> tuple[str, ...]:
        own = str(self.settings.model_config.get("env_prefix", "")).lower()
        return tuple(p.lower() for p in self.prefixes) or (own,)

    def read(self, core: Settings | None, overrides: Mapping[str, Any] | None = None, env_file: Any = None) -> Any:
        """This channel's settings: environment, then the env file, then defaults. The env file is the
        core's, or `env_file` when the core settings themselves are wrong (check-config lists all).

        `overrides` holds values by their full lower-case env name (`webchat_max_text`), as tests pass them.
        """
        prefix = str(self.settings.model_config.get("env_prefix", "")).lower()
        values = {
            k.lower().removeprefix(prefix): v
            for k, v in (overrides or {}).items()
            if k.lower().startswith(self.env_prefixes)
        }
        source = core.source_env_file if core is not None else env_file
        try:
            return self.settings(_env_file=source, **values)  # type: ignore[call-arg]
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc, prefix=prefix)) from None

    def report(self, core: Settings) -> str:
        """The check-config line (raises SettingsError with every problem)."""
        return f"{self.label}: {self.describe(self.read(core), core) or self.not_configured}"

    def load(self, core: Settings, overrides: Mapping[str, Any] | None = None) -> ChannelPlugin | None:
        section = self.read(core, overrides)
        self.describe(section, core)  # the same checks check-config makes
        return self.build(section, core)
