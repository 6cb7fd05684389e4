"""Customer satisfaction after a resolved handoff: the rating a customer sends back, and for how long
an answer counts as one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

CSAT_WINDOW = timedelta(days=7)
# "5", "4/5", "3 out of 5", "5 stars", "⭐⭐⭐⭐" — and nothing else, so a real question is never eaten.
_RATING = re.compile(r"^\s*([1-5])\s*(?:/\s*5|out of 5|of 5|stars?)?\s*[.!]*\s*$", re.IGNORECASE)
_STARS = re.compile(r"^\s*(⭐{1,5}|★{1,5})\s*$")


def parse_rating(text: str) -> int | None:
    if match := _RATING.match(text):
        return int(match[1])
    if match := _STARS.match(text):
        return len(match[1])
    return None


def csat_pending(conversation: Mapping[str, Any], now: datetime) -> bool:
    """The question was asked after the last resolve, within the window, and not yet answered."""
    csat = conversation.get("csat") or {}
    asked = csat.get("asked_at")
    return asked is not None and csat.get("score") is None and now - asked <= CSAT_WINDOW
