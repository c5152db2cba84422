"""Request parsing shared by every endpoint: strict form and query handling.

RFC 6749 §3.1/§3.2: parameters must not repeat, and a parameter sent without a value is treated as
omitted. Bodies are ``application/x-www-form-urlencoded`` UTF-8; anything else is ``invalid_request``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import re
from collections.abc import AsyncIterator, Iterable
from urllib.parse import parse_qsl

from aiohttp import web

from shared.errors import InvalidRequest, PayloadTooLarge, RequestTimeout

log = logging.getLogger("tessera.http")

FORM = "application/x-www-form-urlencoded"
# Seconds a request body may take to arrive; each app sets its own (TESSERA_BODY_TIMEOUT).
BODY_TIMEOUT = web.AppKey("body_timeout", float)


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def has_control_characters(value: str) -> bool:
    """NUL and the other C0 controls (tab aside) have no place in any OAuth parameter."""
    return _CONTROL.search(value) is not None


def single_valued(
    pairs: Iterable[tuple[str, str]], *, repeatable: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Each parameter once, without control characters; the ``repeatable`` ones are checked for
    control characters but left out (the caller reads every value of them itself)."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise InvalidRequest(f"Parameter {name!r} is repeated.")
        if has_control_characters(name) or has_control_characters(value):
            raise InvalidRequest("Parameters must not contain control characters.")
        if name in repeatable:
            continue
        seen.add(name)
        if value != "":
            out[name] = value
    return out


@contextlib.asynccontextmanager
async def body_deadline(request: web.Request) -> AsyncIterator[None]:
    """Bound the time a body may take to arrive: a client trickling bytes gets 408, not a worker."""
    try:
        async with asyncio.timeout(request.app.get(BODY_TIMEOUT, 10.0)):
            yield
    except TimeoutError:
        raise RequestTimeout("The request body did not arrive in time.") from None


async def read_form(request: web.Request) -> dict[str, str]:
    return single_valued(await read_form_pairs(request))


async def read_form_pairs(request: web.Request) -> list[tuple[str, str]]:
    """The form's parameters in order, a repeated one repeated (:func:`read_form` refuses that):
    for an endpoint where one parameter may repeat (RFC 8707 ``resource`` at the PAR endpoint)."""
    if request.content_type != FORM:
        raise InvalidRequest(f"The request body must be {FORM}.")
    try:
        if request.content.is_eof():  # the whole body came with the headers: nothing to wait for
            body = await request.read()
        else:
            async with body_deadline(request):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body is larger than {request.client_max_size} bytes.") from None
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The request body is not valid UTF-8 form encoding.") from None
    return pairs


def query_params(request: web.Request) -> dict[str, str]:
    return single_valued(request.query.items())


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


@functools.lru_cache(maxsize=4096)
def address_bucket(address: str) -> str:
    """Whose budget an address spends in per-address limits and lockouts: an IPv4 address itself,
    an IPv6 address's /64 (one subscriber usually holds a whole /64, RFC 6177, and picks addresses
    in it at will), an IPv4-mapped IPv6 address as the IPv4 address it is.

    Remembered for the last 4,096 addresses: every request of the token endpoint asks (its
    per-address rate limit), and parsing an address each time cost 3% of a token (issue 19)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class _UntrustedForwarding:
    """Says once per process that a peer sends X-Forwarded-For without being trusted: behind a
    gateway that is not in TESSERA_TRUSTED_PROXIES, every client shares the gateway's address in
    rate limits and lockouts (and in the audit trail)."""

    warned = False

    def warn(self, peer: str) -> None:
        self.warned = True
        log.warning(
            "X-Forwarded-For arrives from %s, which is not a trusted proxy: every client behind it shares"
            " its address in rate limits and lockouts. If %s is your gateway, add it to"
            " TESSERA_TRUSTED_PROXIES (see deploy/README.md).",
            peer,
            peer,
        )


_untrusted_forwarding = _UntrustedForwarding()


def client_ip(request: web.Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest untrusted
    hop of ``X-Forwarded-For`` (read right to left). From anyone else the header is ignored."""
    peer = request.remote or "unknown"
    proxies: tuple[Network, ...] = request.app.get(TRUSTED_PROXIES, ())
    if not proxies or not _trusted(peer, proxies):
        if not _untrusted_forwarding.warned and "X-Forwarded-For" in request.headers:
            _untrusted_forwarding.warn(peer)
        return peer
    hops = [h.strip() for header in request.headers.getall("X-Forwarded-For", []) for h in header.split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a garbled hop: fall back to what we know
    return peer
