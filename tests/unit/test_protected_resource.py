"""RFC 9728 protected resource metadata (:mod:`shared.protected_resource`): the document, its
well-known path, and the challenges of an app that publishes it (and of one that does not)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

from shared.error_middleware import error_middleware
from shared.errors import InsufficientScope, InvalidToken
from shared.jwt_validation import CHALLENGES, VALIDATOR, Challenges, TokenValidator, require_scope
from shared.protected_resource import OPERATION, WELL_KNOWN, ProtectedResource, publish
from tests.unit.test_jwt_validation import AUDIENCE, ISSUER, DictKeySource, ec_key, pyjwk, sign, token_claims
from tests.unit.test_shared_imports import _import_fresh

RESOURCE = "https://photos.example.test"
METADATA_URL = f"{RESOURCE}{WELL_KNOWN}"


def described(resource: str = RESOURCE, **extra: Any) -> ProtectedResource:
    return ProtectedResource(
        resource=resource,
        authorization_servers=[ISSUER],
        scopes_supported=["photos:read", "photos:write"],
        **extra,
    )


@pytest.fixture
def validator() -> TokenValidator:
    return TokenValidator(
        issuer=ISSUER, audience=AUDIENCE, keys=DictKeySource({"ec1": pyjwk(ec_key("ec1"), "ec1", "ES256")})
    )


def params(challenge: str) -> dict[str, str]:
    """The auth-params of a ``Bearer`` challenge (values as written, without their quotes)."""
    assert challenge.startswith("Bearer ")
    found: dict[str, str] = {}
    for part in challenge.removeprefix("Bearer ").split('", '):
        name, _, value = part.partition("=")
        found[name] = value.strip('"')
    return found


# --- the document and its URL ------------------------------------------------------------------


def test_the_document_has_the_rfc9728_members_given() -> None:
    document = described(
        resource_name="Photos", resource_documentation="https://docs.example.test/photos"
    ).document()
    assert document == {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "scopes_supported": ["photos:read", "photos:write"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Photos",
        "resource_documentation": "https://docs.example.test/photos",
    }


def test_optional_members_left_empty_are_not_published() -> None:
    document = ProtectedResource(resource=RESOURCE, authorization_servers=[ISSUER]).document()
    assert document == {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
    }
    # an empty list of bearer methods means "none" (RFC 9728 §2): it is said, not left out
    assert (
        ProtectedResource(RESOURCE, [ISSUER], bearer_methods_supported=[]).document()[
            "bearer_methods_supported"
        ]
        == []
    )


@pytest.mark.parametrize(
    ("resource", "path", "url"),
    [
        ("https://photos.example.test", WELL_KNOWN, f"https://photos.example.test{WELL_KNOWN}"),
        ("https://photos.example.test/", WELL_KNOWN, f"https://photos.example.test{WELL_KNOWN}"),
        (
            "https://example.test/photos",
            f"{WELL_KNOWN}/photos",
            f"https://example.test{WELL_KNOWN}/photos",
        ),
        (
            "https://example.test:8443/apis/photos",
            f"{WELL_KNOWN}/apis/photos",
            f"https://example.test:8443{WELL_KNOWN}/apis/photos",
        ),
        ("http://localhost:8001", WELL_KNOWN, f"http://localhost:8001{WELL_KNOWN}"),
    ],
)
def test_the_well_known_segment_goes_between_the_host_and_the_path(
    resource: str, path: str, url: str
) -> None:
    """RFC 9728 §3.1."""
    assert described(resource).metadata_path == path
    assert described(resource).metadata_url == url


@pytest.mark.parametrize(
    "resource",
    [
        "http://photos.example.test",  # plain http off localhost
        "ftp://photos.example.test",
        "https://photos.example.test/?tenant=a",  # a query: not a route
        "https://photos.example.test/#top",  # RFC 9728 §1.2: no fragment
        "https:///photos",  # no host
        "photos.example.test",
        "https://photos.example.test/{id}",
    ],
)
def test_a_resource_identifier_that_is_not_an_https_url_is_refused(resource: str) -> None:
    with pytest.raises(ValueError, match="resource identifier"):
        described(resource)


def test_the_other_members_are_checked() -> None:
    with pytest.raises(ValueError, match="authorization server"):
        ProtectedResource(RESOURCE, ["http://auth.example.test"])
    with pytest.raises(TypeError):
        ProtectedResource(RESOURCE, ISSUER)  # one string, not a list of them
    with pytest.raises(ValueError, match="bearer_methods_supported"):
        ProtectedResource(RESOURCE, [ISSUER], bearer_methods_supported=["cookie"])
    with pytest.raises(ValueError, match="scope"):
        ProtectedResource(RESOURCE, [ISSUER], scopes_supported=["photos:read photos:write"])
    with pytest.raises(ValueError, match="resource_documentation"):
        ProtectedResource(RESOURCE, [ISSUER], resource_documentation="javascript:alert(1)")


# --- the challenges ----------------------------------------------------------------------------


def test_added_params_join_the_challenge_without_replacing_its_own() -> None:
    error = InvalidToken("An access token is required.")
    assert "resource_metadata" not in error.headers()["WWW-Authenticate"]
    error.add_params(resource_metadata=METADATA_URL, realm="other", error="other")
    assert params(error.headers()["WWW-Authenticate"]) == {
        "realm": "tessera",
        "error": "invalid_token",
        "error_description": "An access token is required.",
        "resource_metadata": METADATA_URL,
    }


def test_an_insufficient_scope_error_keeps_its_own_scope() -> None:
    error = InsufficientScope("needs more", scope="photos:write")
    Challenges(params={"resource_metadata": METADATA_URL}, scope_on_401=True).extend(error, ("photos:read",))
    found = params(error.headers()["WWW-Authenticate"])
    assert found["scope"] == "photos:write" and found["resource_metadata"] == METADATA_URL


def test_a_401_names_the_needed_scope_only_when_asked() -> None:
    named, unnamed = InvalidToken("no"), InvalidToken("no")
    Challenges(scope_on_401=True).extend(named, ("photos:read", "photos:write"))
    Challenges().extend(unnamed, ("photos:read",))
    assert params(named.headers()["WWW-Authenticate"])["scope"] == "photos:read photos:write"
    assert "scope" not in params(unnamed.headers()["WWW-Authenticate"])
    bare = InvalidToken("no")
    Challenges(scope_on_401=True).extend(bare)  # a route that needs no scope names none
    assert "scope" not in params(bare.headers()["WWW-Authenticate"])


# --- an app that publishes, and one that does not ----------------------------------------------


def _app(validator: TokenValidator, resource: ProtectedResource | None) -> web.Application:
    @require_scope("photos:read")
    async def photos(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    @require_scope()
    async def for_users_only(request: web.Request) -> web.Response:
        raise InsufficientScope("This request needs a token issued for a user.", scope="photos:read")

    app = web.Application(middlewares=[error_middleware()])
    app[VALIDATOR] = validator
    app.router.add_get("/photos", photos)
    app.router.add_get("/users-only", for_users_only)
    if resource is not None:
        publish(app, resource)
    return app


@pytest.fixture
async def published(aiohttp_client: AiohttpClient, validator: TokenValidator) -> TestClient:
    return await aiohttp_client(_app(validator, described()))


@pytest.fixture
async def unpublished(aiohttp_client: AiohttpClient, validator: TokenValidator) -> TestClient:
    return await aiohttp_client(_app(validator, None))


async def test_the_document_is_served_at_the_well_known_path(published: TestClient) -> None:
    response = await published.get(WELL_KNOWN)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert json.loads(await response.read()) == described().document()


async def test_a_resource_with_a_path_is_described_under_that_path(
    aiohttp_client: AiohttpClient, validator: TokenValidator
) -> None:
    client = await aiohttp_client(_app(validator, described("https://example.test/photos")))
    response = await client.get(f"{WELL_KNOWN}/photos")
    assert response.status == 200
    assert (await response.json())["resource"] == "https://example.test/photos"
    assert (await client.get(WELL_KNOWN)).status == 404
    challenge = (await client.get("/photos")).headers["WWW-Authenticate"]
    assert params(challenge)["resource_metadata"] == f"https://example.test{WELL_KNOWN}/photos"


async def test_a_401_without_a_token_names_the_metadata_and_the_scope(published: TestClient) -> None:
    response = await published.get("/photos")
    assert response.status == 401
    found = params(response.headers["WWW-Authenticate"])
    assert "error" not in found and "error_description" not in found  # RFC 6750 §3.1
    assert found["resource_metadata"] == METADATA_URL
    assert found["scope"] == "photos:read"


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        ("", None),  # no usable credentials (RFC 6750 §3.1): no error code in the challenge
        ("Basic dXNlcjpwYXNz", None),
        ("Negotiate abc", None),
        ("Bearer", "invalid_token"),  # the Bearer scheme with no token, or a malformed one: an error
        ("Bearer ", "invalid_token"),
        ("Bearer a b", "invalid_token"),
    ],
)
async def test_another_scheme_counts_as_no_token_and_a_malformed_one_as_invalid(
    published: TestClient, authorization: str, error: str | None
) -> None:
    response = await published.get("/photos", headers={"Authorization": authorization})
    assert response.status == 401
    found = params(response.headers["WWW-Authenticate"])
    assert found.get("error") == error
    assert found["resource_metadata"] == METADATA_URL
    assert (await response.json())["error"] == "invalid_token"  # the body always says what is wrong


@pytest.mark.parametrize("authorization", ["DPoP", "DPoP ", "dpop a b"])
async def test_a_malformed_dpop_header_is_answered_in_the_dpop_challenge(
    published: TestClient, authorization: str
) -> None:
    """RFC 9449 §7.1: the request named the DPoP scheme, so its error is in a DPoP challenge."""
    response = await published.get("/photos", headers={"Authorization": authorization})
    assert response.status == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('DPoP realm="tessera", error="invalid_token"'), challenge
    assert 'algs="ES256 EdDSA RS256 PS256"' in challenge and "Bearer realm" not in challenge


async def test_a_401_for_a_bad_token_names_the_metadata(published: TestClient) -> None:
    forged = sign(ec_key("attacker"), kid="ec1")
    for headers in ({"Authorization": f"Bearer {forged}"}, {"Authorization": "Basic eDp5"}):
        response = await published.get("/photos", headers=headers)
        assert response.status == 401
        assert params(response.headers["WWW-Authenticate"])["resource_metadata"] == METADATA_URL


async def test_a_403_names_the_missing_scope_and_the_metadata(published: TestClient) -> None:
    token = sign(ec_key("ec1"), token_claims(scope="photos:write"))
    response = await published.get("/photos", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 403
    found = params(response.headers["WWW-Authenticate"])
    assert found["error"] == "insufficient_scope"
    assert found["scope"] == "photos:read" and found["resource_metadata"] == METADATA_URL
    # a refusal the handler raises itself gets the metadata too, and keeps its own scope
    response = await published.get("/users-only", headers={"Authorization": f"Bearer {token}"})
    found = params(response.headers["WWW-Authenticate"])
    assert response.status == 403 and found["scope"] == "photos:read"
    assert found["resource_metadata"] == METADATA_URL


async def test_an_app_that_does_not_publish_keeps_its_challenges(unpublished: TestClient) -> None:
    assert (await unpublished.get(WELL_KNOWN)).status == 404
    response = await unpublished.get("/photos")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == (
        # RFC 6750 §3.1: no error for a request with no token; RFC 9449 §7.2: DPoP offered beside Bearer
        'Bearer realm="tessera", DPoP algs="ES256 EdDSA RS256 PS256"'
    )
    token = sign(ec_key("ec1"), token_claims(scope="photos:write"))
    response = await unpublished.get("/photos", headers={"Authorization": f"Bearer {token}"})
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="tessera", error="insufficient_scope",'
        ' error_description="This request needs the scope photos:read.", scope="photos:read"'
    )


def test_publishing_twice_is_refused(validator: TokenValidator) -> None:
    app = _app(validator, described())
    with pytest.raises(RuntimeError):
        publish(app, described())
    assert app[CHALLENGES].params == {"resource_metadata": METADATA_URL}


def test_the_route_can_go_through_a_table_that_describes_routes() -> None:
    added: list[tuple[str, dict[str, Any]]] = []

    class Table:
        def get(self, path: str, handler: Any, **operation: Any) -> None:
            added.append((path, operation))

    app = web.Application()
    publish(app, described("https://example.test/photos"), routes=Table())
    assert added == [(f"{WELL_KNOWN}/photos", OPERATION)]
    assert not list(app.router.routes())  # added there only


def test_the_module_loads_neither_asyncpg_nor_redis() -> None:
    """Like the rest of the resource-team part of shared (tests/unit/test_shared_imports.py)."""
    found = _import_fresh("shared.protected_resource")
    assert found["backends"] == [] and found["factory_unchanged"] is True
