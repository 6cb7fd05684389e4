"""The embedded database: SecantusDB started as its own process when MONGODB_URI is unset.

SecantusDB is GPL-2.0; running `secantusd-py` as a child process (never importing it) keeps the
gateway's own license free. It speaks the MongoDB wire protocol, so the rest of the code is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from gateway.data_dir import open_private_append, private_dir
from gateway.logs import log_event

log = logging.getLogger("gateway.embedded_db")

SERVER_COMMAND = "secantusd-py"


class EmbeddedDatabaseError(RuntimeError):
    pass


def find_server_command() -> str | None:
    # Prefer the one installed beside this interpreter (the project's virtualenv), then PATH.
    beside = Path(sys.executable).parent / SERVER_COMMAND
    if beside.is_file():
        return str(beside)
    return shutil.which(SERVER_COMMAND)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Linux PR_SET_PDEATHSIG: if the gateway is killed outright, the database does not linger.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _child_setup() -> None:
    """Runs in the database's process before it starts: owner-only files, and it goes when the gateway goes."""
    os.umask(0o077)  # the storage engine's data and journal files: 0600, like the rest of the data dir
    _die_with_parent()


class EmbeddedDatabase:
    def __init__(
        self, data_dir: Path, host: str = "127.0.0.1", port: int | None = None, *, sync_on_commit: bool = True
    ) -> None:
        self.storage = data_dir / "db"
        self.host = host
        self.port = port or _free_port(host)
        # SecantusDB acknowledges j:true writes before its log reaches the disk unless every commit is
        # synced (`--sync-on-commit`); without it a kill -9 of the database loses acknowledged messages.
        self.sync_on_commit = sync_on_commit
        self.log_path = data_dir / "secantusd.log"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    async def start(self, timeout: float = 60.0) -> str:
        command = find_server_command()
        if command is None:
            raise EmbeddedDatabaseError(
                "MONGODB_URI is unset and the embedded database is not installed: "
                "run `make run` (installs it), or `pip install 'support-gateway[embedded]'`, "
                "or set MONGODB_URI to a MongoDB server"
            )
        private_dir(self.storage.parent)
        private_dir(self.storage)
        log_file = os.fdopen(open_private_append(self.log_path), "ab")
        try:
            # A new session: Ctrl-C in the terminal reaches the gateway only, which then stops the
            # database itself after the last write, not in the middle of one.
            self._process = await asyncio.create_subprocess_exec(
                command,
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--storage-path",
                str(self.storage),
                "--log-level",
                "WARNING",
                *(["--sync-on-commit"] if self.sync_on_commit else []),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                preexec_fn=_child_setup,
            )
        finally:
            log_file.close()
        await self._wait_ready(timeout)
        log_event(log, "embedded_db_started", pid=self._process.pid, port=self.port, storage=str(self.storage))
        return self.uri

    async def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = asyncio.get_running_loop().time() + timeout
        client: AsyncMongoClient = AsyncMongoClient(self.uri, serverSelectionTimeoutMS=500)
        try:
            while True:
                if self._process.returncode is not None:
                    raise EmbeddedDatabaseError(
                        f"the embedded database exited with code {self._process.returncode}; "
                        f"see {self.log_path} (is another gateway using {self.storage}?)"
                    )
                try:
                    await client.admin.command("ping")
                    return
                except PyMongoError:
                    if asyncio.get_running_loop().time() > deadline:
                        await self.stop()
                        raise EmbeddedDatabaseError(
                            f"the embedded database did not answer within {timeout:.0f}s; see {self.log_path}"
                        ) from None
                    await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def stop(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            log_event(log, "embedded_db_kill", logging.WARNING, pid=process.pid)
            process.kill()
            await process.wait()
        log_event(log, "embedded_db_stopped", pid=process.pid, code=process.returncode)
