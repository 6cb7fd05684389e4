"""Abuse limits of the web chat: sliding-window rate limiters, kept per key in bounded memory.

The limits hold per gateway process: several processes behind a load balancer each allow the full
amount (docs/webchat.md says so).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from channels.webchat.settings import WebchatSettings


class RateLimiter:
    """At most `limit` events in any `window` seconds."""

    def __init__(self, window: float, limit: int) -> None:
        self.window = window
        self.limit = limit
        self._times: list[float] = []

    def _prune(self, now: float) -> None:
        self._times = [t for t in self._times if now - t < self.window]

    def allow(self) -> bool:
        now = time.monotonic()
        self._prune(now)
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True

    def retry_after(self) -> float:
        """Seconds until the next event would be allowed (0 when it would be now)."""
        now = time.monotonic()
        self._prune(now)
        if len(self._times) < self.limit:
            return 0.0
        return max(0.0, self._times[0] + self.window - now)

    def idle(self) -> bool:
        now = time.monotonic()
        return all(now - t >= self.window for t in self._times)


class KeyedLimiters:
    """One RateLimiter per key (a conversation, a client address) with bounded memory.

    Past `max_keys`, keys whose window has passed are forgotten first; if that is not enough (a flood
    from many addresses), the least recently used keys go, which at worst gives them a fresh budget.
    """

    def __init__(self, window: float, limit: int, max_keys: int = 10_000) -> None:
        self.window = window
        self.limit = limit
        self.max_keys = max_keys
        self._limiters: OrderedDict[str, RateLimiter] = OrderedDict()

    def get(self, key: str) -> RateLimiter:
        limiter = self._limiters.get(key)
        if limiter is not None:
            self._limiters.move_to_end(key)
            return limiter
        if len(self._limiters) >= self.max_keys:
            self._limiters = OrderedDict((k, v) for k, v in self._limiters.items() if not v.idle())
            while len(self._limiters) >= self.max_keys:
                self._limiters.popitem(last=False)
        limiter = self._limiters[key] = RateLimiter(self.window, self.limit)
        return limiter

    def __len__(self) -> int:
        return len(self._limiters)


@dataclass(frozen=True, slots=True)
class WebchatLimits:
    """The settings-driven limits (WEBCHAT_* in config/example.env); defaults match the settings'."""

    rate_max_messages: int = 20
    rate_window_seconds: float = 10.0
    max_sockets_per_conversation: int = 10
    sessions_per_ip_per_hour: int = 30
    empty_session_ttl_seconds: float = 24 * 3600.0
    unattached_upload_ttl_seconds: float = 24 * 3600.0

    @classmethod
    def from_settings(cls, settings: WebchatSettings) -> WebchatLimits:
        return cls(
            rate_max_messages=settings.rate_max_messages,
            rate_window_seconds=settings.rate_window_seconds,
            max_sockets_per_conversation=settings.max_sockets_per_conversation,
            sessions_per_ip_per_hour=settings.sessions_per_ip_per_hour,
            empty_session_ttl_seconds=settings.empty_session_ttl_hours * 3600,
            unattached_upload_ttl_seconds=settings.unattached_upload_ttl_hours * 3600,
        )
