"""What the bench's child servers share: command counting, the stats route, an optional profiler.

The load generator (bench.webchat_roundtrip) reads `GET /__bench/stats` before and after its measured
window and diffs the two; the routes exist only in the bench's own apps, never in the product's.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from aiohttp import web
from pymongo import monitoring

STATS_PATH = "/__bench/stats"
PROFILE_START_PATH = "/__bench/profile/start"
PROFILE_STOP_PATH = "/__bench/profile/stop"


class CommandCounter(monitoring.CommandListener):
    """Counts every command the driver starts, as "<command> <collection>" (or just the command name).

    Every command started is one round trip to the server; `failed` counts those that came back
    with an error, so a run with failures can be told apart from a clean one. `micros_by_key` sums
    the driver's measured duration of each command (send to reply, so it includes queueing in the
    server under load).
    """

    def __init__(self) -> None:
        self.started_by_key: Counter[str] = Counter()
        self.failed_by_key: Counter[str] = Counter()
        self.micros_by_key: Counter[str] = Counter()
        self._keys: dict[int, str] = {}

    @staticmethod
    def key(command_name: str, command: object) -> str:
        target = command.get(command_name) if isinstance(command, dict) else None
        return f"{command_name} {target}" if isinstance(target, str) else command_name

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        key = self.key(event.command_name, event.command)
        self.started_by_key[key] += 1
        self._keys[event.request_id] = key

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        key = self._keys.pop(event.request_id, event.command_name)
        self.micros_by_key[key] += event.duration_micros

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        key = self._keys.pop(event.request_id, event.command_name)
        self.failed_by_key[key] += 1
        self.micros_by_key[key] += event.duration_micros


def add_bench_routes(app: web.Application, counter: CommandCounter, profile_path: Path | None) -> None:
    """`GET /__bench/stats`; with a profile path also `POST /__bench/profile/{start,stop}`.

    The profiler runs only between start and stop, so start-up and warm-up stay out of the profile;
    stop writes the pstats file. Its clock is the process's CPU time, not the wall clock: on a busy
    machine a wall clock charges time spent preempted (typically inside a socket send that woke the
    database) to whatever function was running, which hides where the CPU actually goes.
    """

    async def stats(request: web.Request) -> web.Response:
        times = os.times()  # the same CPU time split into user and system (10 ms ticks)
        return web.json_response(
            {
                "pid": os.getpid(),
                "cpu_s": time.process_time(),
                "user_s": times.user,
                "sys_s": times.system,
                "commands": dict(counter.started_by_key),
                "failed": dict(counter.failed_by_key),
                "micros": dict(counter.micros_by_key),
            }
        )

    app.router.add_get(STATS_PATH, stats)
    if profile_path is None:
        return
    profiler = cProfile.Profile(time.process_time)

    async def start(request: web.Request) -> web.Response:
        profiler.enable()
        return web.json_response({"profiling": True})

    async def stop(request: web.Request) -> web.Response:
        profiler.disable()
        profiler.dump_stats(profile_path)
        return web.json_response({"profiling": False, "path": str(profile_path)})

    app.router.add_post(PROFILE_START_PATH, start)
    app.router.add_post(PROFILE_STOP_PATH, stop)


def die_with_parent() -> None:
    """Linux PR_SET_PDEATHSIG: if the load generator is killed outright, this server goes too."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before the line above took effect
        sys.exit("bench server: the load generator is gone")


def loopback(value: str) -> str:
    if value not in ("127.0.0.1", "::1", "localhost"):
        raise argparse.ArgumentTypeError("bench servers listen on loopback addresses only")
    return value


def server_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", type=loopback, default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mongodb-uri", required=True)
    parser.add_argument("--db", required=True, help="database name (a fresh one per run)")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the window here")
    return parser
