"""Background work repeated on a timer (the SLA watcher, the recovery sweep, web chat expiry).

One shape for all of them: run, log a failure and carry on (the database may be away; the next
round tries again), sleep, until stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


class Periodic:
    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[object]],
        every_seconds: float,
        *,
        logger: logging.Logger,
        first_delay: float = 0.0,
    ) -> None:
        self.name = name
        self.work = work
        self.every_seconds = every_seconds
        self.first_delay = first_delay
        self.log = logger
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, timeout: float = 10.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # wait(), not `await task` under suppress(CancelledError): that would also swallow a
        # cancellation of the caller itself. Bounded, so a shutdown never hangs on a stuck round.
        _done, pending = await asyncio.wait({task}, timeout=timeout)
        if pending:
            self.log.error(f"{self.name}_did_not_stop", extra={"timeout_s": timeout})

    async def _run(self) -> None:
        if self.first_delay:
            await asyncio.sleep(self.first_delay)
        while True:
            try:
                await self.work()
            except Exception:
                if not _cancelling():
                    self.log.exception(f"{self.name}_failed")
            # PyMongo's async client can turn the CancelledError of stop() into an error of its own (a
            # query interrupted mid-flight), or absorb it. Either way the request to stop is still
            # pending on the task: honour it here, or the loop would sleep on and never end.
            if _cancelling():
                raise asyncio.CancelledError
            await asyncio.sleep(self.every_seconds)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
