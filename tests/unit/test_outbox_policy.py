"""Backoff arithmetic and session tokens: pure functions, checked without a server."""

from __future__ import annotations

import pytest

from channels.webchat.tokens import InvalidToken, TokenSigner
from gateway.outbox import RetryPolicy


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=60)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (30, 60)]:
        delays = [policy.delay(attempts, None) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling / 10, "no jitter"


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=60)
    assert policy.delay(1, 120.0) == 120.0
    assert 0.5 <= policy.delay(1, 0.1) <= 1.0


def test_tokens_round_trip_and_refuse_tampering() -> None:
    signer = TokenSigner(b"k" * 32, ttl_seconds=60)
    token = signer.issue("conv-1", "visitor-1", now=1000)
    session = signer.verify(token, now=1030)
    assert (session.conversation_id, session.visitor_id) == ("conv-1", "visitor-1")
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, now=1061)
    with pytest.raises(InvalidToken):
        TokenSigner(b"j" * 32, 60).verify(token, now=1030)
    payload, mac = token.split(".")
    with pytest.raises(InvalidToken):
        signer.verify(f"{payload[:-2]}xx.{mac}", now=1030)
