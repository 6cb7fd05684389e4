"""The web chat's limit building blocks: client addresses behind proxies, keyed limiters, log redaction."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from channels.webchat.access_log import RedactSecrets, redact
from channels.webchat.client_ip import client_address, limit_key
from channels.webchat.limits import KeyedLimiters, RateLimiter
from channels.webchat.plugin import WEBCHAT
from gateway.settings import Settings, SettingsError, load_settings

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48"))


def request(peer: str, forwarded: str | None = None):
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    req = make_mocked_request("POST", "/webchat/sessions", headers=headers)
    # make_mocked_request has no peer; `remote` is what aiohttp reads from the transport.
    return req.clone(remote=peer)


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "expected"),
    [
        ("198.51.100.7", "1.2.3.4", (), "198.51.100.7"),  # no trusted proxies: the header is ignored
        ("198.51.100.7", "1.2.3.4", PROXIES, "198.51.100.7"),  # the peer is not our proxy
        ("10.0.0.2", "1.2.3.4", PROXIES, "1.2.3.4"),
        ("10.0.0.2", "6.6.6.6, 1.2.3.4", PROXIES, "1.2.3.4"),  # the left part is the client's own claim
        ("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.9.9.9", PROXIES, "1.2.3.4"),  # two of our proxies
        ("10.0.0.2", "10.1.1.1", PROXIES, "10.1.1.1"),  # all trusted: the left-most we know
        ("10.0.0.2", "", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "not-an-ip", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "[2001:db8::5]:443", PROXIES, "2001:db8::5"),
        ("10.0.0.2", "203.0.113.4:5555", PROXIES, "203.0.113.4"),
        ("::ffff:10.0.0.2", "1.2.3.4", PROXIES, "1.2.3.4"),  # an IPv4 peer on a dual-stack socket
    ],
)
def test_client_address_takes_the_rightmost_untrusted_hop(
    peer: str, forwarded: str, proxies: tuple, expected: str
) -> None:
    assert str(client_address(request(peer, forwarded), proxies)) == expected


def test_ipv6_clients_share_a_budget_per_64() -> None:
    a, b = ipaddress.ip_address("2001:db8:1:2::1"), ipaddress.ip_address("2001:db8:1:2:ffff::9")
    assert limit_key(a) == limit_key(b) == "2001:db8:1:2::/64"
    assert limit_key(ipaddress.ip_address("192.0.2.1")) == "192.0.2.1"


def test_keyed_limiters_share_a_budget_per_key_and_keep_memory_bounded() -> None:
    limits = KeyedLimiters(window=60, limit=2, max_keys=100)
    assert [limits.get("c-1").allow() for _ in range(3)] == [True, True, False]
    assert limits.get("c-2").allow()
    for i in range(1000):
        limits.get(f"flood-{i}").allow()
    assert len(limits) <= 100


def test_retry_after_says_when_the_oldest_event_leaves_the_window() -> None:
    limiter = RateLimiter(window=3600, limit=1)
    assert limiter.retry_after() == 0
    assert limiter.allow() and not limiter.allow()
    assert 3599 < limiter.retry_after() <= 3600


def test_tokens_and_signatures_are_redacted_from_request_lines() -> None:
    line = "GET /webchat/ws?token=eyJjIjoi.abc-_123&after_seq=4 HTTP/1.1"
    assert redact(line) == "GET /webchat/ws?token=[redacted]&after_seq=4 HTTP/1.1"
    assert redact("/files/66/a.png?sig=AbC_12") == "/files/66/a.png?sig=[redacted]"
    record = logging.LogRecord("aiohttp.access", logging.INFO, "", 0, '%s "%s"', ("1.2.3.4", line), None)
    record.first_request_line = line
    record.request_header = {"Referer": "https://x/?token=secret"}
    RedactSecrets().filter(record)
    assert "eyJjIjoi" not in record.getMessage() and "eyJjIjoi" not in record.first_request_line
    assert record.request_header == {"Referer": "https://x/?token=[redacted]"}


def test_limits_are_settings_with_bounds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "empty.env").write_text("")
    monkeypatch.setenv("GATEWAY_ENV_FILE", str(tmp_path / "empty.env"))  # not a developer's .env
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    webchat = WEBCHAT.read(settings)
    assert webchat.rate_max_messages == 20 and webchat.rate_window_seconds == 10
    assert webchat.max_sockets_per_conversation == 10
    assert webchat.sessions_per_ip_per_hour == 30
    assert webchat.empty_session_ttl_hours == 24 and webchat.unattached_upload_ttl_hours == 24
    assert webchat.demo_page is True and settings.trusted_proxy_networks == ()
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1,::1")
    assert [str(n) for n in load_settings().trusted_proxy_networks] == ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal")
    with pytest.raises(SettingsError) as problems:
        load_settings()
    assert "TRUSTED_PROXIES: 'proxy.internal' is not an IP address" in str(problems.value)
    monkeypatch.setenv("WEBCHAT_MAX_SOCKETS_PER_CONVERSATION", "0")
    with pytest.raises(SettingsError) as problems:
        WEBCHAT.read(settings)
    assert str(problems.value).startswith("WEBCHAT_MAX_SOCKETS_PER_CONVERSATION: Input should be greater than")
