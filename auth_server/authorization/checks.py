"""The authorization request's checks, one per rule, run in order (RFC 6749 §3.1, §4.1.1, §4.2.1;
RFC 7636 §4.3-4.4; RFC 9207; RFC 9700 §2.1, §4.1; OpenID Connect Core §3.1.2.1-3.1.2.2, §5.5, §6).

    CHECKS = request URI → client → redirect URI → response mode → pushed if required → parameters
             → unsupported → response type → profile → PKCE → DPoP key → state → scope → resource → nonce
             → prompt → max_age → claims → acr_values → display → id_token_hint

Each check reads the request's parameters and what the checks before it established, then
establishes one thing more or raises an :class:`~shared.errors.OAuthError`. Order matters: the
client and its exact redirect URI come first, and until the response mode has fixed where and how
answers go, an error is shown as a page, never redirected (no open redirector, RFC 9700 §4.1.3;
the caller decides with :attr:`Checking.redirection`). The response mode is fixed before the
response type is checked so that even an unsupported response type's error goes back, in the
mode that response type would have used. A new rule (a PAR request_uri, a resource indicator) is
one more check in the list. The PAR endpoint (RFC 9126) runs the same checks on what a client
pushes (:attr:`Checking.at_par_endpoint`), and ``/authorize`` runs them again on what a
``request_uri`` names (:func:`check_request_uri`). OpenID Connect's parameters are checked on every
request that has them; what they ask of the sign-in (prompt, max_age, the hinted user) the endpoint
acts on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from multidict import MultiDict, MultiMapping

from auth_server import client_documents, pkce, profiles, resources, scopes
from auth_server.authorization.request import AuthorizationRequest
from auth_server.authorization.response_modes import Redirection, asked_mode, default_mode
from auth_server.clients import Client, canonical_response_type
from auth_server.grants import GRANTS
from auth_server.oidc.claims import ClaimsRequest
from auth_server.oidc.hints import verify_hint
from auth_server.registry import Registry
from auth_server.stores.pushed_requests import is_pushed
from shared import dpop
from shared.errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from shared.http import has_control_characters, single_valued

PROMPTS = ("none", "login", "consent", "select_account")
# parameters that may be repeated (read with getall, never from Checking.params)
REPEATABLE = frozenset({"resource"})
DISPLAYS = ("page", "popup", "touch", "wap")


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


class RegistrationNotSupported(OAuthError):
    error = "registration_not_supported"


class InvalidRequestUri(OAuthError):
    """RFC 9101 §7: the ``request_uri`` names nothing usable (RFC 9126 §4: an expired one too)."""

    error = "invalid_request_uri"


# OpenID Connect Core §3.1.2.6: request objects (§6) and self-registration parameters are not offered
_UNSUPPORTED: dict[str, type[OAuthError]] = {
    "request": RequestNotSupported,
    "request_uri": RequestUriNotSupported,
    "registration": RegistrationNotSupported,
}


@dataclass(slots=True)
class Checking:
    """An authorization request while its checks run: the HTTP request, and what each check established."""

    registry: Registry
    # the request's parameters: its query (GET), or its form (POST, OpenID Connect Core §3.1.2.1)
    query: MultiMapping[str]
    # at the PAR endpoint (RFC 9126 §2): the authenticated client's parameters, checked to be kept
    at_par_endpoint: bool = False
    # where the request came from (per-address budgets, e.g. of client ID metadata document fetches)
    client_ip: str = ""
    pushed: bool = False  # check_request_uri: the parameters are those a request_uri names
    client: Client | None = None  # check_client
    redirect_uri: str | None = None  # check_redirect_uri
    redirect_uri_given: bool = True  # check_redirect_uri: False when the only registered one is used
    redirection: Redirection | None = None  # check_response_mode: from here on, errors are redirected
    params: dict[str, str] = field(default_factory=dict)  # check_parameters: each named once
    response_type: str | None = None  # check_response_type: its canonical form
    code_challenge: str | None = None  # check_pkce
    dpop_jkt: str | None = None  # check_dpop_jkt: the DPoP key the code is bound to (RFC 9449 §10)
    scope: tuple[str, ...] = ()  # check_scope, widened by check_claims
    resources: tuple[str, ...] = ()  # check_resource
    prompt: frozenset[str] = frozenset()  # check_prompt
    max_age: int | None = None  # check_max_age: the request's, else the client's default_max_age
    acr_values: tuple[str, ...] = ()  # check_acr_values: the request's, else the client's default
    claims: ClaimsRequest | None = None  # check_claims
    hinted_subject: str | None = None  # check_id_token_hint: the user as the client sees them

    def request(self) -> AuthorizationRequest:
        """The request every check has passed."""
        client, redirection = _established(self.client), _established(self.redirection)
        return AuthorizationRequest(
            client_id=client.client_id,
            redirect_uri=redirection.redirect_uri,
            response_type=_established(self.response_type),
            scope=self.scope,
            state=redirection.state,
            code_challenge=self.code_challenge,
            dpop_jkt=self.dpop_jkt,
            redirect_uri_given=self.redirect_uri_given,
            response_mode=self.params.get("response_mode"),
            nonce=self.params.get("nonce"),
            claims=None if self.claims is None else self.claims.serialize(),
            ask_consent="consent" in self.prompt,
            resources=self.resources,
        )


Check = Callable[[Checking], Awaitable[None]]
T = TypeVar("T")


def _established(value: T | None) -> T:
    assert value is not None, "an earlier check establishes this"
    return value


def _single(query: MultiMapping[str], name: str) -> str | None:
    """A parameter read before the redirect URI is verified: once at most, no control characters."""
    values = query.getall(name, [])
    if len(values) > 1:
        raise InvalidRequest(f"Parameter {name!r} is repeated.")
    if values and has_control_characters(values[0]):
        raise InvalidRequest(f"Parameter {name!r} contains control characters.")
    return values[0] if values and values[0] != "" else None


def registered_redirect(client: Client, redirect_uri: str | None) -> str:
    """The redirect URI to answer at: the one named, if registered, or the client's only one."""
    if redirect_uri is None:
        if len(client.redirect_uris) != 1:
            raise InvalidRequest("redirect_uri is required: this client has several registered.")
        return client.redirect_uris[0]
    if redirect_uri not in client.redirect_uris:
        # Exact string comparison, RFC 9700 §4.1.3: no prefixes, no patterns, no normalisation.
        raise InvalidRequest("redirect_uri is not registered for this client.")
    return redirect_uri


async def check_request_uri(checking: Checking) -> None:
    """A ``request_uri`` from the PAR endpoint (RFC 9126 §4) stands for the parameters pushed, which
    replace the query's: every other parameter is ignored (RFC 9101 §6.3). It is good once, with the
    ``client_id`` of the client that pushed it, until it expires; else ``invalid_request_uri``, shown
    as a page (no redirect URI is known yet). Any other ``request_uri`` (a request object's URL,
    OpenID Connect Core §6.2) is :func:`check_unsupported`'s. A pushed request must not have one
    (RFC 9126 §2.1)."""
    request_uri = _single(checking.query, "request_uri")
    if request_uri is None:
        return
    if checking.at_par_endpoint:
        raise InvalidRequest("A pushed authorization request must not contain request_uri.")
    if not is_pushed(request_uri):
        return
    client_id = _single(checking.query, "client_id")
    if client_id is None:
        raise InvalidRequest("The client_id parameter is required with request_uri.")
    parameters = await checking.registry.pushed_requests.take(request_uri, client_id)
    if parameters is None:
        raise InvalidRequestUri(
            "The request_uri is unknown, expired or already used, or another client pushed it."
        )
    checking.query = MultiDict(parameters)
    checking.pushed = True


async def check_client(checking: Checking) -> None:
    """A registered client (RFC 6749 §4.1.1: client_id is required), or one its client ID metadata
    document describes (``client_documents.py``: an https URL as client_id, when that is on)."""
    client_id = _single(checking.query, "client_id")
    if client_id is None:
        raise InvalidRequest("The client_id parameter is required.")
    checking.client = await client_documents.find_client(checking.registry, client_id, checking.client_ip)
    if checking.client is None:
        raise InvalidRequest("Unknown client_id.")
    if not checking.client.active:
        # never redirected: the platform has not approved this app (or has suspended it)
        raise UnauthorizedClient(f"This app cannot be used: it is {checking.client.status}.")


async def check_redirect_uri(checking: Checking) -> None:
    """Exactly one of the client's registered redirect URIs (RFC 6749 §3.1.2.3, RFC 9700 §4.1.3).
    An OpenID Connect request must name it, even a client's only one (Core §3.1.2.1)."""
    named = _single(checking.query, "redirect_uri")
    if named is None and "openid" in (_single(checking.query, "scope") or "").split(" "):
        raise InvalidRequest("redirect_uri is required in an OpenID Connect request.")
    checking.redirect_uri = registered_redirect(_established(checking.client), named)
    checking.redirect_uri_given = named is not None


async def check_response_mode(checking: Checking) -> None:
    """Where and how answers go, with state and iss: the response mode named, if this server has
    it and it may carry the response type's answer, else the response type's default."""
    state = _single(checking.query, "state")
    response_type = _single(checking.query, "response_type")
    checking.redirection = Redirection(
        _established(checking.redirect_uri),
        state,
        checking.registry.settings.issuer,
        default_mode(response_type),
    )
    asked = _single(checking.query, "response_mode")
    if asked is not None:
        mode = asked_mode(response_type, asked)
        checking.redirection = Redirection(
            checking.redirection.redirect_uri, state, checking.redirection.issuer, mode
        )


async def check_pushed_if_required(checking: Checking) -> None:
    """A client that must push its requests first (its ``require_pushed_authorization_requests``
    or its security profile, or ``TESSERA_REQUIRE_PAR`` for every client) is refused any other with
    ``invalid_request`` (RFC 9126 §4, §6)."""
    if checking.pushed or checking.at_par_endpoint:
        return
    if checking.registry.settings.require_par or profiles.requires_par(_established(checking.client)):
        raise InvalidRequest(
            "This client must push its authorization request to the pushed authorization request"
            " endpoint first, and send the request_uri it gets (RFC 9126)."
        )


async def check_parameters(checking: Checking) -> None:
    """Every parameter at most once (but ``resource``, RFC 8707 §2), without control characters
    (RFC 6749 §3.1)."""
    checking.params = single_valued(checking.query.items(), repeatable=REPEATABLE)


async def check_unsupported(checking: Checking) -> None:
    """Request objects and registration parameters are not offered (OpenID Connect Core §3.1.2.6)."""
    for name, error in _UNSUPPORTED.items():
        if name in checking.params:
            raise error(f"The {name} parameter is not supported by this server.")


async def check_response_type(checking: Checking) -> None:
    """A response type this server serves (RFC 6749 §3.1.1; its values in any order), through a
    grant the client has, and registered for the client (OpenID Connect Registration §2)."""
    client, response_type = _established(checking.client), checking.params.get("response_type")
    if response_type is None:
        raise InvalidRequest("The response_type parameter is required.")
    grant = GRANTS.serving(response_type)
    if grant is None:
        raise UnsupportedResponseType(f"response_type {response_type!r} is not supported.")
    canonical = canonical_response_type(response_type)
    if not client.allows_grant(grant.grant_type) or canonical not in client.response_types:
        if grant.deprecated:
            # RFC 9700 §2.1.2 deprecates the implicit grant: it exists only for clients registered for it.
            raise UnsupportedResponseType(
                f"response_type {response_type} is not enabled for this client; use code with PKCE."
            )
        raise UnauthorizedClient(f"This client may not use response_type {response_type!r}.")
    if "token" in canonical.split() and profiles.requires_dpop(client):
        # RFC 9449 §5.2: its access tokens are DPoP-bound, and one from /authorize cannot be
        raise UnauthorizedClient(
            f"response_type {response_type} returns a bearer access token, and this client's access"
            " tokens must be DPoP-bound (dpop_bound_access_tokens): use code."
        )
    checking.response_type = canonical


async def check_profile(checking: Checking) -> None:
    """The rules of the client's security profile (``auth_server/profiles.py``: FAPI 2.0 §5.3.2.2):
    ``code`` alone, answered in the query, to a ``redirect_uri`` the request names, with a PKCE
    challenge. Nothing for a client without one."""
    profiles.check_authorization_request(
        _established(checking.client),
        response_type=_established(checking.response_type),
        response_mode=checking.params.get("response_mode"),
        redirect_uri_given=checking.redirect_uri_given,
        code_challenge=checking.params.get("code_challenge"),
    )


async def check_pkce(checking: Checking) -> None:
    """A code's S256 challenge (RFC 7636 §4.3), required as :func:`auth_server.pkce.check_challenge` says."""
    if "code" not in _established(checking.response_type).split():
        return
    challenge = checking.params.get("code_challenge")
    pkce.check_challenge(
        _established(checking.client), challenge, checking.params.get("code_challenge_method")
    )
    checking.code_challenge = challenge


async def check_dpop_jkt(checking: Checking) -> None:
    """``dpop_jkt`` (RFC 9449 §10): the RFC 7638 thumbprint of the DPoP key the code is to be bound
    to; the token request must then come with a proof made with that key. Only where a code is
    issued. (The PAR endpoint also takes the key of a proof sent with the push:
    :func:`auth_server.dpop.code_binding`.)"""
    value = checking.params.get("dpop_jkt")
    if value is None:
        return
    if "code" not in _established(checking.response_type).split():
        raise InvalidRequest("dpop_jkt binds an authorization code: this response type issues none.")
    if not dpop.is_thumbprint(value):
        raise InvalidRequest("dpop_jkt must be the base64url SHA-256 thumbprint (RFC 7638) of a DPoP key.")
    checking.dpop_jkt = value


async def check_state(checking: Checking) -> None:
    """Without PKCE, state is the client's only CSRF defence (RFC 9700 §2.1): require it."""
    if checking.code_challenge is None and _established(checking.redirection).state is None:
        raise InvalidRequest("state is required for requests without PKCE.")


async def check_scope(checking: Checking) -> None:
    """Known scopes the client may have (RFC 6749 §3.3); none asked, the client's own. A response
    type with an ID token needs ``openid``; ``offline_access`` is dropped unless a code is issued
    (OpenID Connect Core §11)."""
    known = set(checking.registry.settings.scopes)
    requested = scopes.parse(checking.params.get("scope"))
    scope = scopes.resolve(requested, _established(checking.client).scope, known)
    values = _established(checking.response_type).split()
    if "id_token" in values and "openid" not in scope:
        raise InvalidScope("response_type with id_token needs the openid scope.")
    if "code" not in values:
        scope = tuple(s for s in scope if s != "offline_access")
    checking.scope = scope


async def check_resource(checking: Checking) -> None:
    """The APIs the tokens are for (RFC 8707 §2.1; ``resource``, the one parameter that may be
    repeated): registered resources the client may use, each with a requested scope of its own. A
    token sent from here is for one of them."""
    names = resources.identifiers(checking.query.getall("resource", []))
    if not names:
        return
    targets = await resources.resolve(checking.registry, _established(checking.client), names)
    if len(targets) > 1 and "token" in _established(checking.response_type).split():
        raise InvalidTarget("A token sent from the authorization endpoint is for one resource: name one.")
    for target in targets:
        target.scope(checking.scope)
    checking.resources = names


async def check_nonce(checking: Checking) -> None:
    """An ID token sent from the authorization endpoint needs a nonce to be bound to the client's
    session (OpenID Connect Core §3.2.2.1, §3.3.2.11)."""
    if "id_token" in _established(checking.response_type).split() and "nonce" not in checking.params:
        raise InvalidRequest("nonce is required when the response type includes id_token.")


async def check_prompt(checking: Checking) -> None:
    """``prompt`` (Core §3.1.2.1): known values; ``none`` alone."""
    values = frozenset(checking.params.get("prompt", "").split())
    unknown = values - set(PROMPTS)
    if unknown:
        raise InvalidRequest(f"prompt value {sorted(unknown)[0]!r} is not supported.")
    if "none" in values and len(values) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other prompt values.")
    checking.prompt = values


async def check_max_age(checking: Checking) -> None:
    """``max_age`` in seconds (Core §3.1.2.1), else the client's ``default_max_age``."""
    raw = checking.params.get("max_age")
    if raw is None:
        checking.max_age = _established(checking.client).default_max_age
        return
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise InvalidRequest("max_age must be a non-negative number of seconds.")
    checking.max_age = int(raw)


async def check_claims(checking: Checking) -> None:
    """The ``claims`` parameter (Core §5.5): a JSON object; a claim asked for by name brings in the
    scope that releases it, if the client may have that scope (the consent page then names it)."""
    claims = ClaimsRequest.parse(checking.params.get("claims"))
    if claims is None:
        return
    allowed = _established(checking.client).scope
    extra = tuple(s for s in sorted(claims.scopes()) if s in allowed and s not in checking.scope)
    checking.scope = (*checking.scope, *extra)
    checking.claims = claims


async def check_acr_values(checking: Checking) -> None:
    """The acr values asked for, in order of preference: an essential ``acr`` claim's ``value`` or
    ``values`` (Core §5.5.1.1), else ``acr_values`` (§3.1.2.1), else the client's
    ``default_acr_values`` (Registration §2). Only two-step sign-in's value alone is acted on (the
    endpoint then asks for the second step, :func:`auth_server.oidc.acr.demands_mfa`); the others
    are voluntary."""
    essential = _essential_acr(checking.claims)
    raw = checking.params.get("acr_values")
    if essential:
        checking.acr_values = essential
    elif raw is not None:
        checking.acr_values = tuple(raw.split())
    else:
        checking.acr_values = _established(checking.client).default_acr_values or ()


def _essential_acr(claims: ClaimsRequest | None) -> tuple[str, ...]:
    if claims is None or not claims.essential("id_token", "acr"):
        return ()
    spec = claims.id_token["acr"]
    values = spec.get("values", [spec["value"]] if "value" in spec else [])
    return tuple(v for v in values if isinstance(v, str)) if isinstance(values, list) else ()


async def check_display(checking: Checking) -> None:
    """``display`` (Core §3.1.2.1): one of the defined values; every page fits any screen."""
    display = checking.params.get("display")
    if display is not None and display not in DISPLAYS:
        raise InvalidRequest(f"display must be one of {', '.join(DISPLAYS)}.")


async def check_id_token_hint(checking: Checking) -> None:
    """``id_token_hint`` (Core §3.1.2.1): an ID token this server issued to this client."""
    hint = checking.params.get("id_token_hint")
    if hint is not None:
        claims = verify_hint(checking.registry, hint, _established(checking.client).client_id)
        checking.hinted_subject = str(claims["sub"])


CHECKS: tuple[Check, ...] = (
    check_request_uri,
    check_client,
    check_redirect_uri,
    check_response_mode,
    check_pushed_if_required,
    check_parameters,
    check_unsupported,
    check_response_type,
    check_profile,
    check_pkce,
    check_dpop_jkt,
    check_state,
    check_scope,
    check_resource,
    check_nonce,
    check_prompt,
    check_max_age,
    check_claims,
    check_acr_values,
    check_display,
    check_id_token_hint,
)


async def run(checking: Checking, checks: tuple[Check, ...] = CHECKS) -> AuthorizationRequest:
    """Every check, in order; the first to fail raises."""
    for check in checks:
        await check(checking)
    return checking.request()
