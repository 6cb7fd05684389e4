"""Signed web chat session tokens: the token names its own conversation and nothing else.

Format: base64url(JSON payload) "." base64url(HMAC-SHA256(secret, payload)). Stateless, so any gateway
process sharing the secret can verify it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass


class InvalidToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Session:
    conversation_id: str
    visitor_id: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, b"webchat-session:" + payload, hashlib.sha256).digest()

    def issue(self, conversation_id: str, visitor_id: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl_seconds)
        payload = json.dumps({"c": conversation_id, "v": visitor_id, "exp": expires}, separators=(",", ":"))
        raw = payload.encode()
        return f"{_b64(raw)}.{_b64(self._mac(raw))}"

    def verify(self, token: str, now: float | None = None) -> Session:
        try:
            payload_part, mac_part = token.split(".")
            raw = _unb64(payload_part)
            given = _unb64(mac_part)
        except ValueError:
            raise InvalidToken("malformed token") from None
        if not hmac.compare_digest(given, self._mac(raw)):
            raise InvalidToken("bad signature")
        try:
            payload = json.loads(raw)
            session = Session(str(payload["c"]), str(payload["v"]), int(payload["exp"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidToken("malformed payload") from None
        if session.expires_at < (time.time() if now is None else now):
            raise InvalidToken("expired")
        return session
