"""Results of one bench run: the figures per target, the machine, the table, and a profile summary."""

from __future__ import annotations

import os
import platform
import pstats
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

# The design targets (docs/benchmarks.md).
MAX_ROUND_TRIPS_PER_TURN = 4.0
MAX_CPU_RATIO_TO_FLOOR = 2.0

# Commands the outbox sweeper issues on its own timer (every OUTBOX_POLL_SECONDS), whatever the load:
# reported, but not part of a turn's round trips.
BACKGROUND_COMMANDS = frozenset({"distinct outbox", "find outbox"})


@dataclass
class TargetResult:
    name: str
    turns: int
    customers: int
    wall_s: float
    latencies_ms: list[float] = field(repr=False)
    ack_latencies_ms: list[float] = field(repr=False)
    frames_received: int
    answered: int
    cpu_s: float
    sys_s: float
    commands: dict[str, int]
    failed_commands: dict[str, int]
    command_micros: dict[str, int]
    database_cpu_s: float | None
    loadgen_cpu_s: float
    pace: float | None = None
    steal_share: float | None = None  # of the machine's CPU time, taken by the hypervisor

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.wall_s

    @property
    def cpu_ms_per_turn(self) -> float:
        return self.cpu_s * 1000 / self.turns

    @property
    def round_trips_per_turn(self) -> float:
        return sum(self.commands.values()) / self.turns

    @property
    def background_round_trips_per_turn(self) -> float:
        return sum(n for k, n in self.commands.items() if k in BACKGROUND_COMMANDS) / self.turns

    @property
    def turn_round_trips_per_turn(self) -> float:
        return self.round_trips_per_turn - self.background_round_trips_per_turn

    def to_json(self) -> dict[str, Any]:
        return {
            "paced_at_turns_per_s": None if self.pace is None else round(self.pace, 1),
            "turns": self.turns,
            "customers": self.customers,
            "wall_s": round(self.wall_s, 3),
            "turns_per_s": round(self.turns_per_s, 1),
            "latency_ms": summary(self.latencies_ms),
            "ack_latency_ms": summary(self.ack_latencies_ms) if self.ack_latencies_ms else None,
            "frames_per_turn": round(self.frames_received / self.turns, 2),
            "answered": self.answered,
            "cpu_ms_per_turn": round(self.cpu_ms_per_turn, 3),
            "cpu_s": round(self.cpu_s, 3),
            "sys_share": round(self.sys_s / self.cpu_s, 3) if self.cpu_s else None,
            "round_trips_per_turn": round(self.round_trips_per_turn, 3),
            "turn_round_trips_per_turn": round(self.turn_round_trips_per_turn, 3),
            "background_round_trips_per_turn": round(self.background_round_trips_per_turn, 3),
            "commands_per_turn": {k: round(n / self.turns, 3) for k, n in sorted(self.commands.items())},
            "commands": dict(sorted(self.commands.items())),
            "failed_commands": self.failed_commands,
            "command_mean_ms": {
                key: round(self.command_micros.get(key, 0) / count / 1000, 3)
                for key, count in sorted(self.commands.items())
            },
            "database_cpu_ms_per_turn": (
                None if self.database_cpu_s is None else round(self.database_cpu_s * 1000 / self.turns, 3)
            ),
            "loadgen_cpu_ms_per_turn": round(self.loadgen_cpu_s * 1000 / self.turns, 3),
            "machine_steal_share": None if self.steal_share is None else round(self.steal_share, 4),
        }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 2),
        "p90": round(percentile(values, 90), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
        "mean": round(sum(values) / len(values), 2),
    }


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    ram_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model,
        "ram_gib": ram_gib,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "pymongo": _version("pymongo"),
        "secantusdb": _version("SecantusDB"),
        "aiohttp": _version("aiohttp"),
    }


def targets(gateway: TargetResult, floor: TargetResult | None) -> dict[str, Any]:
    verdicts: dict[str, Any] = {
        "round_trips": {
            "target": f"<= {MAX_ROUND_TRIPS_PER_TURN:g} database round trips per AI turn",
            "measured": round(gateway.turn_round_trips_per_turn, 3),
            "met": gateway.turn_round_trips_per_turn <= MAX_ROUND_TRIPS_PER_TURN + 0.005,
        }
    }
    if floor is not None:
        ratio = gateway.cpu_ms_per_turn / floor.cpu_ms_per_turn
        verdicts["cpu"] = {
            "target": f"gateway CPU per turn <= {MAX_CPU_RATIO_TO_FLOOR:g}x the floor's",
            "measured": round(ratio, 2),
            "gateway_cpu_ms_per_turn": round(gateway.cpu_ms_per_turn, 3),
            "floor_cpu_ms_per_turn": round(floor.cpu_ms_per_turn, 3),
            "met": ratio <= MAX_CPU_RATIO_TO_FLOOR,
        }
    return verdicts


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def table(
    machine: dict[str, Any],
    config: dict[str, Any],
    results: dict[str, TargetResult],
    verdicts: dict[str, Any],
) -> str:
    names = [n for n in ("gateway", "floor", "floor-paced") if n in results]
    ordered = [results[n] for n in names]
    gateway = results.get("gateway")
    baselines = [results[n] for n in ("floor", "floor-paced") if n in results and gateway is not None]
    out = [
        f"Web chat round trips: {config['customers']} customers, {config['warmup']} warm-up + "
        f"{config['turns']} measured turns per target ({config['date']}, commit {config['commit']})",
        f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['ram_gib']} GiB RAM, "
        f"Python {machine['python']}, pymongo {machine['pymongo']}, SecantusDB {machine['secantusdb']}, "
        f"aiohttp {machine['aiohttp']}",
    ]
    if "floor-paced" in results:
        out.append(f"floor-paced: the floor again, held to the gateway's rate ({results['floor-paced'].pace:.1f}/s)")
    out.append("")
    label_width, cell, ratio_cell = 36, 13, 22

    def row(label: str, values: list[float | None], digits: int = 2, ratio: bool = True) -> None:
        cells = "".join(f"{_fmt(v, digits):>{cell}}" for v in values)
        ratios = ""
        if ratio and gateway is not None:
            ratios = "".join(f"{_ratio(values[0], values[names.index(b.name)]):>{ratio_cell}}" for b in baselines)
        out.append(f"{label:<{label_width}}{cells}{ratios}")

    header = f"{'':<{label_width}}" + "".join(f"{n:>{cell}}" for n in names)
    header += "".join(f"{'gateway/' + b.name:>{ratio_cell}}" for b in baselines)
    out.append(header)
    row("turns/s", [r.turns_per_s for r in ordered], 1)
    row("turn latency p50 (ms)", [percentile(r.latencies_ms, 50) for r in ordered])
    row("turn latency p99 (ms)", [percentile(r.latencies_ms, 99) for r in ordered])
    row(
        "ack latency p50 (ms)",
        [percentile(r.ack_latencies_ms, 50) if r.ack_latencies_ms else None for r in ordered],
        ratio=False,
    )
    row("server CPU per turn (ms)", [r.cpu_ms_per_turn for r in ordered], 3)
    row("  of which in the kernel (sys) (ms)", [r.sys_s * 1000 / r.turns for r in ordered], 3)
    row("DB round trips per turn (all)", [r.round_trips_per_turn for r in ordered], 3)
    row("  in the turn path", [r.turn_round_trips_per_turn for r in ordered], 3)
    row("  outbox sweeper (timer)", [r.background_round_trips_per_turn for r in ordered], 3, ratio=False)
    row(
        "database CPU per turn (ms)",
        [None if r.database_cpu_s is None else r.database_cpu_s * 1000 / r.turns for r in ordered],
        3,
    )
    row("load generator CPU per turn (ms)", [r.loadgen_cpu_s * 1000 / r.turns for r in ordered], 3)
    row(
        "CPU stolen by the hypervisor (%)",
        [None if r.steal_share is None else r.steal_share * 100 for r in ordered],
        1,
        ratio=False,
    )
    row("frames received per turn", [r.frames_received / r.turns for r in ordered], 2, ratio=False)
    out.append(
        f"{'answered by the AI':<{label_width}}" + "".join(f"{f'{r.answered}/{r.turns}':>{cell}}" for r in ordered)
    )

    for result in ordered:
        if result.name == "floor-paced":
            continue  # the same commands as the floor
        out += ["", f"Round trips by command ({result.name}):", f"  {'':<34}{'per turn':>10}{'mean ms':>10}"]
        for key, count in sorted(result.commands.items(), key=lambda kv: (-kv[1], kv[0])):
            note = "  (outbox sweeper, on a timer)" if key in BACKGROUND_COMMANDS else ""
            mean_ms = result.command_micros.get(key, 0) / count / 1000
            out.append(f"  {key:<34}{count / result.turns:>10.3f}{mean_ms:>10.2f}{note}")
    for result in ordered:
        if result.failed_commands:
            out.append(f"  failed commands ({result.name}): {result.failed_commands}")

    out += ["", "Targets:"]
    for verdict in verdicts.values():
        status = "met" if verdict["met"] else "NOT MET"
        if "floor_cpu_ms_per_turn" in verdict:
            gateway_ms, floor_ms = verdict["gateway_cpu_ms_per_turn"], verdict["floor_cpu_ms_per_turn"]
            detail = f"{gateway_ms:.3f} ms vs floor {floor_ms:.3f} ms = {verdict['measured']:.2f}x"
        else:
            detail = f"{verdict['measured']:.3f} per turn"
        out.append(f"  {verdict['target']}: {detail} -> {status}")
    if gateway is not None and "floor-paced" in results:
        paced = results["floor-paced"]
        out.append(
            f"  (for reference, not a target: against the floor at the gateway's rate, "
            f"{gateway.cpu_ms_per_turn:.3f} ms vs {paced.cpu_ms_per_turn:.3f} ms = "
            f"{gateway.cpu_ms_per_turn / paced.cpu_ms_per_turn:.2f}x)"
        )
    return "\n".join(out)


def _package(filename: str) -> str:
    """A readable owner for a profiled function: project package, third-party package, or stdlib."""
    if filename == "~":
        return "(builtins)"
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0].removesuffix(".py") if rest else filename
    for project in ("gateway", "channels", "agent_bridge", "bench"):
        if project in parts:
            return ".".join(parts[parts.index(project) :]).removesuffix(".py")
    python_dir = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if python_dir in parts:
        rest = parts[parts.index(python_dir) + 1 :]
        return "stdlib " + (rest[0].removesuffix(".py") if rest else filename)
    return filename


def profile_summary(path: Path, turns: int, top: int = 25) -> str:
    """Own time per package (C functions charged to their Python caller), then the top functions."""
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    by_owner: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, callers) in raw.items():
        if filename == "~" and callers:
            for (caller_file, _l, _n), caller_entry in callers.items():
                by_owner[_package(caller_file)] += caller_entry[2]
        else:
            by_owner[_package(filename)] += tottime
    lines = [
        f"Profile of the gateway's measured window ({path}), on the process CPU clock. cProfile slows",
        "Python code (more so the more calls it makes), so read the shares, not the absolute times.",
        f"Total {total * 1000 / turns:.2f} ms CPU per turn under the profiler.",
        "",
        "Own time by package/module (C calls charged to the Python code that made them):",
    ]
    for owner, seconds in sorted(by_owner.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {seconds / total * 100:5.1f}%  {seconds * 1000 / turns:6.3f} ms/turn  {owner}")
    lines += ["", "Top functions by own time:"]
    ordered = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in ordered:
        where = f"{_package(filename)}:{line}" if filename != "~" else "builtin"
        lines.append(
            f"  {tottime / total * 100:5.1f}%  {calls / turns:6.1f} calls/turn"
            f"  cum {cumtime * 1000 / turns:6.3f} ms  {name}  ({where})"
        )
    lines += ["", "Top functions by cumulative time (project code):"]
    project = [
        kv for kv in raw.items() if any(p in Path(kv[0][0]).parts for p in ("gateway", "channels", "agent_bridge"))
    ]
    for (filename, line, name), (_cc, calls, _tt, cumtime, _callers) in sorted(project, key=lambda kv: -kv[1][3])[:top]:
        lines.append(
            f"  {cumtime / total * 100:5.1f}%  {cumtime * 1000 / turns:6.3f} ms/turn"
            f"  {calls / turns:5.1f} calls/turn  {name}  ({_package(filename)}:{line})"
        )
    return "\n".join(lines)
