"""Structured logs: one JSON object a line, an event name plus fields (conversation_id where known).

Message bodies and secrets are never logged at INFO.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# The Telegram Bot API puts the bot token in every URL path (/bot<id>:<secret>/sendMessage): any line
# that quotes such a URL (an HTTP library's, an exception's) has the secret part hidden.
_BOT_TOKEN_IN_URL = re.compile(r"(/(?:file/)?bot\d+:)[A-Za-z0-9_-]+")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = json.dumps(entry, default=str, ensure_ascii=False)
        return _BOT_TOKEN_IN_URL.sub(r"\1***", line) if "/bot" in line else line


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log is one line per request: useful, but keep it at INFO only when asked.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
    # httpx logs every request URL at INFO (python-telegram-bot's and the OpenAI client's): noise at
    # best, and Telegram's URLs hold the bot token. The twilio client logs each request's parameters
    # (customers' numbers and message bodies) at INFO.
    for noisy in ("pymongo", "bm25s", "httpx", "httpcore", "twilio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, event, extra=fields)
