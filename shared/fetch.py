"""Outbound HTTP fetches of URLs that someone else chose, behind one guard against SSRF.

A private_key_jwt client's ``jwks_uri`` (RFC 7523, RFC 7591 §2), and later metadata documents and
sector identifiers, point wherever their registrant likes: at Redis on 127.0.0.1:6379, a Docker
socket on localhost:2375, the cloud metadata service on 169.254.169.254, or a name that resolves to
a public address when registered and to a private one when fetched (DNS rebinding); so does a
client's ``backchannel_logout_uri``, to which logout tokens are POSTed. Every such fetch (or POST,
:meth:`Fetcher.post_form`) goes through :class:`Fetcher` (OWASP's SSRF Prevention Cheat Sheet;
RFC 9700 §4.15 for the redirect rule), which:

* fetches https URLs only; plain http only for a caller that allows private targets (development);
* refuses user information in the URL, and numeric hosts that are not canonical IP literals
  (``2130706433``, ``0x7f.1``, ``127.1``);
* resolves the host itself and refuses the fetch if ANY address in the answer is not public:
  loopback, private (RFC 1918, RFC 4193 ULA), shared/CGNAT (RFC 6598), link-local (169.254/16 with
  the cloud metadata services, fe80::/10), multicast, unspecified, reserved, and the other
  special-purpose ranges; IPv4 addresses embedded in IPv6 (``::ffff:127.0.0.1``, NAT64
  ``64:ff9b::/96``) are judged as the IPv4 address they carry;
* connects only to the addresses it vetted: the check is done inside the aiohttp resolver
  (:class:`GuardedResolver`), whose answer is the very list aiohttp connects to, so an answer that
  changes between check and connect is never used (aiohttp skips resolvers for IP literals, which
  are therefore checked before the request);
* follows no redirect by default; with ``max_redirects``, every hop is checked again;
* reads at most ``max_bytes`` (streamed and cut off, never buffered whole; no compressed bodies)
  within ``timeout`` seconds for the whole fetch, resolution and redirects included;
* sends no cookies and ignores proxy settings from the environment;
* fails with :class:`FetchError` (:class:`FetchRefused` when the policy refused the target) whose
  message says why. Bodies are never put into messages, and this module logs nothing.

A caller that allows private targets (``allow_private=True``: a development issuer, or a resource
server fetching the metadata of an issuer its operator configured) may reach loopback, private,
shared and other non-global unicast addresses. Link-local, multicast, unspecified and reserved
addresses are refused for every caller: no metadata document or key set lives there.

This module imports aiohttp only and changes no global state, so resource teams can import
``shared`` alone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_TIMEOUT = 5.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CONDITIONAL_HEADERS = frozenset({"if-none-match", "if-modified-since"})
USER_AGENT = "Tessera"

# What each kind of non-public address is, for messages.
KINDS = {
    "loopback": "a loopback address",
    "private": "a private-network address",
    "shared": "a shared (carrier-grade NAT) address",
    "non-global": "a special-purpose address that is not globally reachable",
    "link-local": "a link-local address",
    "multicast": "a multicast address",
    "unspecified": "an unspecified address",
    "reserved": "a reserved address",
}
# Reachable only with allow_private; every other non-public kind is refused for every caller.
PRIVATE_KINDS = frozenset({"loopback", "private", "shared", "non-global"})

_net = ipaddress.ip_network
_THIS_NETWORK = _net("0.0.0.0/8")  # "this host on this network" (RFC 1122): Linux connects it locally
_SHARED = _net("100.64.0.0/10")  # RFC 6598
_PRIVATE = (
    _net("10.0.0.0/8"),
    _net("172.16.0.0/12"),
    _net("192.168.0.0/16"),
    _net("fc00::/7"),  # unique local (RFC 4193)
    _net("fec0::/10"),  # site-local, deprecated (RFC 3879) but still routed by some networks
)
# Not globally reachable (IANA special-purpose registries), listed here as well as relying on
# ipaddress.is_global, whose answers differ between Python versions for some of these.
_NON_GLOBAL = (
    _net("192.0.0.0/24"),  # IETF protocol assignments
    _net("192.0.2.0/24"),  # documentation
    _net("192.88.99.0/24"),  # 6to4 relay anycast, deprecated
    _net("198.18.0.0/15"),  # benchmarking
    _net("198.51.100.0/24"),  # documentation
    _net("203.0.113.0/24"),  # documentation
    _net("64:ff9b:1::/48"),  # local-use NAT64
    _net("100::/64"),  # discard-only
    _net("2001::/32"),  # Teredo: carries an IPv4 address that cannot be vetted here
    _net("2001:db8::/32"),  # documentation
    _net("2002::/16"),  # 6to4: likewise
    _net("3fff::/20"),  # documentation
    _net("5f00::/16"),  # segment routing
)
_NAT64 = _net("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits are an IPv4 address
# hosts that getaddrinfo (inet_aton) reads as IPv4 although they are not dotted quads
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?", re.IGNORECASE)


class FetchError(aiohttp.ClientError):
    """A fetch that failed; the message says why. A ``ClientError``, so code written for aiohttp
    failures (``except aiohttp.ClientError``) handles these too."""


class FetchRefused(FetchError):
    """A fetch the policy refused before any connection: the URL or the address it names."""


def address_kind(address: IPAddress) -> str:
    """``"public"``, or which kind of non-public address (a key of :data:`KINDS`) this is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_kind(embedded)
    if address.is_unspecified or address in _THIS_NETWORK:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_multicast:
        return "multicast"
    if address.is_link_local:
        return "link-local"
    if address in _SHARED:
        return "shared"
    if any(address in network for network in _PRIVATE):
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global or any(address in network for network in _NON_GLOBAL):
        return "non-global"
    return "public"


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a fetch may not connect to ``address`` (e.g. ``"a loopback address"``), or ``None``."""
    kind = address_kind(address)
    if kind == "public" or (allow_private and kind in PRIVATE_KINDS):
        return None
    return KINDS[kind]


def host_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, or ``None`` for a DNS name.

    Raises :class:`FetchRefused` for numeric hosts that are not canonical IP literals
    (``2130706433``, ``0x7f.1``, ``127.1``, ``127.0.0.1.``): resolvers read them as addresses.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(bare):
        raise FetchRefused(f"{host} is not a canonical IP address")
    return None


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched answer: 200 with its body, or 304 (empty body) to a conditional request; or
    whatever non-redirect answer :meth:`Fetcher.post_form` got."""

    url: str  # the URL that answered (another than the one asked for only after a redirect)
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class GuardedResolver(AbstractResolver):
    """Resolves with ``resolver`` and hands aiohttp only vetted addresses.

    aiohttp connects to exactly the addresses a resolver returns, so checking them here leaves no
    gap between check and connect. The whole answer is refused if any address in it is refused:
    a name with one private address is not a public service.
    """

    def __init__(self, resolver: AbstractResolver, *, allow_private: bool) -> None:
        self._resolver = resolver
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._resolver.resolve(host, port, family)
        if not answers:
            raise FetchError(f"{host} has no address")
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer["host"])
            except ValueError:
                raise FetchRefused(f"{host} resolves to {answer['host']!r}, not an IP address") from None
            why = refusal(address, allow_private=self._allow_private)
            if why is not None:
                raise FetchRefused(f"{host} resolves to {address}, {why}")
        return answers

    async def close(self) -> None:
        await self._resolver.close()


class Fetcher:
    """Fetches documents from URLs someone else chose (see the module docstring for the rules).

    One per purpose and policy; it holds a connection pool, so :meth:`close` it (or use it as an
    ``async with`` block). ``resolver`` replaces the system resolver (getaddrinfo) whose answers
    are vetted, e.g. in tests.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
        max_redirects: int = 0,
        resolver: AbstractResolver | None = None,
    ) -> None:
        if max_bytes <= 0 or timeout <= 0 or max_redirects < 0:
            raise ValueError("max_bytes and timeout must be positive, max_redirects not negative")
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._names = resolver
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None

    async def fetch_json(self, url: str) -> Any:
        """The JSON document at ``url``; :class:`FetchError` if it cannot be had or is not JSON."""
        body = await self.fetch(url)
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FetchError(f"could not fetch {_shown(url)}: the body is not JSON") from None

    async def fetch(self, url: str) -> bytes:
        """The body of a 200 answer at ``url``; :class:`FetchError` (or :class:`FetchRefused`)."""
        return (await self.get(url)).body

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Fetched:
        """GET ``url`` with extra ``headers``: a 200 answer, or a 304 when ``headers`` make the
        request conditional (``If-None-Match``, ``If-Modified-Since``); anything else is a
        :class:`FetchError` (or :class:`FetchRefused`)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._get(url, CIMultiDict(headers or {}))
        except FetchRefused as error:
            raise FetchRefused(f"refused to fetch {_shown(url)}: {error}") from None
        except FetchError as error:
            raise FetchError(f"could not fetch {_shown(url)}: {error}") from None
        except TimeoutError:
            raise FetchError(f"could not fetch {_shown(url)}: no answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            raise FetchError(f"could not fetch {_shown(url)}: {_describe(error)}") from None

    async def post_form(self, url: str, form: Mapping[str, str]) -> Fetched:
        """POST ``form`` (``application/x-www-form-urlencoded``) to ``url`` under the same guard as
        :meth:`get`: vetted addresses, the size and time limits, no redirect followed. Whatever
        status the answer has is returned (the caller judges it), with its body (at most
        ``max_bytes``); a redirect is a :class:`FetchError`, as is every failure to get an answer.
        Used for notifications to a URL a client registered (Back-Channel Logout 1.0 §2.5)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._post(url, dict(form))
        except FetchRefused as error:
            raise FetchRefused(f"refused to post to {_shown(url)}: {error}") from None
        except FetchError as error:
            raise FetchError(f"could not post to {_shown(url)}: {error}") from None
        except TimeoutError:
            waited = f"no answer within {self.timeout:g} s"
            raise FetchError(f"could not post to {_shown(url)}: {waited}") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            raise FetchError(f"could not post to {_shown(url)}: {_describe(error)}") from None

    async def close(self) -> None:
        session, self._session = self._session, None
        resolver, self._resolver = self._resolver, None
        if session is not None:
            await session.close()
        if resolver is not None and self._names is None:
            await resolver.close()  # a resolver handed in belongs to the caller

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def _get(self, url: str, headers: CIMultiDict[str]) -> Fetched:
        target = self._checked(url)
        session = self._open()
        conditional = any(name.lower() in CONDITIONAL_HEADERS for name in headers)
        for _ in range(self.max_redirects + 1):
            async with session.get(target, headers=headers, allow_redirects=False) as response:
                if response.status in REDIRECT_STATUSES:
                    if not self.max_redirects:
                        raise FetchError(f"it redirects (HTTP {response.status}); redirects are not followed")
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchError(f"it redirects (HTTP {response.status}) with no Location")
                    target = self._checked(str(target.join(URL(location))))
                    continue
                if response.status == 304 and conditional:
                    return Fetched(str(target), 304, response.headers, b"")
                if response.status != 200:
                    raise FetchError(f"it answered HTTP {response.status}")
                return Fetched(str(target), 200, response.headers, await self._read(response))
        raise FetchError(f"it redirects more than {self.max_redirects} time(s)")

    async def _post(self, url: str, form: dict[str, str]) -> Fetched:
        target = self._checked(url)
        async with self._open().post(target, data=form, allow_redirects=False) as response:
            if response.status in REDIRECT_STATUSES:
                raise FetchError(f"it redirects (HTTP {response.status}); redirects are not followed")
            return Fetched(str(target), response.status, response.headers, await self._read(response))

    def _checked(self, url: str) -> URL:
        """``url`` parsed, if the policy allows fetching it; the address check of names comes later."""
        try:
            parsed = URL(url)
        except (TypeError, ValueError):
            raise FetchRefused("it is not a valid URL") from None
        if parsed.scheme != "https" and not (parsed.scheme == "http" and self.allow_private):
            raise FetchRefused("only https URLs are fetched")
        if parsed.user is not None or parsed.password is not None:
            raise FetchRefused("the URL must not carry user information")
        host = parsed.host
        if not host:
            raise FetchRefused("the URL names no host")
        address = host_address(host)
        if address is not None:  # aiohttp connects to IP literals without asking the resolver
            why = refusal(address, allow_private=self.allow_private)
            if why is not None:
                raise FetchRefused(f"{address} is {why}")
        return parsed

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._resolver = GuardedResolver(
                self._names or aiohttp.ThreadedResolver(), allow_private=self.allow_private
            )
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver, use_dns_cache=False),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={
                    "Accept": "application/json",
                    "Accept-Encoding": "identity",
                    "User-Agent": USER_AGENT,
                },
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise FetchError(f"it sent a {encoding[:20]!r}-encoded body; only identity is accepted")
        if response.content_length is not None and response.content_length > self.max_bytes:
            response.close()
            raise FetchError(
                f"the body ({response.content_length} bytes) is over the {self.max_bytes}-byte limit"
            )
        body = bytearray()
        async for chunk in response.content.iter_chunked(16 * 1024):
            body.extend(chunk)
            if len(body) > self.max_bytes:
                response.close()  # stop reading, and drop the connection rather than drain it
                raise FetchError(f"the body is over the {self.max_bytes}-byte limit")
        return bytes(body)


def _shown(url: str) -> str:
    """``url`` for messages and logs: no user information, query or fragment; at most 200 characters."""
    try:
        parts = urlsplit(url)
        shown = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    except ValueError:
        shown = "an invalid URL"
    return shown if len(shown) <= 200 else f"{shown[:197]}..."


def _describe(error: BaseException) -> str:
    """A short reason for an aiohttp or socket failure (its class and first line, capped)."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
