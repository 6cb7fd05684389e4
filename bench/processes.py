"""Child servers of the bench, and CPU time of other processes read from /proc (Linux).

Every child is started in its own session (Ctrl-C reaches only the load generator, which then stops
the children in order) and asks the kernel to SIGTERM it should the load generator die outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from bench.harness import STATS_PATH

ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process from /proc/<pid>/stat; None if it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # After "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int] | None:
    """(steal, total) CPU ticks of the whole machine from /proc/stat: how much the hypervisor took."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user and nice]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def child_pid_running(fragment: str) -> int | None:
    """The pid of a direct child of this process whose command line contains `fragment`."""
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            children += [int(p) for p in (task / "children").read_text().split()]
    for pid in children:
        with contextlib.suppress(OSError):
            if fragment in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                return pid
    return None


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ChildServer:
    """`python -m <module> --port <free port> <args>` as a child; an async context manager."""

    def __init__(self, name: str, module: str, args: list[str], log_path: Path) -> None:
        self.name = name
        self.module = module
        self.args = args
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ChildServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *self.args,
                cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while loop.time() < deadline:
                if self.process.returncode is not None:
                    raise BenchError(
                        f"{self.name} server exited with code {self.process.returncode}:\n" + log_tail(self.log_path)
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(self.base_url + STATS_PATH) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise BenchError(f"{self.name} server not ready within {timeout:.0f}s:\n" + log_tail(self.log_path))

    async def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)  # aiohttp's run_app shuts down gracefully on SIGTERM
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def get(self, http: aiohttp.ClientSession, path: str) -> dict[str, Any]:
        async with http.get(self.base_url + path) as response:
            response.raise_for_status()
            return await response.json()

    async def post(self, http: aiohttp.ClientSession, path: str) -> dict[str, Any]:
        async with http.post(self.base_url + path) as response:
            response.raise_for_status()
            return await response.json()
