"""Keeps session tokens and file signatures out of aiohttp's access log.

Browsers cannot set headers on a WebSocket, so the session token travels as `?token=` in the URL,
and file links carry their capability as `?sig=`. aiohttp's access log (on at LOG_LEVEL=DEBUG) prints
the request line, both in the message and as the `first_request_line` field our JSON formatter
copies out: a filter on that logger rewrites both before any handler sees them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

ACCESS_LOGGER = "aiohttp.access"
_SECRET_QUERY = re.compile(r"(?i)([?&;](?:token|sig)=)[^&;\s\"']*")


def redact(text: str) -> str:
    return _SECRET_QUERY.sub(r"\1[redacted]", text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_scrub(v) for v in value)
    return value


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _scrub(record.msg)
        if record.args:
            record.args = _scrub(record.args)
        for key, value in list(record.__dict__.items()):
            if key not in ("msg", "args") and isinstance(value, str | dict):
                record.__dict__[key] = _scrub(value)
        return True


def install() -> None:
    """Idempotent: every app built in one process (tests build many) shares the one logger."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
