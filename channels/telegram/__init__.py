"""The Telegram channel (python-telegram-bot). Its registry entry is `channels.telegram.plugin.TELEGRAM`."""

import os

# PTB 22.2+ reports time periods (RetryAfter.retry_after) as int with a deprecation warning, unless
# PTB_TIMEDELTA opts into the timedelta it will always return later; the adapter reads both.
os.environ.setdefault("PTB_TIMEDELTA", "true")
