"""`/support [queue]`: what is waiting for people right now, per queue, for the agent who asks."""

from __future__ import annotations

from datetime import datetime

from agent_bridge.ai.rules import RoutingRules
from agent_bridge.slack.escaping import escape_mrkdwn
from gateway.store import ConversationStore, utcnow


def _age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "—"
    minutes = int((now - since).total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


async def queue_status(store: ConversationStore, rules: RoutingRules, wanted: str = "") -> str:
    now = utcnow()
    names = [q.name for q in rules.queues]
    if wanted and wanted not in names:
        return f"No queue named {escape_mrkdwn(wanted)}. Queues: {', '.join(names)}."
    match: dict = {"status": {"$in": ["waiting_for_agent", "with_agent"]}}
    if wanted:
        match["queue"] = wanted
    rows = await (
        await store.conversations.aggregate(
            [
                {"$match": match},
                {
                    "$group": {
                        "_id": "$queue",
                        "waiting": {"$sum": {"$cond": [{"$eq": ["$status", "waiting_for_agent"]}, 1, 0]}},
                        "with_agent": {"$sum": {"$cond": [{"$eq": ["$status", "with_agent"]}, 1, 0]}},
                        "overdue": {
                            "$sum": {
                                "$cond": [
                                    {
                                        "$and": [
                                            {"$eq": ["$status", "waiting_for_agent"]},
                                            {"$lte": ["$sla_due_at", now]},
                                        ]
                                    },
                                    1,
                                    0,
                                ]
                            }
                        },
                        "oldest": {"$min": {"$cond": [{"$eq": ["$status", "waiting_for_agent"]}, "$handoff_at", None]}},
                    }
                },
            ]
        )
    ).to_list()
    by_queue = {row["_id"]: row for row in rows}
    lines = ["*Handoff queues*"]
    for queue in rules.queues:
        if wanted and queue.name != wanted:
            continue
        row = by_queue.get(queue.name, {})
        lines.append(
            f"• *{escape_mrkdwn(queue.display_name)}* ({queue.name}): {row.get('waiting', 0)} waiting"
            f" ({row.get('overdue', 0)} past the {queue.sla_minutes}-minute SLA), "
            f"{row.get('with_agent', 0)} with an agent; longest wait {_age(row.get('oldest'), now)}"
        )
    return "\n".join(lines)
