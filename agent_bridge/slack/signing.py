"""Slack's request signature, checked before a request reaches Bolt ("Verifying requests from Slack":
https://docs.slack.dev/authentication/verifying-requests-from-slack/).

Slack signs `v0:<X-Slack-Request-Timestamp>:<raw body>` with the app's signing secret (HMAC-SHA256) and
sends `v0=<hex>` in X-Slack-Signature; a timestamp more than five minutes away from now is a replay.

Why not leave it to Bolt alone: slack_sdk's SignatureVerifier runs `int(timestamp)` on the header as
sent, so `X-Slack-Request-Timestamp: abc` raises ValueError inside Bolt's middleware and the request
gets a 500 with a traceback in the log; and Bolt logs every refused request *with its whole body* at
INFO. Here the headers are checked for shape first, the HMAC runs over the raw bytes (no decoding of
a body nobody vouched for), and a refusal is one log line without the body.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping

# Unix seconds, ASCII digits only: `str.isdigit` and `int` also accept "١٢٣", " 12", "1_0" and "+3".
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
MAX_AGE_SECONDS = 300  # "five minutes", as Slack's docs and Bolt use


def refusal(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str | None:
    """Why this request is not from Slack, or None when its signature is good."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not _TIMESTAMP.fullmatch(timestamp):
        return "malformed_timestamp"
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return "stale_timestamp"
    if not _SIGNATURE.fullmatch(signature):
        return "malformed_signature"
    basestring = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "bad_signature"
    return None


class DropRefusedBodies(logging.Filter):
    """For Bolt's loggers: drops its "Invalid request signature detected (... body: ...)" record.

    slack_bolt's RequestVerification middleware logs the refused request's whole body at INFO (up to
    the 1 MB aiohttp accepts: customer and agent messages included). `refusal` above already refuses
    those requests with its own line, so Bolt's copy is only ever a leak. Bolt copies the filters of
    the logger given to the app onto the loggers of its middleware (`slack_bolt.logger`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Invalid request signature detected")
