"""Where the bot token may be sent with a file download.

A `message` event's file object names its own `url_private_download`; Slack's "Working with files"
says to fetch it with `Authorization: Bearer <bot token>`, and Slack serves it from files.slack.com.
The URL is data in an event, though, not a promise: the bot token (which can read and post in every
channel the app is in) goes only over https to Slack's file host, or to the file host beside the
configured API host (GovSlack: slack-gov.com → files.slack-gov.com), or to the exact origin of
SLACK_API_URL (a local fake in tests, a proxy an operator set up). Anything else is refused
without a request.

Redirects are safe to follow: aiohttp drops the Authorization header when a redirect leaves the
origin (`ClientSession._request`), so a redirect from files.slack.com cannot carry the token away.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SLACK_FILE_HOST = "files.slack.com"


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:  # a port that is not a number, or out of range
        return None
    if not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port


class SlackFileHosts:
    def __init__(self, api_url: str) -> None:
        self.api_origin = _origin(api_url)
        self.hosts = {SLACK_FILE_HOST}
        if self.api_origin is not None and self.api_origin[0] == "https":
            self.hosts.add(f"files.{self.api_origin[1]}")

    def may_send_token(self, url: str) -> bool:
        origin = _origin(url)
        if origin is None:
            return False
        if origin == self.api_origin:
            return True
        scheme, host, port = origin
        return scheme == "https" and port == 443 and host in self.hosts
