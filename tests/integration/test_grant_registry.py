"""Each grant declared once (grants/base.py): metadata, registration, the CLI and dispatch follow it.

A grant that is only added to the registry must appear in the metadata document (RFC 8414 §2),
be accepted for clients (RFC 7591 §2) and be dispatched by the token endpoint, with nothing else
changed; the registration rules that depend on a grant come from its declaration.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import auth_server.endpoints.token
from auth_server import cli, clients
from auth_server.authorization.response_modes import default_mode
from auth_server.clients import Client
from auth_server.endpoints.metadata import document
from auth_server.grants import GRANT_TYPES, GRANTS, Grant, Grants, implicit
from auth_server.grants.common import TokenRequest
from auth_server.registration import RegistrationError, notices, validate_registration
from auth_server.registry import Registry
from auth_server.settings import Settings
from tests.support.flow import basic

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
    )
    assert GRANTS.deprecated == ("implicit", "password")
    assert [g for g, grant in GRANTS.items() if grant.confidential_only] == ["client_credentials"]
    assert [g for g, grant in GRANTS.items() if grant.issues_refresh_tokens] == [
        "authorization_code",
        "password",
    ]
    # RFC 7591 §2.1 pairs grant types with response types (OpenID Connect Registration §2 adds its
    # own); the rules of a client's registration say it the same way
    assert set(clients.RESPONSE_TYPE_GRANTS) == set(GRANTS.response_types)
    for grant_type, grant in GRANTS.items():
        for response_type in grant.response_types:
            assert grant_type in clients.RESPONSE_TYPE_GRANTS[response_type], response_type
        for response_type in clients.GRANT_RESPONSE_TYPES.get(grant_type, ()):
            assert response_type in grant.response_types, grant_type


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
