"""The address a request came from, for per-client limits: X-Forwarded-For only from trusted proxies.

A proxy appends the address it received the request from to X-Forwarded-For, so only the right-hand
entries are trustworthy: anything to their left is whatever the client chose to send. The client is
the right-most entry that is not one of our own proxies (TRUSTED_PROXIES).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(request: web.Request, proxies: Sequence[Network]) -> IPAddress | None:
    """The client's address, or None when the peer address is unknown (e.g. a Unix socket)."""
    peer = _address(request.remote or "")
    if peer is None or not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h for line in request.headers.getall("X-Forwarded-For", ()) for h in line.split(",")]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage where a proxy would have written an address: stop at the last good hop
        client = address
        if not _trusted(address, proxies):
            break
    return client


def limit_key(address: IPAddress | None) -> str:
    """One budget per IPv4 address, one per IPv6 /64: a single host usually gets a whole /64."""
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
