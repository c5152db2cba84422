"""The authorization request's checks, one per rule, run in order (RFC 6749 §3.1, §4.1.1, §4.2.1;
RFC 7636 §4.3-4.4; RFC 9207; RFC 9700 §2.1, §4.1).

    CHECKS = client → redirect URI → response mode → parameters → response type → PKCE → state → scope

Each check reads the request's parameters and what the checks before it established, then
establishes one thing more or raises an :class:`~shared.errors.OAuthError`. Order matters: the
client and its exact redirect URI come first, and until the response mode has fixed where and how
answers go, an error is shown as a page, never redirected (no open redirector, RFC 9700 §4.1.3;
the caller decides with :attr:`Checking.redirection`). The response mode is fixed before the
response type is checked so that even an unsupported response type's error goes back, in the
mode that response type would have used. A new rule (OpenID Connect's nonce, a PAR request_uri, a
resource indicator) is one more check in the list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web
from multidict import MultiMapping

from auth_server import pkce, scopes
from auth_server.authorization.request import AuthorizationRequest
from auth_server.authorization.response_modes import Redirection
from auth_server.clients import Client
from auth_server.grants import GRANTS
from auth_server.registry import Registry
from shared.errors import InvalidRequest, UnauthorizedClient, UnsupportedResponseType
from shared.http import has_control_characters, query_params


@dataclass(slots=True)
class Checking:
    """An authorization request while its checks run: the HTTP request, and what each check established."""

    registry: Registry
    http: web.Request
    client: Client | None = None  # check_client
    redirect_uri: str | None = None  # check_redirect_uri
    redirect_uri_given: bool = True  # check_redirect_uri: False when the only registered one is used
    redirection: Redirection | None = None  # check_response_mode: from here on, errors are redirected
    params: dict[str, str] = field(default_factory=dict)  # check_parameters: each named once
    code_challenge: str | None = None  # check_pkce
    scope: tuple[str, ...] = ()  # check_scope

    def request(self) -> AuthorizationRequest:
        """The request every check has passed."""
        client, redirection = _established(self.client), _established(self.redirection)
        response_type = _established(self.params.get("response_type"))
        return AuthorizationRequest(
            client_id=client.client_id,
            redirect_uri=redirection.redirect_uri,
            response_type=response_type,
            scope=self.scope,
            state=redirection.state,
            code_challenge=self.code_challenge,
            redirect_uri_given=self.redirect_uri_given,
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


async def check_client(checking: Checking) -> None:
    """A registered client (RFC 6749 §4.1.1: client_id is required)."""
    client_id = _single(checking.http.query, "client_id")
    if client_id is None:
        raise InvalidRequest("The client_id parameter is required.")
    checking.client = await checking.registry.clients.get(client_id)
    if checking.client is None:
        raise InvalidRequest("Unknown client_id.")


async def check_redirect_uri(checking: Checking) -> None:
    """Exactly one of the client's registered redirect URIs (RFC 6749 §3.1.2.3, RFC 9700 §4.1.3)."""
    named = _single(checking.http.query, "redirect_uri")
    checking.redirect_uri = registered_redirect(_established(checking.client), named)
    checking.redirect_uri_given = named is not None


async def check_response_mode(checking: Checking) -> None:
    """Where and how answers go: the mode the response type asks for, with state and iss."""
    state = _single(checking.http.query, "state")
    response_type = _single(checking.http.query, "response_type")
    checking.redirection = Redirection(
        _established(checking.redirect_uri),
        state,
        checking.registry.settings.issuer,
        GRANTS.response_mode(response_type),
    )


async def check_parameters(checking: Checking) -> None:
    """Every parameter at most once, without control characters (RFC 6749 §3.1)."""
    checking.params = query_params(checking.http)


async def check_response_type(checking: Checking) -> None:
    """A response type this server serves (RFC 6749 §3.1.1), through a grant the client has."""
    client, response_type = _established(checking.client), checking.params.get("response_type")
    if response_type is None:
        raise InvalidRequest("The response_type parameter is required.")
    grant = GRANTS.serving(response_type)
    if grant is None:
        raise UnsupportedResponseType(f"response_type {response_type!r} is not supported.")
    if not client.allows_grant(grant.grant_type):
        if grant.deprecated:
            # RFC 9700 §2.1.2 deprecates the implicit grant: it exists only for clients registered for it.
            raise UnsupportedResponseType(
                f"response_type {response_type} is not enabled for this client; use code with PKCE."
            )
        raise UnauthorizedClient(f"This client may not use response_type {response_type!r}.")


async def check_pkce(checking: Checking) -> None:
    """A code's S256 challenge (RFC 7636 §4.3), required as :func:`auth_server.pkce.check_challenge` says."""
    if checking.params.get("response_type") != "code":
        return
    challenge = checking.params.get("code_challenge")
    pkce.check_challenge(
        _established(checking.client), challenge, checking.params.get("code_challenge_method")
    )
    checking.code_challenge = challenge


async def check_state(checking: Checking) -> None:
    """Without PKCE, state is the client's only CSRF defence (RFC 9700 §2.1): require it."""
    if checking.code_challenge is None and _established(checking.redirection).state is None:
        raise InvalidRequest("state is required for requests without PKCE.")


async def check_scope(checking: Checking) -> None:
    """Known scopes the client may have (RFC 6749 §3.3); none asked, the client's own."""
    known = set(checking.registry.settings.scopes)
    requested = scopes.parse(checking.params.get("scope"))
    checking.scope = scopes.resolve(requested, _established(checking.client).scope, known)


CHECKS: tuple[Check, ...] = (
    check_client,
    check_redirect_uri,
    check_response_mode,
    check_parameters,
    check_response_type,
    check_pkce,
    check_state,
    check_scope,
)


async def run(checking: Checking, checks: tuple[Check, ...] = CHECKS) -> AuthorizationRequest:
    """Every check, in order; the first to fail raises."""
    for check in checks:
        await check(checking)
    return checking.request()
