"""RFC 6749 §4.2: the implicit grant, off unless registered, answering in the fragment."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from aiohttp.test_utils import TestClient

from auth_server.registration import RegistrationError
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import REDIRECT_URI, authorize_params, hidden, query_of, sign_in
from tests.support.servers import PASSWORD, ClientFactory


def fragment_of(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    assert parts.query == "", "nothing may travel in the query"
    return {k: v[0] for k, v in parse_qs(parts.fragment, keep_blank_values=True).items()}


async def _implicit(
    http: TestClient, client_id: str, user: User, *, decision: str = "allow", **extra: str
) -> str:
    params = {**authorize_params(client_id, response_type="token"), **extra}
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    return_to = query_of(response.headers["Location"])["return_to"]
    assert await sign_in(http, user.username, PASSWORD, return_to) == 303
    response = await http.get(return_to, allow_redirects=False)
    if response.status == 200:
        page = await response.text()
        response = await http.post(
            "/consent",
            data={
                "csrf_token": hidden(page, "csrf_token"),
                "request_id": hidden(page, "request_id"),
                "consent": decision,
            },
            allow_redirects=False,
        )
    assert response.status in (302, 303)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    location: str = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "#")
    return location


async def test_token_arrives_in_the_fragment(http: TestClient, new_client: ClientFactory, user: User) -> None:
    client, _ = await new_client(public=True, grant_types=["implicit"])
    answer = fragment_of(await _implicit(http, client.client_id, user))
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == "600"
    assert answer["scope"] == "photos:read"
    assert answer["state"] == "state-123"
    assert answer["iss"] == "http://localhost:8000"
    assert "refresh_token" not in answer and "code" not in answer
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["client_id"]) == (user.subject, client.client_id)


async def test_scope_is_narrowed_to_what_the_client_may_have(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(public=True, grant_types=["implicit"], scope="photos:read")
    answer = fragment_of(await _implicit(http, client.client_id, user, scope="photos:read photos:write"))
    assert answer["scope"] == "photos:read"


async def test_denial_goes_back_in_the_fragment(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(public=True, grant_types=["implicit"])
    answer = fragment_of(await _implicit(http, client.client_id, user, decision="deny"))
    assert answer["error"] == "access_denied"
    assert answer["state"] == "state-123"


async def test_unregistered_clients_get_unsupported_response_type(
    http: TestClient, new_client: ClientFactory
) -> None:
    client, _ = await new_client()
    params = authorize_params(client.client_id, response_type="token")
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    answer = fragment_of(response.headers["Location"])
    assert answer["error"] == "unsupported_response_type"
    assert answer["state"] == "state-123" and answer["iss"] == "http://localhost:8000"


async def test_state_is_required(http: TestClient, new_client: ClientFactory) -> None:
    client, _ = await new_client(public=True, grant_types=["implicit"])
    params = authorize_params(client.client_id, response_type="token", state=None)
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    assert fragment_of(response.headers["Location"])["error"] == "invalid_request"


async def test_implicit_clients_cannot_use_the_code_flow(http: TestClient, new_client: ClientFactory) -> None:
    client, _ = await new_client(public=True, grant_types=["implicit"])
    params = authorize_params(client.client_id)
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    assert query_of(response.headers["Location"])["error"] == "unauthorized_client"


async def test_a_client_with_dpop_bound_access_tokens_cannot_register_token_response_types(
    new_client: ClientFactory,
) -> None:
    """RFC 9449 §5.2: every access token of such a client is DPoP-bound, and /authorize has no proof
    to bind one to: the response types that return an access token from it are refused."""
    for metadata in (
        {"grant_types": ["implicit"]},  # its default response type: token
        {"grant_types": ["implicit"], "response_types": ["token"]},
        {"grant_types": ["implicit"], "response_types": ["id_token token"], "scope": "openid photos:read"},
        {"grant_types": ["implicit"], "response_types": ["token id_token"], "scope": "openid photos:read"},
    ):
        with pytest.raises(RegistrationError, match="dpop_bound_access_tokens"):
            await new_client(public=True, dpop_bound_access_tokens=True, **metadata)
    # an ID token alone carries no access token: allowed
    client, _ = await new_client(
        public=True,
        grant_types=["implicit"],
        response_types=["id_token"],
        scope="openid photos:read",
        dpop_bound_access_tokens=True,
    )
    assert client.dpop_bound_access_tokens


async def test_authorize_gives_no_bearer_token_to_a_client_with_dpop_bound_access_tokens(
    http: TestClient, registry: Registry
) -> None:
    """A client registered before the rule above (or edited in the database) is refused at /authorize."""
    client, _ = await registry.clients.create(
        name="Old SPA",
        redirect_uris=[REDIRECT_URI],
        grant_types=["implicit"],
        scope=["openid", "photos:read"],
        auth_method="none",
        response_types=["token", "id_token token"],
        openid={"dpop_bound_access_tokens": True},
    )
    assert client.dpop_bound_access_tokens
    for response_type in ("token", "id_token token"):
        params = authorize_params(client.client_id, response_type=response_type, scope="openid photos:read")
        params["nonce"] = "n-1"
        response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
        answer = fragment_of(response.headers["Location"])
        assert answer["error"] == "unauthorized_client", answer
        assert "dpop_bound_access_tokens" in answer["error_description"]
        assert "access_token" not in answer
