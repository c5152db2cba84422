"""Authorization endpoint (RFC 6749 §3.1, §4.1.1-4.1.2; RFC 7636 §4.3; RFC 9207; RFC 9700 §2.1, §4.1).

Order matters. The client and its exact redirect URI are established first; until they are, every
error is shown as a page and nothing redirects (no open redirector). After that, errors go back to
the client with ``error``, ``error_description``, ``state`` and ``iss``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from auth_server import paths, pkce, scopes
from auth_server.appkeys import REGISTRY
from auth_server.clients import RESPONSE_TYPE_GRANTS, Client
from auth_server.pages import current_session, render
from auth_server.rate_limits import limit, per_address
from auth_server.registry import Registry
from auth_server.stores.authorization_requests import AuthorizationRequest
from auth_server.stores.codes import CodeGrant
from auth_server.stores.sessions import Session
from shared.errors import (
    NO_STORE,
    UNAVAILABLE_ERRORS,
    InvalidRequest,
    OAuthError,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedResponseType,
    html_page,
)
from shared.http import has_control_characters, query_params
from shared.observability import METRICS

REDIRECT_HEADERS = {**NO_STORE, "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True, slots=True)
class Redirection:
    """Where, and how, answers go back to the client once the redirect URI is verified.

    The code flow answers in the query (RFC 6749 §4.1.2); the implicit flow in the fragment
    (§4.2.2), so that the token never reaches a server or a Referer header.
    """

    redirect_uri: str
    state: str | None
    issuer: str
    fragment: bool = False
    # False when the client omitted redirect_uri and its only registered one is used
    given: bool = True

    @classmethod
    def for_response_type(
        cls,
        response_type: str | None,
        redirect_uri: str,
        state: str | None,
        issuer: str,
        *,
        given: bool = True,
    ) -> Redirection:
        return cls(redirect_uri, state, issuer, fragment=response_type == "token", given=given)

    def url(self, params: dict[str, str]) -> str:
        values = {**params}
        if self.state is not None:
            values["state"] = self.state
        values["iss"] = self.issuer  # RFC 9207: lets the client detect mix-up attacks
        if self.fragment:
            return f"{self.redirect_uri}#{urlencode(values)}"
        separator = "&" if urlsplit(self.redirect_uri).query else "?"
        return f"{self.redirect_uri}{separator}{urlencode(values)}"

    def response(self, params: dict[str, str], *, status: int = 302) -> web.Response:
        return web.Response(status=status, headers={"Location": self.url(params), **REDIRECT_HEADERS})

    def error(self, error: OAuthError, *, status: int = 302) -> web.Response:
        return self.response({"error": error.error, "error_description": error.description}, status=status)


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
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


async def verified_redirect(request: web.Request) -> tuple[Client, Redirection]:
    """The client and its redirect URI, or an error page (never a redirect)."""
    registry = request.app[REGISTRY]
    client_id = _single(request, "client_id")
    if client_id is None:
        raise InvalidRequest("The client_id parameter is required.")
    client = await registry.clients.get(client_id)
    if client is None:
        raise InvalidRequest("Unknown client_id.")
    named = _single(request, "redirect_uri")
    redirect_uri = registered_redirect(client, named)
    state = _single(request, "state")
    response_type = _single(request, "response_type")
    return client, Redirection.for_response_type(
        response_type, redirect_uri, state, registry.settings.issuer, given=named is not None
    )


def validate(
    registry: Registry, client: Client, redirection: Redirection, params: dict[str, str]
) -> AuthorizationRequest:
    response_type = params.get("response_type")
    if response_type is None:
        raise InvalidRequest("The response_type parameter is required.")
    if response_type not in RESPONSE_TYPE_GRANTS:
        raise UnsupportedResponseType(f"response_type {response_type!r} is not supported.")
    if response_type not in client.response_types:
        if response_type == "token":
            # RFC 9700 §2.1.2 deprecates the implicit grant: it exists only for clients registered for it.
            raise UnsupportedResponseType(
                "response_type token is not enabled for this client; use code with PKCE."
            )
        raise UnauthorizedClient(f"This client may not use response_type {response_type!r}.")
    challenge = None
    if response_type == "code":
        challenge = params.get("code_challenge")
        pkce.check_challenge(client, challenge, params.get("code_challenge_method"))
    if challenge is None and redirection.state is None:
        # Without PKCE, state is the client's only CSRF defence (RFC 9700 §2.1): require it.
        raise InvalidRequest("state is required for requests without PKCE.")
    scope = scopes.resolve(scopes.parse(params.get("scope")), client.scope, set(registry.settings.scopes))
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirection.redirect_uri,
        response_type=response_type,
        scope=scope,
        state=redirection.state,
        code_challenge=challenge,
        user_id="",
        redirect_uri_given=redirection.given,
    )


async def issue_response(
    app: web.Application, request: AuthorizationRequest, session: Session
) -> dict[str, str]:
    """The parameters of a successful response: a code (RFC 6749 §4.1.2) or a token (§4.2.2)."""
    assert session.user_id is not None and session.auth_time is not None
    registry = app[REGISTRY]
    if request.response_type == "token":
        app[METRICS].tokens.labels("implicit").inc()
        issuer = registry.access_tokens
        access = issuer.prepare()
        token = issuer.sign(
            access,
            subject=session.user_id,
            client_id=request.client_id,
            scope=request.scope,
            auth_time=session.auth_time,
        )
        # No refresh token, ever, in the implicit grant (§4.2.2).
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": str(issuer.ttl),
            "scope": " ".join(request.scope),
        }
    code = await registry.codes.issue(
        CodeGrant(
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            subject=session.user_id,
            auth_time=session.auth_time,
            code_challenge=request.code_challenge,
            redirect_uri_given=request.redirect_uri_given,
        )
    )
    return {"code": code}


@html_page
async def authorize(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    await limit(registry, per_address("authorize", request, registry.settings.rate_authorize_per_ip))
    client, redirection = await verified_redirect(request)
    try:
        authz = validate(registry, client, redirection, query_params(request))
        session = await current_session(request)
        if session is None or session.user_id is None:
            return web.Response(
                status=302,
                headers={
                    "Location": f"{paths.LOGIN}?{urlencode({'return_to': request.path_qs})}",
                    **REDIRECT_HEADERS,
                },
            )
        if client.remembers_consent(authz.response_type) and set(
            authz.scope
        ) <= await registry.consents.granted(uuid.UUID(session.user_id), client.client_id):
            return redirection.response(await issue_response(request.app, authz, session))
        request_id = await registry.authorization_requests.put(replace(authz, user_id=session.user_id))
        return render(
            "consent.html",
            client_name=client.client_name,
            username=session.username,
            scopes=[(s, registry.settings.scopes.get(s, s)) for s in authz.scope],
            redirect_host=urlsplit(redirection.redirect_uri).netloc or redirection.redirect_uri,
            csrf=session.csrf,
            request_id=request_id,
            form_to=redirection.redirect_uri,
        )
    except OAuthError as error:
        return redirection.error(error)
    except UNAVAILABLE_ERRORS:
        return redirection.error(
            TemporarilyUnavailable("The authorization server is temporarily unavailable.")
        )
