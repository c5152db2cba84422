"""Token exchange (RFC 8693) from the calling side: a service that was called with a user's access
token trades it at Tessera's token endpoint for a token addressed to the API it calls next (RFC
8707 ``resource``), acting for the same user. The token it was called with is never forwarded.

::

    exchange = TokenExchange(
        issuer="https://auth.example.com",
        client_id=..., client_secret=...,  # the service's own confidential client
        resource="https://photos.example.com",  # the API it calls
        session=aiohttp_session,
    )
    token = await exchange.token_for(subject_token)  # cached until shortly before it expires

The request (RFC 8693 §2.1) authenticates the service's client with HTTP Basic (RFC 6749 §2.3.1)
and sends the subject token as ``urn:ietf:params:oauth:token-type:access_token``; Tessera answers
with a token whose ``aud`` is ``resource`` and whose ``act`` claim names the service (§4.1). The
token endpoint is found in the issuer's RFC 8414 metadata, once.

Exchanged tokens are kept per subject token (by its SHA-256, never the token itself) in a bounded
LRU (:class:`shared.lru.ExpiringLRU`) until shortly before they expire, so a conversation of tool
calls costs one exchange. :meth:`TokenExchange.forget` drops one the downstream API refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from shared.jwt_validation import metadata_url
from shared.lru import ExpiringLRU
from shared.token_cache import fingerprint

log = logging.getLogger("tessera.token_exchange")

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN, not a secret


class ExchangeFailed(Exception):
    """The exchange was refused (``error`` is the RFC 6749 §5.2 / RFC 8693 §2.2.2 code), or the
    authorization server could not be reached or answered nonsense (``server_error``)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class Exchanged:
    """A token issued by an exchange (RFC 8693 §2.2.1)."""

    access_token: str = field(repr=False)
    expires_in: int | None  # None: not said (RFC 8693 §2.2.1 only recommends it), so never cached
    scope: str | None


@dataclass
class TokenExchange:
    """Exchanges subject tokens for tokens to ``resource``, as the client ``client_id``."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    resource: str
    session: aiohttp.ClientSession = field(repr=False)
    scope: str | None = None  # None: what the subject token has that belongs to the resource
    token_endpoint: str | None = None  # None: found in the issuer's RFC 8414 metadata
    cache_size: int = 10_000
    margin: float = 30.0  # seconds before expiry when a cached token is no longer handed out
    timeout: float = 10.0
    clock: Callable[[], float] = time.monotonic
    exchanges: int = field(default=0, init=False)  # requests made (tests and metrics read it)
    _cache: ExpiringLRU[bytes, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cache = ExpiringLRU(self.cache_size, clock=self.clock)

    async def token_for(self, subject_token: str) -> str:
        """An access token for :attr:`resource`, acting for ``subject_token``'s user (cached)."""
        key = fingerprint(subject_token)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        exchanged = await self.exchange(subject_token)
        if exchanged.expires_in is not None:
            # kept until shortly before it expires: a token handed out must still be good on arrival
            lifetime = exchanged.expires_in
            self._cache.put(
                key, exchanged.access_token, until=self.clock() + lifetime - min(self.margin, lifetime / 2)
            )
        return exchanged.access_token

    def forget(self, subject_token: str) -> None:
        """Drop the token exchanged for ``subject_token`` (the downstream API refused it)."""
        self._cache.pop(fingerprint(subject_token))

    async def exchange(self, subject_token: str) -> Exchanged:
        """One token-exchange request (RFC 8693 §2.1), uncached."""
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "resource": self.resource,
        }
        if self.scope is not None:
            form["scope"] = self.scope
        endpoint = await self._endpoint()
        self.exchanges += 1
        try:
            async with self.session.post(
                endpoint,
                data=form,
                headers={
                    # RFC 6749 §2.3.1: both parts form-encoded before the Basic encoding
                    "Authorization": aiohttp.encode_basic_auth(
                        quote(self.client_id, safe=""), quote(self.client_secret, safe="")
                    ),
                    "Accept": "application/json",
                },
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                body = await _json(response)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("token exchange at %s failed: %s", endpoint, _described(exc))
            raise ExchangeFailed("server_error", "the authorization server could not be reached") from None
        if status != 200:
            error, description = body.get("error"), body.get("error_description")
            code = error if isinstance(error, str) else f"http_{status}"
            text = description if isinstance(description, str) else None
            log.warning("token exchange refused (%d %s): %s", status, code, text or "no description")
            raise ExchangeFailed(code, text)
        return _exchanged(body)

    async def _endpoint(self) -> str:
        if self.token_endpoint is None:
            url = metadata_url(self.issuer)
            try:
                async with self.session.get(
                    url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=self.timeout)
                ) as response:
                    metadata = await _json(response) if response.status == 200 else {}
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("could not read the metadata of %s: %s", self.issuer, _described(exc))
                raise ExchangeFailed(
                    "server_error", "the authorization server could not be reached"
                ) from None
            endpoint = metadata.get("token_endpoint")
            if metadata.get("issuer") != self.issuer or not isinstance(endpoint, str):
                raise ExchangeFailed("server_error", f"{url} names no token_endpoint for {self.issuer}")
            self.token_endpoint = endpoint
        return self.token_endpoint


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The JSON object of a response, or ``{}`` if it is not one."""
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return body if isinstance(body, dict) else {}


def _exchanged(body: dict[str, Any]) -> Exchanged:
    """RFC 8693 §2.2.1's answer, checked: a bearer access token, of the type asked for."""
    token, expires_in, scope = body.get("access_token"), body.get("expires_in"), body.get("scope")
    if (
        not isinstance(token, str)
        or not token
        or body.get("issued_token_type") != ACCESS_TOKEN_TYPE
        or str(body.get("token_type", "")).lower() != "bearer"
    ):
        raise ExchangeFailed("server_error", "the token-exchange answer is not a bearer access token")
    lifetime = expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool) else None
    return Exchanged(
        token,
        lifetime if lifetime is not None and lifetime > 0 else None,
        scope if isinstance(scope, str) else None,
    )


def _described(error: BaseException) -> str:
    """A failed call in words for the log: the error's kind and, for an HTTP answer, its status and
    reason — never its ``repr``, which for aiohttp's errors holds the request's headers, and so the
    client's credentials (``Authorization: Basic ...``)."""
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{type(error).__name__} {error.status} {error.message}"
    return type(error).__name__
