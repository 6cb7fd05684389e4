"""The recovery sweep: every acknowledged customer message gets its answer, whatever was killed.

A customer message the AI owes an answer carries `awaiting_reply_since` and a hold
(`turn_lease_until`) until its reply is written in the same transaction that removes both
(gateway/store.py). A turn whose process was killed, or that failed (a database outage, a bug), keeps
the mark; once its hold lapses, any gateway process's sweep takes it over with one update by `_id`,
like the outbox's leases. A customer's re-send of the same message does the same at once
(Ingest.retry_turn). A second answer is impossible: the reply's write is guarded by the message it
answers, and its idempotency key is `ai:<message id>`.
"""

from __future__ import annotations

import logging

from gateway.ingest import Ingest
from gateway.logs import log_event
from gateway.periodic import Periodic
from gateway.store import utcnow

log = logging.getLogger("gateway.recovery")


class TurnRecovery:
    def __init__(self, ingest: Ingest, every_seconds: float) -> None:
        self.ingest = ingest
        self.timer = Periodic("turn_recovery", self.sweep_once, every_seconds, logger=log)

    def start(self) -> None:
        self.timer.start()  # the first sweep runs at once: what a stopped process left is answered now

    async def stop(self) -> None:
        await self.timer.stop()

    async def sweep_once(self) -> int:
        """Take over every lapsed turn this process can claim; returns how many it started."""
        now = utcnow()
        started = 0
        for message in await self.ingest.store.lapsed_turns(now):
            if await self.ingest.retry_turn(message, now):
                started += 1
        if started:
            log_event(log, "turns_recovered", logging.WARNING, count=started)
        return started
