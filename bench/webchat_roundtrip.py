"""`make bench`: web chat round trips through the whole gateway, against a floor harness.

    python -m bench.webchat_roundtrip [--customers 8] [--warmup 100] [--turns 1000] [--profile]

Process layout: this process is the load generator; the database (SecantusDB, in a temp dir) is its
own process; the gateway under test (bench.serve_gateway) and the floor (bench.serve_floor) each run
in a child process of their own, one after the other: the gateway, the floor at full speed, and the
floor again held to the gateway's measured rate ("floor-paced"). For each target: open one session
and WebSocket per customer, run the warm-up turns, wait until the server is idle, read its stats,
run the measured turns, wait until idle again, read its stats, and diff. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient, uri_parser

from agent_bridge.ai.offline import DONT_KNOW_TEXT
from bench.harness import PROFILE_START_PATH, PROFILE_STOP_PATH, STATS_PATH
from bench.processes import (
    ROOT,
    BenchError,
    ChildServer,
    child_pid_running,
    log_tail,
    machine_ticks,
    proc_cpu_seconds,
)
from bench.report import TargetResult, machine_info, profile_summary, table, targets
from gateway.embedded_db import EmbeddedDatabase

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# What customers of the demo shop ask (config/kb): cycled, one per turn.
QUESTIONS = (
    "How much does shipping cost?",
    "What is the minimum order for free shipping?",
    "Do you ship to Canada and what does it cost?",
    "How long does standard delivery take?",
    "How long does expedited delivery take?",
    "How long does delivery to the UK take?",
    "How do I return an item?",
    "How many days do I have to return something?",
    "How much is the return shipping fee?",
    "When will I get my refund?",
    "How long does a refund take to show up on my card?",
    "I forgot my password, how do I reset it?",
    "My password reset email never arrived",
    "Which payment methods do you accept?",
    "Can I pay with PayPal?",
    "How can I track my order?",
    "Where do I find my tracking number?",
    "Is there a fee to cancel my order?",
    "What is the cancellation fee for personalised items?",
    "How do I cancel my Pantry Box subscription?",
)

TARGETS = ("gateway", "floor", "floor-paced")


def answered_questions() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split QUESTIONS into those the AI answers under the shipped rules and those it hands off.

    The bench measures AI turns; a question that hands off ends the AI's part of its conversation
    (the next turn would wait for a person), so it is left out, and the report says which.
    """
    from agent_bridge.ai.escalation import Triage
    from agent_bridge.ai.offline import OfflineResponder
    from agent_bridge.ai.rules import load_rules

    root = Path(__file__).resolve().parent.parent
    triage = Triage.load(load_rules(root / "config" / "routing.yaml"), base_dir=root)
    responder = OfflineResponder.from_directory(root / "config" / "kb")
    answered, handed_off = [], []
    for question in QUESTIONS:
        assessment = triage.assess(question)
        reply = None
        if assessment.trigger is None:  # as a live turn does, with the triage's intent
            reply = responder.answer(question, assessment.intent, assessment.intent_confidence)
        decision = triage.decide(assessment, reply)
        (answered if decision.action == "answer" else handed_off).append(question)
    return tuple(answered), tuple(handed_off)


@dataclass(frozen=True, slots=True)
class Config:
    customers: int
    warmup: int
    turns: int
    targets: tuple[str, ...]
    turn_timeout: float
    log_level: str
    mongodb_uri: str | None
    profile: bool
    sync_on_commit: bool
    output: Path
    check: bool
    commit: str
    questions: tuple[str, ...] = QUESTIONS
    left_out: tuple[str, ...] = ()


@dataclass(slots=True)
class TurnTiming:
    latency_ms: float
    ack_ms: float | None
    frames: int
    answered: bool


class Customer:
    """One web chat visitor: a session, a WebSocket, and turns taken one after another."""

    def __init__(self, index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.index = index
        self.ws = ws
        self.sent = 0

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, base_url: str, index: int) -> Customer:
        async with http.post(f"{base_url}/webchat/sessions", json={"name": f"Bench {index}"}) as response:
            if response.status != 201:
                raise BenchError(f"session creation failed: {response.status} {await response.text()}")
            session = await response.json()
        ws = await http.ws_connect(f"{base_url}/webchat/ws?token={session['token']}&after_seq=0")
        return cls(index, ws)

    async def turn(self, text: str, timeout: float) -> TurnTiming:
        """Send one message and wait for the AI's answer; the customer's own echo is the ack."""
        self.sent += 1
        client_msg_id = f"bench-{self.index}-{self.sent}"
        frames = 0
        ack: float | None = None
        started = time.perf_counter()
        await self.ws.send_str(json.dumps({"type": "message", "text": text, "client_msg_id": client_msg_id}))
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise BenchError(f"customer {self.index}: socket ended ({msg.type.name}: {msg.data})")
                frames += 1
                frame = json.loads(msg.data)
                kind = frame.get("type")
                if kind == "error":
                    raise BenchError(f"customer {self.index}: error frame {frame}")
                if kind != "message":
                    continue
                if frame.get("author") == "customer" and frame.get("client_msg_id") == client_msg_id:
                    ack = time.perf_counter()
                elif frame.get("author") == "ai":
                    done = time.perf_counter()
                    return TurnTiming(
                        latency_ms=(done - started) * 1000,
                        ack_ms=None if ack is None else (ack - started) * 1000,
                        frames=frames,
                        answered=not frame.get("text", "").startswith(DONT_KNOW_TEXT),
                    )

    async def close(self) -> None:
        await self.ws.close()


async def run_turns(
    customers: list[Customer],
    turns: int,
    timeout: float,
    pace: float | None = None,
    questions: tuple[str, ...] = QUESTIONS,
) -> list[TurnTiming]:
    """`turns` turns in all, shared by the customers; each takes its next one when its answer arrives.

    With `pace` (turns/s), turn n is also not sent before n / pace seconds after the start, so the
    server sees that rate at most; latency still counts from the moment of sending.
    """
    tickets: Iterator[int] = iter(range(turns))
    timings: list[TurnTiming] = []
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def drive(customer: Customer) -> None:
        for ticket in tickets:  # one iterator for all: the total is fixed, so this loop ends
            if pace is not None:
                await asyncio.sleep(max(0.0, start + ticket / pace - loop.time()))
            # Each customer walks the list from its own offset: a conversation never asks the same
            # question twice in a row, which the rules would rightly treat as the AI failing.
            question = questions[(customer.index * 3 + customer.sent) % len(questions)]
            timings.append(await customer.turn(question, timeout))

    async with asyncio.TaskGroup() as group:
        for customer in customers:
            group.create_task(drive(customer))
    return timings


async def settled_stats(server: ChildServer, http: aiohttp.ClientSession) -> dict[str, Any]:
    """Stats once the server is idle: its command count unchanged over 100 ms (at most 5 s of polls).

    The gateway still marks the outbox job sent after the answer went out; waiting for quiet keeps that
    write inside the window it belongs to.
    """
    stats = await server.get(http, STATS_PATH)
    for _ in range(50):
        await asyncio.sleep(0.1)
        again = await server.get(http, STATS_PATH)
        if again["commands"] == stats["commands"]:
            return again
        stats = again
    return stats


def diff_counts(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


async def measure(
    target: str,
    server: ChildServer,
    config: Config,
    database_pid: int | None,
    profile: Path | None,
    pace: float | None,
) -> TargetResult:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        customers: list[Customer] = []
        try:
            for index in range(config.customers):
                customers.append(await Customer.connect(http, server.base_url, index))
            if config.warmup:
                await run_turns(customers, config.warmup, config.turn_timeout, questions=config.questions)
            before = await settled_stats(server, http)
            if profile is not None:
                await server.post(http, PROFILE_START_PATH)
            db_before = proc_cpu_seconds(database_pid) if database_pid else None
            loadgen_before = time.process_time()
            ticks_before = machine_ticks()
            started = time.perf_counter()
            timings = await run_turns(customers, config.turns, config.turn_timeout, pace, config.questions)
            wall = time.perf_counter() - started
            loadgen_cpu = time.process_time() - loadgen_before
            ticks_after = machine_ticks()
            after = await settled_stats(server, http)
            db_after = proc_cpu_seconds(database_pid) if database_pid else None
            if profile is not None:
                await server.post(http, PROFILE_STOP_PATH)
        finally:
            for customer in customers:
                with contextlib.suppress(Exception):
                    await customer.close()
    return TargetResult(
        name=target,
        turns=len(timings),
        customers=config.customers,
        wall_s=wall,
        latencies_ms=[t.latency_ms for t in timings],
        ack_latencies_ms=[t.ack_ms for t in timings if t.ack_ms is not None],
        frames_received=sum(t.frames for t in timings),
        answered=sum(t.answered for t in timings),
        cpu_s=after["cpu_s"] - before["cpu_s"],
        sys_s=after["sys_s"] - before["sys_s"],
        commands=diff_counts(after["commands"], before["commands"]),
        failed_commands=diff_counts(after["failed"], before["failed"]),
        command_micros=diff_counts(after["micros"], before["micros"]),
        database_cpu_s=None if db_before is None or db_after is None else db_after - db_before,
        loadgen_cpu_s=loadgen_cpu,
        pace=pace,
        steal_share=steal_share(ticks_before, ticks_after),
    )


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


async def run_target(
    target: str,
    uri: str,
    db_name: str,
    work: Path,
    config: Config,
    database_pid: int | None,
    pace: float | None,
) -> TargetResult:
    profile = RESULTS_DIR / "gateway.prof" if config.profile and target == "gateway" else None
    if target == "gateway":
        module = "bench.serve_gateway"
        args = ["--data-dir", str(work / "gateway-data"), "--log-level", config.log_level]
        args += ["--profile", str(profile)] if profile else []
    else:
        module, args = "bench.serve_floor", []
    log_path = work / f"{target}.log"
    paced = f", paced at {pace:.1f} turns/s" if pace else ""
    print(f"bench: {target}: starting {module} (database {db_name}{paced})", file=sys.stderr, flush=True)
    async with ChildServer(target, module, ["--mongodb-uri", uri, "--db", db_name, *args], log_path) as server:
        try:
            result = await measure(target, server, config, database_pid, profile, pace)
        except Exception:
            print(f"bench: {target}: server log tail:\n{log_tail(log_path)}", file=sys.stderr)
            raise
    print(
        f"bench: {target}: {result.turns_per_s:.1f} turns/s, {result.cpu_ms_per_turn:.3f} ms CPU per turn",
        file=sys.stderr,
        flush=True,
    )
    return result


async def run(config: Config) -> int:
    # SIGTERM unwinds like Ctrl-C does: every child is stopped and the temp dir removed on the way out.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    run_id = f"{datetime.now(UTC):%Y%m%d%H%M%S}_{secrets.token_hex(3)}"
    date = datetime.now(UTC).isoformat(timespec="seconds")
    machine = machine_info()
    results: dict[str, TargetResult] = {}
    profile_path = RESULTS_DIR / "gateway.prof" if config.profile else None
    print(
        f"bench: {config.customers} customers, {config.warmup} warm-up + {config.turns} measured turns "
        f"per target; targets: {', '.join(config.targets)}",
        file=sys.stderr,
        flush=True,
    )
    if config.left_out:
        print(
            f"bench: {len(config.left_out)} of {len(QUESTIONS)} questions hand off under config/routing.yaml "
            f"and are left out of the AI turns: {'; '.join(config.left_out)}",
            file=sys.stderr,
            flush=True,
        )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-webchat-") as tmp:
        work = Path(tmp)
        database: EmbeddedDatabase | None = None
        try:
            if config.mongodb_uri is None:
                database = EmbeddedDatabase(work / "database", sync_on_commit=config.sync_on_commit)
                uri = await database.start()
                database_pid = child_pid_running("secantusd")
            else:
                uri, database_pid = config.mongodb_uri, None
            for target in config.targets:
                pace = None
                if target == "floor-paced":
                    if "gateway" not in results:
                        print("bench: floor-paced needs the gateway's rate; skipped", file=sys.stderr)
                        continue
                    pace = results["gateway"].turns_per_s
                results[target] = await run_target(
                    target,
                    uri,
                    f"bench_{run_id}_{target.replace('-', '_')}",
                    work,
                    config,
                    database_pid,
                    pace,
                )
        finally:
            if database is not None:
                await database.stop()
            elif config.mongodb_uri is not None:
                names = [f"bench_{run_id}_{t.replace('-', '_')}" for t in config.targets]
                await drop_databases(config.mongodb_uri, names)

    gateway, floor = results.get("gateway"), results.get("floor")
    verdicts = targets(gateway, floor) if gateway is not None else {}
    config_json = {
        "date": date,
        "run_id": run_id,
        "customers": config.customers,
        "warmup": config.warmup,
        "turns": config.turns,
        "targets": list(config.targets),
        "gateway_log_level": config.log_level,
        "database": "external (MONGODB_URI)" if config.mongodb_uri else "embedded SecantusDB",
        "profiled": config.profile,
        "questions": len(config.questions),
        "questions_left_out_as_handoffs": list(config.left_out),
        "commit": config.commit,
    }
    report: dict[str, Any] = {
        "config": config_json,
        "machine": machine,
        "results": {name: result.to_json() for name, result in results.items()},
        "ratios": {},
        "targets": verdicts,
    }
    for name in ("floor", "floor-paced"):
        other = results.get(name)
        if gateway is not None and other is not None:
            report["ratios"][f"gateway/{name}"] = {
                "cpu_per_turn": round(gateway.cpu_ms_per_turn / other.cpu_ms_per_turn, 2),
                "round_trips_per_turn": round(gateway.round_trips_per_turn / other.round_trips_per_turn, 2),
                "turns_per_s": round(gateway.turns_per_s / other.turns_per_s, 2),
            }
    print(table(machine, config_json, results, verdicts))
    if profile_path is not None and gateway is not None:
        summary = profile_summary(profile_path, gateway.turns)
        print("\n" + summary)
        (RESULTS_DIR / "gateway-profile.txt").write_text(summary + "\n")
        print("\nNote: the gateway ran under cProfile, which inflates its CPU figures.")
    config.output.parent.mkdir(parents=True, exist_ok=True)
    config.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {config.output}")
    if config.check and not all(v["met"] for v in verdicts.values()):
        return 1
    return 0


async def drop_databases(uri: str, names: list[str]) -> None:
    """Remove this run's databases from an external server (an embedded one is deleted whole)."""
    client: AsyncMongoClient = AsyncMongoClient(uri, serverSelectionTimeoutMS=2000)
    try:
        for name in names:
            await client.drop_database(name)
    except Exception as exc:
        print(f"bench: could not drop the bench databases: {exc}", file=sys.stderr)
    finally:
        await client.close()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        print(f"bench: {name} must be a whole number, not {value!r}", file=sys.stderr)
        raise SystemExit(2) from None


def _loopback_uri(uri: str) -> bool:
    if not uri.startswith("mongodb://"):
        return False
    try:
        nodes = uri_parser.parse_uri(uri)["nodelist"]
    except Exception:
        return False
    return bool(nodes) and all(host in ("127.0.0.1", "localhost", "::1") for host, _port in nodes)


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webchat_roundtrip",
        description="Web chat round trips through the gateway, against a floor harness (docs/benchmarks.md).",
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=_env_int("BENCH_CUSTOMERS", 8),
        help="concurrent customers, each with its own session and WebSocket (BENCH_CUSTOMERS, default 8)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=_env_int("BENCH_WARMUP", 100),
        help="warm-up turns per target, not measured (BENCH_WARMUP, default 100)",
    )
    parser.add_argument(
        "--turns",
        type=int,
        default=_env_int("BENCH_TURNS", 1000),
        help="measured turns per target (BENCH_TURNS, default 1000)",
    )
    parser.add_argument(
        "--targets",
        default=os.environ.get("BENCH_TARGETS", ",".join(TARGETS)),
        help="comma-separated, from: gateway, floor, floor-paced (the floor at the gateway's measured "
        "rate); BENCH_TARGETS, default all three",
    )
    parser.add_argument("--turn-timeout", type=float, default=30.0, help="seconds to wait for one answer")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("BENCH_GATEWAY_LOG_LEVEL", "INFO"),
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="the gateway's LOG_LEVEL (BENCH_GATEWAY_LOG_LEVEL, default INFO as in production)",
    )
    parser.add_argument(
        "--mongodb-uri",
        default=os.environ.get("BENCH_MONGODB_URI") or None,
        help="use this server instead of an embedded SecantusDB (BENCH_MONGODB_URI); "
        "its database CPU is then not measured",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        default=os.environ.get("BENCH_PROFILE", "") not in ("", "0"),
        help="cProfile the gateway's measured window into bench/results/gateway.prof (BENCH_PROFILE=1)",
    )
    parser.add_argument(
        "--no-sync-on-commit",
        action="store_true",
        help="run the embedded SecantusDB without syncing its journal on every commit (the product's "
        "EMBEDDED_DB_SYNC_ON_COMMIT=false), to measure what durability costs",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    args = parser.parse_args(argv)
    chosen = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    if not chosen or any(t not in TARGETS for t in chosen):
        parser.error(f"--targets must name some of: {', '.join(TARGETS)}")
    if args.customers < 1 or args.turns < 1 or args.warmup < 0:
        parser.error("--customers and --turns must be at least 1, --warmup at least 0")
    if args.mongodb_uri and not _loopback_uri(args.mongodb_uri):
        parser.error("--mongodb-uri must be a mongodb:// URI of a server on this machine (loopback)")
    answered, handed_off = answered_questions()
    if not answered:
        parser.error("every bench question hands off under config/routing.yaml: nothing to measure")
    return Config(
        customers=args.customers,
        warmup=args.warmup,
        turns=args.turns,
        targets=tuple(t for t in TARGETS if t in chosen),
        turn_timeout=args.turn_timeout,
        log_level=args.log_level,
        mongodb_uri=args.mongodb_uri,
        profile=args.profile,
        sync_on_commit=not args.no_sync_on_commit,
        output=args.output,
        check=args.check,
        commit=source_commit(),
        questions=answered,
        left_out=handed_off,
    )


def source_commit() -> str:
    """The checked-out commit, with "+dirty" for uncommitted changes (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        return asyncio.run(run(config))
    except KeyboardInterrupt:
        print("bench: interrupted; child processes stopped", file=sys.stderr)
        return 130
    except asyncio.CancelledError:
        print("bench: terminated; child processes stopped", file=sys.stderr)
        return 143
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("bench: failed; child processes stopped", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
