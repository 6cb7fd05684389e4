"""Shared fixtures: a real MongoDB-wire server for the session, and real gateways on real ports.

The database is SecantusDB started as its own process (the same code the gateway uses for its
embedded default), unless MONGODB_URI points the suite at a real MongoDB.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientWebSocketResponse
from aiohttp.test_utils import TestServer
from pymongo import AsyncMongoClient

from gateway.app import RUNTIME, Runtime, build_app
from gateway.embedded_db import EmbeddedDatabase
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
async def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    database = EmbeddedDatabase(tmp_path_factory.mktemp("secantus"))
    uri = await database.start()
    try:
        yield uri
    finally:
        await database.stop()


@pytest.fixture
def db_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def mongo(mongo_uri: str, db_name: str) -> AsyncIterator[AsyncMongoClient]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        yield client
    finally:
        await client.drop_database(db_name)
        await client.close()


def make_settings(mongo_uri: str, db_name: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mongodb_uri": mongo_uri,
        "mongodb_db": db_name,
        "gateway_data_dir": data_dir,
        "kb_dir": ROOT / "config" / "kb",
        "outbox_poll_seconds": 0.05,
        "outbox_backoff_base_seconds": 0.05,
        "outbox_backoff_max_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class RunningGateway:
    server: TestServer
    runtime: Runtime
    http: ClientSession

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/")).rstrip("/")

    async def new_session(self) -> dict[str, str]:
        async with self.http.post(f"{self.base_url}/webchat/sessions") as response:
            assert response.status == 201, await response.text()
            return await response.json()

    async def connect(self, token: str, after_seq: int = 0) -> ClientWebSocketResponse:
        return await self.http.ws_connect(f"{self.base_url}/webchat/ws?token={token}&after_seq={after_seq}")

    async def close(self) -> None:
        await self.http.close()
        await self.server.close()


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def gateway_factory(
    mongo_uri: str, db_name: str, mongo: AsyncMongoClient, tmp_path: Path
) -> AsyncIterator[GatewayFactory]:
    """Start gateways on one test database; several may run at once (several processes' worth)."""
    async with AsyncExitStack() as stack:

        async def start(
            extra_adapters: Sequence[Any] = (),
            responder: Any = None,
            command_listeners: Sequence[Any] = (),
            **overrides: Any,
        ) -> RunningGateway:
            core = {k: v for k, v in overrides.items() if k in Settings.model_fields}
            # The rest are channels' settings by env name (webchat_max_text=…), read by their plug-ins.
            channel_settings = {k: v for k, v in overrides.items() if k not in core}
            settings = make_settings(mongo_uri, db_name, tmp_path / "data", **core)
            app = build_app(
                settings,
                responder=responder,
                extra_adapters=extra_adapters,
                command_listeners=command_listeners,
                channel_settings=channel_settings,
            )
            # A gateway whose public URL a provider must call back (a webhook) is given its port up front.
            server = TestServer(app, host="127.0.0.1", port=core.get("gateway_port"))
            await server.start_server()
            running = RunningGateway(server, server.app[RUNTIME], ClientSession())
            stack.push_async_callback(running.close)
            return running

        yield start


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> RunningGateway:
    return await gateway_factory()


async def receive_until(
    ws: ClientWebSocketResponse, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Frames received up to and including the first that satisfies `predicate`."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.receive_json()
            frames.append(frame)
            if predicate(frame):
                return frames
