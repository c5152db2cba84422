"""Request parsing shared by every endpoint: strict form and query handling.

RFC 6749 §3.1/§3.2: parameters must not repeat, and a parameter sent without a value is treated as
omitted. Bodies are ``application/x-www-form-urlencoded`` UTF-8; anything else is ``invalid_request``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import parse_qsl

from aiohttp import web

from shared.errors import InvalidRequest, PayloadTooLarge

FORM = "application/x-www-form-urlencoded"


def has_control_characters(value: str) -> bool:
    """NUL and the other C0 controls (tab aside) have no place in any OAuth parameter."""
    return any(ord(c) < 0x20 and c != "\t" for c in value) or "\x7f" in value


def _single_valued(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise InvalidRequest(f"Parameter {name!r} is repeated.")
        if has_control_characters(name) or has_control_characters(value):
            raise InvalidRequest("Parameters must not contain control characters.")
        seen.add(name)
        if value != "":
            out[name] = value
    return out


async def read_form(request: web.Request) -> dict[str, str]:
    if request.content_type != FORM:
        raise InvalidRequest(f"The request body must be {FORM}.")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body is larger than {request.client_max_size} bytes.") from None
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The request body is not valid UTF-8 form encoding.") from None
    return _single_valued(pairs)


def query_params(request: web.Request) -> dict[str, str]:
    return _single_valued(request.query.items())


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)


def parse_networks(value: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR blocks; ValueError on anything else."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()
    )


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_ip(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest untrusted
    hop of ``X-Forwarded-For`` (read right to left). From anyone else the header is ignored."""
    peer = request.remote or "unknown"
    proxies: tuple[Network, ...] = request.app.get(TRUSTED_PROXIES, ())
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for header in request.headers.getall("X-Forwarded-For", []) for h in header.split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a garbled hop: fall back to what we know
    return peer
