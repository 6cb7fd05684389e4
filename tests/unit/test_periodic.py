"""The background timer: failures are logged and retried, and stop() always stops it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from gateway.periodic import Periodic

log = logging.getLogger("tests.periodic")


async def test_a_failing_round_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []
    third = asyncio.Event()

    async def work() -> None:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("database away")
        if len(rounds) == 3:
            third.set()

    timer = Periodic("probe", work, 0.01, logger=log)
    timer.start()
    await asyncio.wait_for(third.wait(), 5)
    await timer.stop()
    assert any(r.getMessage() == "probe_failed" for r in caplog.records)


async def stop_during_a_round(on_cancel: Callable[[], None]) -> bool:
    """Start a timer whose round is cancelled mid-flight, handled by `on_cancel`; whether stop() ended
    well within the timer's own stop timeout (it waits 10 s before giving up)."""
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            on_cancel()

    timer = Periodic("probe", work, 3600, logger=log)
    timer.start()
    await started.wait()
    stopping = asyncio.create_task(timer.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    return stopping in done


async def test_stop_ends_a_round_whose_cancellation_came_back_as_another_error() -> None:
    """What PyMongo's async client can do to a query cancelled mid-flight: raise its own error."""

    def reraise_as_another_error() -> None:
        raise RuntimeError("connection closed while the query ran")

    assert await stop_during_a_round(reraise_as_another_error), "the cancellation was swallowed"


async def test_stop_ends_a_round_that_absorbed_its_cancellation() -> None:
    """A library that catches the cancellation and carries on: the loop must not sleep on."""
    assert await stop_during_a_round(lambda: None), "the loop slept on after its round"
