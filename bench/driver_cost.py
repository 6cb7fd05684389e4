"""What one database command costs: the driver's CPU in this process, and the wall time, per operation.

    python -m bench.driver_cost [--ops 200] [--sizes 10,2000]

A companion to bench.webchat_roundtrip (see docs/benchmarks.md): the gateway's turn is four commands,
the floor's one, so the client-side CPU of one PyMongo async command bounds how close the two can be.
Each operation runs `--ops` times, one after another, `--repeat` times over, against an embedded
SecantusDB (its own process, in a temp dir), on a collection already holding `size` documents.
Client CPU is `time.process_time()` of this process; wall time includes the server's work. On a
shared virtual machine the same run can vary by half; the best of the repeats is the steadiest.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pymongo import AsyncMongoClient, InsertOne, ReturnDocument, UpdateOne

from gateway.embedded_db import EmbeddedDatabase

Operation = Callable[[int], Awaitable[object]]


def operations(client: AsyncMongoClient, name: str) -> dict[str, Operation]:
    collection = client.bench_driver_cost[name]
    namespace = collection.full_name
    return {
        "insert_one": lambda i: collection.insert_one({"k": f"new-{i}", "n": 0}),
        "find_one by _id": lambda i: collection.find_one({"_id": 5}),
        "update_one by _id": lambda i: collection.update_one({"_id": 5}, {"$inc": {"n": 1}}),
        "find_one_and_update by _id": lambda i: collection.find_one_and_update(
            {"_id": 5}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
        ),
        "client.bulk_write (update + 2 inserts)": lambda i: client.bulk_write(
            [
                UpdateOne({"_id": 5}, {"$set": {"i": i}}, namespace=namespace),
                InsertOne({"k": f"a-{i}"}, namespace=namespace),
                InsertOne({"k": f"b-{i}"}, namespace=namespace),
            ]
        ),
    }


_unique = itertools.count()  # keys stay unique across warm-up and measured calls


async def measure(operation: Operation, count: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        await operation(next(_unique))
    return (time.process_time() - cpu) * 1000 / count, (time.perf_counter() - wall) * 1000 / count


async def run(ops: int, sizes: list[int], repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-driver-") as tmp:
        database = EmbeddedDatabase(Path(tmp))
        uri = await database.start()
        client: AsyncMongoClient = AsyncMongoClient(uri, tz_aware=True)
        try:
            print(f"{repeat} runs of {ops} operations each; CPU: best and median run; wall: median run")
            print(f"{'operation':<40}{'docs':>7}{'CPU ms/op best':>16}{'median':>9}{'wall ms/op':>12}")
            for size in sizes:
                name = f"c{size}"
                await client.bench_driver_cost[name].insert_many([{"_id": i, "n": 0} for i in range(size)])
                await client.bench_driver_cost[name].create_index("k", unique=True, sparse=True)
                for label, operation in operations(client, name).items():
                    await measure(operation, 5)  # connection and caches warm
                    runs = sorted([await measure(operation, ops) for _ in range(repeat)])
                    best, median = runs[0][0], runs[len(runs) // 2][0]
                    wall = sorted(r[1] for r in runs)[len(runs) // 2]
                    print(f"{label:<40}{size:>7}{best:>16.3f}{median:>9.3f}{wall:>12.2f}", flush=True)
        finally:
            await client.close()
            await database.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.driver_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=200, help="operations per measurement (default 200)")
    parser.add_argument("--sizes", default="10,2000", help="collection sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per operation (default 3)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.ops < 1 or args.repeat < 1 or not sizes or min(sizes) < 10:
        parser.error("--ops and --repeat must be at least 1, every size at least 10")
    try:
        asyncio.run(run(args.ops, sizes, args.repeat))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
