"""Security profiles a client is registered under: today one, ``fapi2``, the FAPI 2.0 Security
Profile (OpenID Foundation, Final; the threats it answers are its Attacker Model's).

A profile is a set of rules for one client, written here once, which registration and the flows
read; no grant or endpoint keeps a flag of its own for it:

* **registration** (``registration.validate``: :func:`registration_problem`) refuses a client that
  cannot meet them, and :func:`applied` fills in what they imply before it is stored, so that its
  RFC 7591 metadata says what holds (``require_pushed_authorization_requests``,
  ``dpop_bound_access_tokens``, ``response_types`` ``code``, ES256 ID tokens). ``tessera client
  create|update --profile fapi2``, the registration document's ``tessera_profile``, the admin API
  and dynamic registration (RFC 7591, and RFC 7592 updates, which must keep it) all go through it;
* **/authorize and the PAR endpoint** (``authorization/checks.py``): pushed requests only
  (:func:`requires_par`), and :func:`check_authorization_request` (``code`` only, in the query,
  ``redirect_uri`` named, a PKCE challenge);
* **the token endpoint**: a DPoP proof with every request (:func:`requires_dpop`, ``dpop.py``), of
  an algorithm of §5.4 (:func:`check_proof_algorithm`); client assertions of those algorithms, for
  the issuer alone (:func:`assertion_algorithms`, :func:`assertion_audiences`, ``client_auth.py``);
* **the grants**: codes that live at most 60 s (:func:`code_lifetime`,
  ``grants/authorization_code.py``), and
  refresh tokens that do not rotate (§5.3.2.1 item 9: they are bound to the client's
  ``private_key_jwt`` authentication and its DPoP key already; :func:`rotates_refresh_tokens`,
  ``grants/refresh_token.py``).

A profile only ever tightens what a client gets, so a client that registers itself (RFC 7591) may
ask for one: nothing it could gain needs an operator's say. A client ID metadata document may not
(``client_documents.py``): the stored client follows its document, and a later document could break
the rules the profile holds it to. The README ("FAPI 2.0 for a client") lists every
authorization-server clause of the profile and whether Tessera meets it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from auth_server.clients import Client, canonical_response_type
from shared.dpop import InvalidDPoPProof
from shared.errors import InvalidRequest, UnauthorizedClient

if TYPE_CHECKING:  # registration imports this module
    from auth_server.registration import ClientMetadata

FAPI2 = "fapi2"


@dataclass(frozen=True, slots=True)
class Profile:
    """What a profile requires of its clients (clause numbers: FAPI 2.0 Security Profile, Final)."""

    name: str
    title: str
    # §5.3.2.1 items 3, 6: confidential clients, authenticated by MTLS or private_key_jwt (Tessera
    # offers no MTLS)
    auth_methods: tuple[str, ...]
    # §5.3.2.1 item 2 (the password grant); §5.3.2.2 item 1 (response_type code: no implicit grant)
    forbidden_grant_types: tuple[str, ...]
    # §5.3.2.2 item 1: no token and no ID token in the front channel (implicit, hybrid)
    response_types: tuple[str, ...]
    # the code in the query, as the profile's analysis has it: no fragment, no form_post (Tessera's rule)
    response_modes: tuple[str, ...]
    # §5.4: the algorithms of the JWTs made or read for the client (never none, never HMAC)
    algorithms: tuple[str, ...]
    # the one of them Tessera signs ID tokens (and signed userinfo) with
    id_token_algorithm: str
    # §5.3.2.1 item 11: at most 60 seconds
    code_lifetime: int
    # §5.3.2.1 item 9: no refresh-token rotation except in extraordinary circumstances
    rotates_refresh_tokens: bool
    # §5.4 item 2: RSA keys of at least this many bits
    min_rsa_bits: int


PROFILES: dict[str, Profile] = {
    FAPI2: Profile(
        name=FAPI2,
        title="FAPI 2.0",
        auth_methods=("private_key_jwt",),
        forbidden_grant_types=("password", "implicit"),
        response_types=("code",),
        response_modes=("query",),
        algorithms=("PS256", "ES256", "EdDSA"),
        id_token_algorithm="ES256",  # noqa: S106 - an algorithm name
        code_lifetime=60,
        rotates_refresh_tokens=False,
        min_rsa_bits=2048,
    )
}


def of(client: Client) -> Profile | None:
    """The client's profile; ``None`` when it has none (the database allows only known names)."""
    return None if client.tessera_profile is None else PROFILES[client.tessera_profile]


# --- registration ------------------------------------------------------------------------------


def applied(metadata: ClientMetadata) -> ClientMetadata:
    """``metadata`` with what its profile implies filled in (unchanged without a profile): its
    requests pushed first (RFC 9126 §6; §5.3.2.2 items 2-3), its tokens DPoP-bound (RFC 9449 §5.2;
    §5.3.2.1 items 4-5), ``code`` its only response type (when it has the code grant and named
    none) and ES256 its ID tokens' algorithm (when it named the default, RS256, which §5.4 does
    not allow). What it asked for otherwise is left for :func:`registration_problem` to judge."""
    profile = PROFILES.get(metadata.tessera_profile or "")
    if profile is None:
        return metadata
    changes: dict[str, Any] = {
        "require_pushed_authorization_requests": True,
        "dpop_bound_access_tokens": True,
    }
    if metadata.response_types is None and "authorization_code" in metadata.grant_types:
        changes["response_types"] = profile.response_types
    if metadata.id_token_signed_response_alg == "RS256":  # noqa: S105 - an algorithm name
        changes["id_token_signed_response_alg"] = profile.id_token_algorithm
    return dataclasses.replace(metadata, **changes)


def registration_problem(metadata: ClientMetadata) -> str | None:
    """The first rule of its profile a registration (after :func:`applied`) breaks; ``None`` when
    it has no profile or breaks none."""
    name = metadata.tessera_profile
    if name is None:
        return None
    profile = PROFILES.get(name)
    if profile is None:
        return f"tessera_profile must be one of {', '.join(PROFILES)}, not {name!r}"
    title = f"a {profile.title} client"
    if metadata.token_endpoint_auth_method not in profile.auth_methods:
        return (
            f"{title} is confidential and authenticates with {' or '.join(profile.auth_methods)}"
            " (FAPI 2.0 §5.3.2.1): register its public keys (jwks or jwks_uri), not a secret"
        )
    forbidden = [grant for grant in metadata.grant_types if grant in profile.forbidden_grant_types]
    if forbidden:
        return (
            f"{title} may not use the {', '.join(forbidden)} grant (FAPI 2.0 §5.3.2.1, §5.3.2.2:"
            " no password grant, no token from the authorization endpoint)"
        )
    others = sorted(
        {canonical_response_type(value) for value in metadata.response_types or ()}
        - set(profile.response_types)
    )
    if others:
        return (
            f"{title} may use the response type {' '.join(profile.response_types)} alone, not"
            f" {', '.join(others)} (FAPI 2.0 §5.3.2.2: no token or ID token in the front channel)"
        )
    if not metadata.require_pkce:
        return f"{title} must use PKCE with S256 (FAPI 2.0 §5.3.2.2)"
    if not metadata.require_pushed_authorization_requests:
        return f"{title} must push its authorization requests (FAPI 2.0 §5.3.2.2, RFC 9126)"
    if not metadata.dpop_bound_access_tokens:
        return f"{title}'s access tokens must be DPoP-bound (FAPI 2.0 §5.3.2.1, RFC 9449)"
    for field in ("id_token_signed_response_alg", "userinfo_signed_response_alg"):
        alg = getattr(metadata, field)
        if alg is not None and alg not in profile.algorithms:
            return (
                f"{field}: {title}'s signed responses use {profile.id_token_algorithm}"
                f" (FAPI 2.0 §5.4 allows {', '.join(profile.algorithms)}), not {alg}"
            )
    short = _short_rsa_key(metadata.jwks, profile.min_rsa_bits)
    if short is not None:
        return f"{title}'s RSA keys must have at least {profile.min_rsa_bits} bits (FAPI 2.0 §5.4): {short}"
    return None


def _short_rsa_key(jwks: dict[str, Any] | None, min_bits: int) -> str | None:
    """The ``kid`` (or position) of an RSA key in ``jwks`` shorter than ``min_bits``."""
    for position, key in enumerate((jwks or {}).get("keys") or ()):
        if not isinstance(key, dict) or key.get("kty") != "RSA":
            continue
        modulus = key.get("n")
        raw = b""
        # a modulus that does not decode counts as none: such a key verifies nothing anyway
        if isinstance(modulus, str):
            with contextlib.suppress(binascii.Error, ValueError):
                raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
        if int.from_bytes(raw, "big").bit_length() < min_bits:
            return f"key {key.get('kid', position)!r}"
    return None


# --- /authorize and the PAR endpoint ------------------------------------------------------------


def requires_par(client: Client) -> bool:
    """Whether the client's authorization requests must come through the PAR endpoint (RFC 9126
    §6): it registered so, or its profile says so (FAPI 2.0 §5.3.2.2 item 3)."""
    return client.require_pushed_authorization_requests or of(client) is not None


def check_authorization_request(
    client: Client,
    *,
    response_type: str,
    response_mode: str | None,
    redirect_uri_given: bool,
    code_challenge: str | None,
) -> None:
    """The rules of the client's profile for an authorization request (pushed, or at /authorize);
    nothing without a profile."""
    profile = of(client)
    if profile is None:
        return
    if response_type not in profile.response_types:
        raise UnauthorizedClient(
            f"A {profile.title} client may use response_type {' '.join(profile.response_types)} alone"
            " (FAPI 2.0 §5.3.2.2)."
        )
    if response_mode is not None and response_mode not in profile.response_modes:
        raise InvalidRequest(
            f"A {profile.title} client's response comes in the query: response_mode"
            f" {' or '.join(profile.response_modes)} only."
        )
    if not redirect_uri_given:
        raise InvalidRequest(
            f"A {profile.title} client must name its redirect_uri in the request (FAPI 2.0 §5.3.2.2)."
        )
    if code_challenge is None:
        raise InvalidRequest(
            f"A {profile.title} client must use PKCE: send code_challenge with method S256"
            " (FAPI 2.0 §5.3.2.2)."
        )


# --- the token endpoint and client authentication ----------------------------------------------


def requires_dpop(client: Client) -> bool:
    """Whether every token request of the client must carry a DPoP proof (RFC 9449 §5.2): it
    registered so, or its profile says so (FAPI 2.0 §5.3.2.1 items 4-5: sender-constrained
    access tokens only)."""
    return client.dpop_bound_access_tokens or of(client) is not None


def check_proof_algorithm(client: Client, alg: str | None) -> None:
    """A DPoP proof of the client signed with an algorithm its profile allows (FAPI 2.0 §5.4)."""
    profile = of(client)
    if profile is not None and alg not in profile.algorithms:
        raise InvalidDPoPProof(
            f"A {profile.title} client signs its DPoP proofs with {', '.join(profile.algorithms)}"
            f" (FAPI 2.0 §5.4), not {alg}."
        )


def assertion_algorithms(client: Client, algorithms: tuple[str, ...]) -> tuple[str, ...]:
    """The algorithms of ``algorithms`` the client's assertions may be signed with (FAPI 2.0 §5.4)."""
    profile = of(client)
    return algorithms if profile is None else tuple(a for a in algorithms if a in profile.algorithms)


def assertion_audiences(client: Client, audiences: tuple[str, ...], issuer: str) -> tuple[str, ...]:
    """The ``aud`` values a client's assertion may carry: ``audiences``, or the issuer alone for a
    client under a profile, whatever ``TESSERA_ASSERTION_AUDIENCE_COMPAT`` says (FAPI 2.0 §5.3.2.1
    item 8: its issuer identifier alone, as a string)."""
    return audiences if of(client) is None else (issuer,)


# --- the grants ----------------------------------------------------------------------------------


def code_lifetime(client: Client | None, default: int) -> int:
    """How long the client's authorization codes live: ``default`` (``TESSERA_CODE_TTL``), at most
    its profile's (FAPI 2.0 §5.3.2.1 item 11: 60 seconds)."""
    profile = None if client is None else of(client)
    return default if profile is None else min(default, profile.code_lifetime)


def rotates_refresh_tokens(client: Client) -> bool:
    """Whether the client's refresh tokens rotate at each use (RFC 9700 §4.14.2, every client's
    default), or stay the same (FAPI 2.0: they are sender-constrained instead)."""
    profile = of(client)
    return True if profile is None else profile.rotates_refresh_tokens
