"""Structured logs keep secrets out: the Telegram bot token rides in every Bot API URL."""

from __future__ import annotations

import logging

from gateway.logs import JsonFormatter, configure_logging


def test_logs_never_show_a_bot_token() -> None:
    """httpx's request lines are off even at DEBUG, and any line quoting a Bot API URL hides the token."""
    root, access = logging.getLogger(), logging.getLogger("aiohttp.access")
    handlers, level, access_level = root.handlers[:], root.level, access.level
    try:
        configure_logging("DEBUG")
        assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    finally:  # pytest's own capture handlers go back on the root logger
        root.handlers[:] = handlers
        root.setLevel(level)
        access.setLevel(access_level)
    url = "http://127.0.0.1:1/bot123456789:AAHsecretPartOfTheToken-xyz/sendMessage"
    record = logging.LogRecord("httpx", logging.WARNING, "", 0, "HTTP Request: POST %s", (url,), None)
    line = JsonFormatter().format(record)
    assert "AAHsecretPartOfTheToken" not in line and "/bot123456789:***/sendMessage" in line
    download = "GET http://h/file/bot123456789:AAHsecretPartOfTheToken-xyz/photos/file_1.jpg"
    assert "AAHsecret" not in JsonFormatter().format(logging.LogRecord("x", 30, "", 0, download, (), None))
