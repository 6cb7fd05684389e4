"""The gateway's aiohttp application: wiring of database, responder, outbox, channels and health.

Start-up order (aiohttp cleanup contexts, torn down in reverse): database → indexes → responder and
knowledge base → outbox worker → channels. Ctrl-C drains AI turns, stops the worker, then the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from pymongo import AsyncMongoClient, monitoring

from agent_bridge.ai.escalation import Triage
from agent_bridge.ai.knowledge_base import KnowledgeBase
from agent_bridge.ai.offline import OfflineResponder
from agent_bridge.ai.responder import Responder
from agent_bridge.ai.rules import load_rules
from agent_bridge.slack.bridge import SlackBridge
from agent_bridge.slack.desk_adapter import DESK
from gateway.channel import ChannelAdapter, ChannelContext, ChannelPlugin, ChannelSpec
from gateway.chat_events import ChatEvents
from gateway.desk import DeskJobs
from gateway.embedded_db import EmbeddedDatabase
from gateway.events import EventBus
from gateway.files import FilePolicy, FileStore
from gateway.handoffs import Handoffs
from gateway.ingest import Ingest
from gateway.logs import log_event
from gateway.outbox import OutboxWorker, RetryPolicy
from gateway.recovery import TurnRecovery
from gateway.settings import Settings, redact_url_credentials
from gateway.store import ConversationStore, utcnow

log = logging.getLogger("gateway.app")


@dataclass
class Runtime:
    """Everything the running gateway holds; tests and benchmarks reach in through `app[RUNTIME]`."""

    settings: Settings
    bus: EventBus = field(default_factory=EventBus)
    embedded: EmbeddedDatabase | None = None
    client: AsyncMongoClient | None = None
    store: ConversationStore | None = None
    responder: Responder | None = None
    outbox: OutboxWorker | None = None
    ingest: Ingest | None = None
    # The channel plug-ins that are configured, by name (channels/registry.py lists them all).
    channels: dict[str, ChannelPlugin] = field(default_factory=dict)
    handoffs: Handoffs | None = None
    chats: ChatEvents | None = None
    slack: SlackBridge | None = None
    files: FileStore | None = None
    recovery: TurnRecovery | None = None
    adapters: dict[str, ChannelAdapter] = field(default_factory=dict)


RUNTIME = web.AppKey("runtime", Runtime)


def gateway_secret(settings: Settings) -> bytes:
    """GATEWAY_SECRET, or one generated once and kept in the data dir so file links survive restarts."""
    from gateway.data_dir import SECRET_FILE, configured_or_generated

    return configured_or_generated(settings.gateway_secret, Path(settings.gateway_data_dir) / SECRET_FILE)


def load_channels(
    settings: Settings, specs: Sequence[ChannelSpec] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, ChannelPlugin]:
    """The configured channel plug-ins (raises SettingsError for a channel set up wrongly)."""
    if specs is None:
        # The one place the core names the channel registry; no channel is named here.
        from channels.registry import CHANNELS

        specs = CHANNELS
    prefixes = tuple(prefix for spec in specs for prefix in spec.env_prefixes)
    if unknown := [k for k in overrides or {} if not k.lower().startswith(prefixes)]:
        raise ValueError(f"settings no channel reads: {unknown}")  # a typo would otherwise pass silently
    plugins = {}
    for spec in specs:
        plugin = spec.load(settings, overrides)
        if plugin is not None:
            plugins[spec.name] = plugin
    return plugins


def build_responder(settings: Settings) -> Responder:
    """The offline responder, or a model behind OPENAI_* settings with the offline one as its fallback."""
    knowledge_base = KnowledgeBase.load(settings.kb_dir)
    offline = OfflineResponder(knowledge_base)
    if settings.openai_api_key is None and settings.openai_base_url is None:
        return offline
    from agent_bridge.ai.model import build_model_responder

    return build_model_responder(
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        base_url=str(settings.openai_base_url) if settings.openai_base_url else None,
        model=settings.openai_model,
        knowledge_base=knowledge_base,
        fallback=offline,
        timeout_s=settings.ai_timeout_seconds,
    )


def build_app(
    settings: Settings,
    *,
    responder: Responder | None = None,
    extra_adapters: Sequence[ChannelAdapter] = (),
    command_listeners: Sequence[monitoring.CommandListener] = (),
    channels: Sequence[ChannelSpec] | None = None,
    channel_settings: Mapping[str, Any] | None = None,
) -> web.Application:
    """The gateway. `channels` defaults to the registry; `channel_settings` overrides channels' settings
    by env name (`<channel>_<setting>=…`), as tests do."""
    runtime = Runtime(settings=settings, responder=responder)
    app = web.Application(client_max_size=1024 * 1024)
    app.on_response_prepare.append(hide_server_version)
    app[RUNTIME] = runtime

    async def database(app: web.Application) -> AsyncIterator[None]:
        uri = settings.mongodb_uri.get_secret_value() if settings.mongodb_uri else None
        if uri is None:
            runtime.embedded = EmbeddedDatabase(
                Path(settings.gateway_data_dir), sync_on_commit=settings.embedded_db_sync_on_commit
            )
            uri = await runtime.embedded.start()
        runtime.client = AsyncMongoClient(
            uri, tz_aware=True, event_listeners=list(command_listeners), serverSelectionTimeoutMS=10_000
        )
        runtime.store = ConversationStore(runtime.client, settings.mongodb_db)
        files.attach(runtime.store.db)
        try:
            await runtime.store.ensure_indexes()
            yield
        finally:
            await runtime.client.close()
            if runtime.embedded is not None:
                await runtime.embedded.stop()

    async def services(app: web.Application) -> AsyncIterator[None]:
        assert runtime.store is not None
        triage = Triage.load(load_rules(settings.routing_file))
        if runtime.responder is None:
            runtime.responder = build_responder(settings)
        runtime.outbox = OutboxWorker(
            runtime.store,
            runtime.adapters,
            policy=RetryPolicy(
                base_seconds=settings.outbox_backoff_base_seconds,
                max_seconds=settings.outbox_backoff_max_seconds,
                give_up_seconds=settings.outbox_give_up_seconds,
            ),
            lease_seconds=settings.outbox_lease_seconds,
            poll_seconds=settings.outbox_poll_seconds,
        )
        desk = DeskJobs(runtime.outbox, DESK if slack is not None else None)
        runtime.ingest = Ingest(
            runtime.store,
            runtime.responder,
            triage,
            runtime.outbox,
            runtime.bus,
            history_limit=getattr(runtime.responder, "history_turns", 0),
            responder_timeout=settings.ai_timeout_seconds + 5,
            desk=desk,
            turn_lease_seconds=settings.recovery_lease_seconds,
            turn_max_age_seconds=settings.recovery_max_age_hours * 3600,
        )
        runtime.handoffs = Handoffs(
            runtime.store, runtime.outbox, triage.rules, runtime.bus, runtime.ingest, desk, runtime.adapters
        )
        runtime.ingest.handoffs = runtime.handoffs
        runtime.chats = ChatEvents(runtime.store, runtime.outbox, desk, triage.rules, runtime.bus)
        runtime.handoffs.chats = runtime.chats
        runtime.outbox.on_sent = runtime.handoffs.on_sent
        runtime.outbox.on_failed = runtime.handoffs.on_failed
        if slack is not None:
            runtime.adapters[DESK] = slack.attach(
                store=runtime.store,
                handoffs=runtime.handoffs,
                outbox=runtime.outbox,
                rules=triage.rules,
                files=files,
                channel_label=channel_label,
            )
        else:
            log_event(
                log, "slack_not_configured", logging.WARNING, hint="handoffs wait in the database; see docs/slack.md"
            )
        for adapter in extra_adapters:
            runtime.adapters[adapter.name] = adapter
        runtime.outbox.start()
        runtime.handoffs.start(settings.sla_check_seconds)
        if slack is not None:
            await slack.start()
        context = ChannelContext(runtime.ingest, runtime.chats, runtime.store, files, runtime.bus, settings)
        started: list[ChannelPlugin] = []
        try:
            for plugin in runtime.channels.values():
                await plugin.start(context)
                started.append(plugin)
        except BaseException:
            for plugin in reversed(started):
                await plugin.stop()
            raise
        # Customer messages whose AI turn a killed process (or a failure) left unfinished are answered
        # by whichever process's sweep takes them first, now and for as long as this one runs.
        runtime.recovery = TurnRecovery(runtime.ingest, settings.recovery_sweep_seconds)
        runtime.recovery.start()
        log_event(
            log,
            "gateway_ready",
            url=redact_url_credentials(settings.base_url),
            responder=runtime.responder.name,
            database="embedded" if runtime.embedded else "external",
            worker=runtime.outbox.worker_id,
            channels=sorted(a for a in runtime.adapters if a != DESK),
        )
        try:
            yield
        finally:
            await runtime.recovery.stop()
            await runtime.handoffs.stop()
            for plugin in reversed(started):
                await plugin.stop()
            await runtime.ingest.drain()
            await runtime.outbox.stop()
            if slack is not None:
                await slack.stop()
            close = getattr(runtime.responder, "close", None)
            if close is not None:
                await close()  # the model client's connection pool

    def channel_label(channel: str) -> str:
        adapter = runtime.adapters.get(channel)
        return getattr(adapter, "label", "") or channel

    # Routes must exist before the app starts; channels get ingest and the store at start-up.
    runtime.channels = load_channels(settings, channels, channel_settings)
    for plugin in runtime.channels.values():
        plugin.add_routes(app)
        for adapter in plugin.adapters:
            runtime.adapters[adapter.name] = adapter
    # FileStore derives its own signing key from this secret (a labelled HMAC).
    files = FileStore(None, gateway_secret(settings), settings.base_url, FilePolicy.from_settings(settings))
    runtime.files = files
    files.add_routes(app)
    slack = SlackBridge(settings) if settings.slack_enabled else None
    runtime.slack = slack
    if slack is not None:
        slack.add_routes(app)
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(services)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def hide_server_version(request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp sends "Server: Python/3.11 aiohttp/3.x" by default: versions help only an attacker.
    response.headers["Server"] = "support-gateway"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    checks: dict[str, str] = {}
    try:
        assert runtime.store is not None
        await asyncio.wait_for(runtime.store.ping(), 2.0)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    outbox = runtime.outbox
    stale = (
        outbox is None
        or outbox.last_beat is None
        or (utcnow() - outbox.last_beat > timedelta(seconds=max(10.0, outbox.poll_seconds * 5)))
    )
    checks["outbox_worker"] = "ok" if outbox is not None and outbox.alive and not stale else "not running"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503
    )
