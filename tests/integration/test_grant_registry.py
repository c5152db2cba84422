"""Each grant declared once (grants/base.py): metadata, registration, the CLI and dispatch follow it.

A grant that is only added to the registry must appear in the metadata document (RFC 8414 §2),
be accepted for clients (RFC 7591 §2), be dispatched by the token endpoint and, if it serves a
response type, be answered at the authorization endpoint for a client registered for it, with
nothing else changed; the registration rules that depend on a grant come from its declaration.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient

import auth_server.endpoints.token
from auth_server import cli
from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.authorization.response_modes import default_mode
from auth_server.clients import Client
from auth_server.endpoints.metadata import document
from auth_server.grants import GRANT_TYPES, GRANTS, Grant, Grants, implicit
from auth_server.grants.common import TokenRequest
from auth_server.registration import (
    RegistrationError,
    check_response_types,
    notices,
    validate_registration,
)
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.support.flow import REDIRECT_URI, authorize_params, basic, obtain_code, query_of
from tests.support.servers import PASSWORD

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1: not implemented here
KNOWN_SCOPES = {"photos:read", "photos:write"}


async def _jwt_bearer(registry: Registry, client: Client, request: TokenRequest) -> dict[str, Any]:
    return {"granted_to": client.client_id, "assertion": request.get("assertion")}


NEW = Grant(JWT_BEARER, token_endpoint=_jwt_bearer, parameters=("assertion", "scope"))
EXTENDED = Grants(*GRANTS.values(), NEW)


def _validate(grants: Grants = GRANTS, **changes: Any) -> None:
    args: dict[str, Any] = {
        "name": "Partner",
        "redirect_uris": [],
        "grant_types": [JWT_BEARER],
        "scope": ["photos:read"],
        "auth_method": "client_secret_basic",
        "known_scopes": KNOWN_SCOPES,
        "grants": grants,
    }
    validate_registration(**{**args, **changes})


def test_metadata_lists_what_the_registry_declares(settings: Settings) -> None:
    doc = document(settings)
    assert doc["grant_types_supported"] == list(GRANTS)
    assert doc["response_types_supported"] == ["code", "code id_token", "token", "id_token", "id_token token"]
    assert doc["response_modes_supported"] == ["query", "fragment", "form_post"]
    assert JWT_BEARER not in doc["grant_types_supported"]

    extended = document(settings, EXTENDED)
    assert extended["grant_types_supported"] == [*GRANTS, JWT_BEARER]
    assert extended["response_types_supported"] == doc["response_types_supported"]


def test_a_grant_added_to_the_registry_is_accepted_for_clients() -> None:
    with pytest.raises(RegistrationError, match="unsupported grant type"):
        _validate()
    _validate(EXTENDED)
    # its declaration decides the rules that depend on a grant
    with pytest.raises(RegistrationError, match="refresh_token needs a grant"):
        _validate(EXTENDED, grant_types=[JWT_BEARER, "refresh_token"])
    refreshing = Grants(
        *GRANTS.values(), Grant(JWT_BEARER, token_endpoint=_jwt_bearer, issues_refresh_tokens=True)
    )
    _validate(refreshing, grant_types=[JWT_BEARER, "refresh_token"])
    confidential = Grants(
        *GRANTS.values(), Grant(JWT_BEARER, token_endpoint=_jwt_bearer, confidential_only=True)
    )
    _validate(confidential)
    with pytest.raises(RegistrationError, match="confidential clients only"):
        _validate(confidential, auth_method="none")
    deprecated = Grants(*GRANTS.values(), Grant(JWT_BEARER, token_endpoint=_jwt_bearer, deprecated=True))
    assert notices([JWT_BEARER], EXTENDED) == ()
    assert JWT_BEARER in notices([JWT_BEARER], deprecated)[0]


def test_grants_served_at_the_authorization_endpoint_need_a_redirect_uri() -> None:
    async def answer(*_: object) -> dict[str, str]:
        return {}

    redirecting = Grants(
        *GRANTS.values(), Grant(JWT_BEARER, authorization_endpoint=answer, response_types=("assertion",))
    )
    with pytest.raises(RegistrationError, match="redirect URI"):
        _validate(redirecting)
    _validate(redirecting, redirect_uris=["https://partner.example/cb"])
    assert redirecting.serving("assertion") is redirecting[JWT_BEARER]


def test_the_shipped_grants_and_their_rules() -> None:
    assert GRANT_TYPES == (
        "authorization_code",
        "refresh_token",
        "implicit",
        "password",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:device_code",
    )
    assert GRANTS.deprecated == ("implicit", "password")
    assert [g for g, grant in GRANTS.items() if grant.confidential_only] == [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert [g for g, grant in GRANTS.items() if grant.issues_refresh_tokens] == [
        "authorization_code",
        "password",
        "urn:ietf:params:oauth:grant-type:device_code",
    ]
    # RFC 7591 §2.1 pairs grant types with response types (OpenID Connect Registration §2 adds its
    # own), derived from the declarations: a response type needs the grant serving it, and the one
    # serving each of its values alone
    assert {response_type: GRANTS.needed_for(response_type) for response_type in GRANTS.response_types} == {
        "code": ("authorization_code",),
        "code id_token": ("authorization_code", "implicit"),
        "token": ("implicit",),
        "id_token": ("implicit",),
        "id_token token": ("implicit",),
    }
    assert GRANTS.needed_for("id_token code") == ("authorization_code", "implicit")
    assert GRANTS.needed_for("assertion") is None
    # a client registered without response types gets those its grants serve alone, without an ID token
    assert GRANTS.default_response_types(["authorization_code", "refresh_token"]) == ("code",)
    assert GRANTS.default_response_types(["implicit"]) == ("token",)
    assert GRANTS.default_response_types(["implicit", "authorization_code"]) == ("code", "token")
    assert GRANTS.default_response_types(["client_credentials", "password"]) == ()


def test_the_implicit_grant_is_declared_in_grants() -> None:
    grant = GRANTS["implicit"]
    assert grant is implicit.GRANT
    assert grant.authorization_endpoint is implicit.issue_token
    assert grant.authorization_endpoint.__module__ == "auth_server.grants.implicit"
    assert grant.token_endpoint is None  # no token-endpoint half
    assert (grant.response_types, grant.deprecated) == (("token", "id_token", "id_token token"), True)
    assert {default_mode(response_type) for response_type in grant.response_types} == {"fragment"}
    assert GRANTS.serving("token") is grant
    assert GRANTS.serving("token id_token") is grant  # the values of a response type in any order


def test_the_cli_offers_every_declared_grant() -> None:
    base = ["client", "create", "--name", "n", "--scope", "photos:read"]
    for grant_type in GRANTS:
        assert cli.parser().parse_args([*base, "--grant-type", grant_type]).grant_type == [grant_type]
    with pytest.raises(SystemExit):
        cli.parser().parse_args([*base, "--grant-type", JWT_BEARER])


async def test_the_token_endpoint_dispatches_a_grant_added_to_the_registry(
    http: TestClient, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, secret = await registry.clients.create(
        name="Partner",
        redirect_uris=[],
        grant_types=[JWT_BEARER],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    assert secret is not None
    form = {"grant_type": JWT_BEARER, "assertion": "a.b.c"}
    refused = await http.post("/oauth2/token", data=form, headers=basic(client.client_id, secret))
    assert (refused.status, (await refused.json())["error"]) == (400, "unsupported_grant_type")

    monkeypatch.setattr(auth_server.endpoints.token, "GRANTS", EXTENDED)
    response = await http.post("/oauth2/token", data=form, headers=basic(client.client_id, secret))
    assert response.status == 200
    assert await response.json() == {"granted_to": client.client_id, "assertion": "a.b.c"}
    assert response.headers["Cache-Control"] == "no-store"


def test_a_grant_type_or_response_type_is_declared_once() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Grants(*GRANTS.values(), GRANTS["password"])
    with pytest.raises(ValueError, match="served by two grants"):
        Grants(
            *GRANTS.values(),
            Grant(JWT_BEARER, authorization_endpoint=implicit.issue_token, response_types=("token",)),
        )


TICKET = "urn:example:params:oauth:grant-type:ticket"  # a grant served at /authorize, made up here


async def _issue_ticket(
    registry: Registry, request: AuthorizationRequest, owner: ResourceOwner
) -> dict[str, str]:
    return {"ticket": f"{owner.subject} for {request.client_id}"}


TICKETS = Grants(
    *GRANTS.values(), Grant(TICKET, authorization_endpoint=_issue_ticket, response_types=("ticket",))
)


def _serve(monkeypatch: pytest.MonkeyPatch, grants: Grants) -> None:
    """Every module of the server that reads the registry of grants reads ``grants`` instead."""
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if name.startswith("auth_server") and vars(module).get("GRANTS") is GRANTS:
            monkeypatch.setattr(module, "GRANTS", grants)


async def test_a_grant_added_to_the_registry_is_answered_at_the_authorization_endpoint(
    http: TestClient, registry: Registry, user: User, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # registered for the new grant by the rules of the registry that declares it
    with pytest.raises(RegistrationError, match="unsupported grant type"):
        _validate(grant_types=[TICKET], redirect_uris=[REDIRECT_URI])
    _validate(TICKETS, grant_types=[TICKET], redirect_uris=[REDIRECT_URI])
    with pytest.raises(RegistrationError, match="unsupported response type"):
        check_response_types(["ticket"], grant_types=[TICKET], scope=["photos:read"])
    check_response_types(["ticket"], grant_types=[TICKET], scope=["photos:read"], grants=TICKETS)
    with pytest.raises(RegistrationError, match="needs the grant type"):
        check_response_types(["ticket"], grant_types=["implicit"], scope=["photos:read"], grants=TICKETS)
    client, _ = await registry.clients.create(
        name="Ticket office",
        redirect_uris=[REDIRECT_URI],
        grant_types=[TICKET],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    params = authorize_params(client.client_id, response_type="ticket")

    # with the shipped grants, nothing serves the response type
    shipped = client.response_types
    assert shipped == ()
    refused = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    assert refused.status == 302
    assert query_of(refused.headers["Location"])["error"] == "unsupported_response_type"

    # added to the registry, and nowhere else: the client may use it, and its grant answers
    _serve(monkeypatch, TICKETS)
    assert client.response_types == ("ticket",)
    answer = await obtain_code(http, params, user.username, PASSWORD)
    assert answer == {
        "ticket": f"{user.subject} for {client.client_id}",
        "state": "state-123",
        "iss": settings.issuer,
    }
