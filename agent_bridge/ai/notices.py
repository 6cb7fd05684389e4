"""What the customer is told on handoff: which team answers, how long it usually takes, or when the
team is back. Wording comes from the `messages` templates in the routing file."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from agent_bridge.ai.rules import RoutingRules


def _when(reopens: datetime, now: datetime) -> str:
    local_now = now.astimezone(reopens.tzinfo)
    clock = reopens.strftime("%H:%M")
    zone = reopens.tzname() or ""
    days = (reopens.date() - local_now.date()).days
    if days == 0:
        day = "today"
    elif days == 1:
        day = "tomorrow"
    else:
        day = f"on {reopens.strftime('%A')}"
    return f"{day} at {clock} {zone}".strip()


def round_wait(minutes: float) -> int:
    """A wait customers can read: whole minutes up to 10, then steps of 5, then of 15 past an hour."""
    if minutes <= 10:
        return max(1, math.ceil(minutes))
    step = 5 if minutes <= 60 else 15
    return int(math.ceil(minutes / step) * step)


def handoff_notice(rules: RoutingRules, queue_name: str, now: datetime, recent_wait_minutes: float | None) -> str:
    """`recent_wait_minutes`: the queue's recent time to first human reply; None → the configured SLA."""
    queue = rules.queue(queue_name)
    team = queue.display_name
    templates = rules.messages
    hours = queue.business_hours
    if hours.is_open(now):
        minutes = recent_wait_minutes if recent_wait_minutes is not None else float(queue.sla_minutes)
        wait = templates.wait_estimate.format(minutes=round_wait(minutes), team=team, queue=queue.name)
    else:
        wait = templates.after_hours.format(team=team, reopens=_when(hours.next_open(now), now), queue=queue.name)
    return templates.handoff.format(team=team, wait=wait, queue=queue.name).strip()


WAIT_SAMPLE = 20
WAIT_WINDOW = timedelta(days=7)
