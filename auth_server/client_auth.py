"""Client authentication at the token, revocation and introspection endpoints.

RFC 6749 §2.3 (``client_secret_basic`` with §2.3.1's form-encoding, ``client_secret_post``),
``none`` for public clients, and ``private_key_jwt`` (RFC 7523 §2.2, OpenID Connect Core §9).

The method a client uses must be the one it registered: a confidential client cannot fall back to
sending only its id, and a ``client_secret_basic`` client cannot post its secret in the body. Every
failure is the same ``invalid_client`` (401), so a caller learns nothing about which part failed
or whether the client exists.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import jwt

from auth_server import paths, profiles
from auth_server.clients import Client
from auth_server.crypto import digest, digest_matches, hexdigest
from auth_server.registry import Registry
from auth_server.settings import Settings
from shared.errors import InvalidClient, InvalidRequest
from shared.http import has_control_characters

BAD_CREDENTIALS = "Client authentication failed: unknown client or wrong credentials."
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS256", "PS256", "ES256", "EdDSA")  # never none, never HMAC
MAX_ASSERTION_LIFETIME = 600  # seconds; "exp in the near future"
LEEWAY = 30
_NOTHING = digest("")

log = logging.getLogger("tessera.client_auth")


class ClientRefused(InvalidClient):
    """The generic ``invalid_client`` answer, with the reason only the server's log gets."""

    def __init__(self, reason: str) -> None:
        super().__init__(BAD_CREDENTIALS)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Credentials:
    method: str
    client_id: str
    secret: str | None = None
    assertion: str | None = None


def parse_basic(header: str) -> tuple[str, str]:
    """``Authorization: Basic`` with RFC 6749 §2.3.1's form-encoding of id and secret."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise InvalidClient("The Authorization header must use the Basic scheme.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidClient("The Basic credentials are not valid base64 of UTF-8 text.") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise InvalidClient("The Basic credentials must be client_id:client_secret.")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if has_control_characters(client_id) or has_control_characters(secret):
        raise InvalidClient("The Basic credentials contain control characters.")
    return client_id, secret


def credentials(headers: Mapping[str, str], form: Mapping[str, str]) -> Credentials:
    """Which method the request uses, and its credentials; exactly one method is allowed."""
    authorization = headers.get("Authorization")
    posted_id, posted_secret = form.get("client_id"), form.get("client_secret")
    assertion_type, assertion = form.get("client_assertion_type"), form.get("client_assertion")
    used = sum(x is not None for x in (authorization, posted_secret, assertion))
    if used > 1:
        raise InvalidRequest("Use exactly one client authentication method.")
    if authorization is not None:
        client_id, secret = parse_basic(authorization)
        if posted_id is not None and posted_id != client_id:
            raise InvalidRequest("client_id in the body differs from the authenticated client.")
        return Credentials("client_secret_basic", client_id, secret=secret)
    if assertion is not None or assertion_type is not None:
        if assertion_type != JWT_BEARER or assertion is None:
            raise InvalidClient(f"client_assertion_type must be {JWT_BEARER} with a client_assertion.")
        try:
            claimed = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidClient("client_assertion is not a well-formed JWT.") from None
        subject = claimed.get("sub")
        if (
            not isinstance(subject, str)
            or has_control_characters(subject)
            or posted_id not in (None, subject)
        ):
            raise ClientRefused("client_assertion's sub is missing or differs from client_id")
        return Credentials("private_key_jwt", subject, assertion=assertion)
    if posted_id is not None:
        if posted_secret is not None:
            return Credentials("client_secret_post", posted_id, secret=posted_secret)
        return Credentials("none", posted_id)
    raise InvalidClient("Client authentication is required.")


async def authenticate_client(
    registry: Registry, headers: Mapping[str, str], form: Mapping[str, str], endpoint: str
) -> Client:
    """The authenticated client; ``endpoint`` is the URL called (a valid assertion audience).

    Every refusal is logged with its reason, the client id and the method used (never a secret or
    an assertion), so an operator can tell a client why; the client itself gets the generic answer.
    """
    creds: Credentials | None = None
    try:
        creds = credentials(headers, form)
        return await _authenticate(registry, creds, endpoint)
    except InvalidClient as error:
        reason = error.reason if isinstance(error, ClientRefused) else error.description
        client_id = _loggable(creds.client_id if creds is not None else form.get("client_id"))
        method = creds.method if creds is not None else _attempted_method(headers, form)
        log.info(  # a client's mistake, not the server's: INFO, as the access log
            "invalid_client at %s: %s (client_id %r, method %s)",
            endpoint,
            reason,
            client_id,
            method,
            extra={"client_id": client_id, "auth_method": method, "reason": reason},
        )
        raise


def _loggable(client_id: str | None, limit: int = 80) -> str | None:
    """A client id as the log keeps it: made-up ids can be any length, and each refusal is logged."""
    if client_id is None or len(client_id) <= limit:
        return client_id
    return f"{client_id[:limit]}… ({len(client_id)} characters)"


def _attempted_method(headers: Mapping[str, str], form: Mapping[str, str]) -> str:
    """The method a request whose credentials could not be read tried to use."""
    if headers.get("Authorization") is not None:
        return "client_secret_basic"
    if form.get("client_assertion") is not None or form.get("client_assertion_type") is not None:
        return "private_key_jwt"
    return "client_secret_post" if form.get("client_secret") is not None else "none"


async def _authenticate(registry: Registry, creds: Credentials, endpoint: str) -> Client:
    client = await registry.clients.get(creds.client_id)
    if client is None:
        digest_matches(creds.secret or "", _NOTHING)  # the same work as a real check
        raise ClientRefused("unknown client_id")
    if creds.method != client.token_endpoint_auth_method:
        raise ClientRefused(
            f"the client authenticated with {creds.method} but is registered for"
            f" {client.token_endpoint_auth_method}"
        )
    if creds.method in ("client_secret_basic", "client_secret_post"):
        if creds.secret is None or client.secret_hash is None:
            raise ClientRefused("the client has no secret to check")
        if not digest_matches(creds.secret, client.secret_hash) and not _previous_secret(
            client, creds.secret
        ):
            raise ClientRefused("wrong client secret")
    elif creds.method == "private_key_jwt":
        assert creds.assertion is not None
        await _verify_assertion(registry, client, creds.assertion, endpoint)
    return client


def _previous_secret(client: Client, secret: str) -> bool:
    """Whether ``secret`` is the client's secret before its last rotation, still in its overlap."""
    if client.previous_secret_hash is None or client.previous_secret_expires_at is None:
        return False
    return client.previous_secret_expires_at > datetime.now(UTC) and digest_matches(
        secret, client.previous_secret_hash
    )


def audiences(settings: Settings, endpoint: str) -> tuple[str, ...]:
    """The ``aud`` an assertion may carry: the issuer, as a single string (the audience-injection fix
    of draft-ietf-oauth-rfc7523bis: an assertion made for another server, or listing several
    audiences, is never accepted). ``TESSERA_ASSERTION_AUDIENCE_COMPAT=on`` also accepts the token
    endpoint and the endpoint called, for clients built before that fix — still a single string."""
    if settings.assertion_audience_compat:
        return (settings.issuer, settings.endpoint(paths.TOKEN), endpoint)
    return (settings.issuer,)


async def _verify_assertion(registry: Registry, client: Client, assertion: str, endpoint: str) -> None:
    """RFC 7523 §3: signature by a registered key, iss = sub = client_id, our audience, short-lived, once."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise InvalidClient("client_assertion is not a well-formed JWT.") from None
    if "crit" in header:  # RFC 7515 §4.1.11: Tessera understands no extension, so none may be critical
        raise InvalidClient("client_assertion has a critical header extension that is not understood.")
    alg = header.get("alg")
    algorithms = profiles.assertion_algorithms(client, ASSERTION_ALGS)  # FAPI 2.0: no RS256
    if alg not in algorithms:
        raise InvalidClient(f"client_assertion must be signed with one of {', '.join(algorithms)}.")
    key = await registry.client_keys.find(client, header.get("kid"), alg)
    if key is None:
        raise ClientRefused(f"no registered key of the client matches the assertion's kid and alg {alg}")
    settings = registry.settings
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key,
            algorithms=[alg],
            issuer=client.client_id,
            leeway=LEEWAY,
            options={"require": ["iss", "sub", "aud", "exp", "jti"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise ClientRefused("client_assertion has expired") from None
    except jwt.InvalidSignatureError:
        raise ClientRefused("client_assertion's signature does not verify with the client's key") from None
    except jwt.PyJWTError as error:
        # PyJWT's messages name claims, never their values or the token
        raise ClientRefused(f"client_assertion is not valid: {error}") from None
    accepted = profiles.assertion_audiences(client, audiences(settings, endpoint), settings.issuer)
    if claims["aud"] not in accepted:  # a FAPI 2.0 client's: the issuer alone, whatever the compat setting
        raise ClientRefused("client_assertion's aud is not this server's issuer (a single string)")
    if claims["sub"] != client.client_id or not isinstance(claims["jti"], str):
        raise ClientRefused("client_assertion's sub differs from its iss, or its jti is not a string")
    remaining = int(claims["exp"]) - int(time.time())
    if remaining > MAX_ASSERTION_LIFETIME:
        raise InvalidClient(f"client_assertion must expire within {MAX_ASSERTION_LIFETIME} seconds.")
    jti_key = f"{client.client_id}:{hexdigest(claims['jti'])}"
    if not await registry.assertion_jtis.first_use(jti_key, max(remaining, 0) + LEEWAY):
        raise InvalidClient("client_assertion was already used (jti replay).")
