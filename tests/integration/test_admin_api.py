"""The admin HTTP API: its own port, Tessera's own tokens with admin scopes, each endpoint."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient

from auth_server.admin_api.routes import document
from auth_server.crypto import hash_password
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from tests.support.dpop import DPoPKey
from tests.support.flow import basic
from tests.support.servers import PASSWORD, AppFactory, free_port, registry_of

# the operator's own client that admins' tokens come from (the admin API checks it is approved)
ADMIN_CLIENT: dict[str, str] = {}


def token(registry: Registry, subject: str, scope: str, *, client_id: str | None = None) -> str:
    client_id = client_id or ADMIN_CLIENT["client_id"]
    issued = registry.access_tokens.prepare()
    return registry.access_tokens.sign(
        issued, subject=subject, client_id=client_id, scope=tuple(scope.split())
    )


class Admin:
    def __init__(self, http: TestClient, url: str) -> None:
        self.http, self.url, self.registry = http, url, registry_of(http)

    async def call(
        self,
        method: str,
        path: str,
        bearer: str | None,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        sent = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, self.url + path, headers={**sent, **(headers or {})}, **kwargs
            ) as response,
        ):
            self.challenge = response.headers.get("WWW-Authenticate", "")
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body

    async def dpop(self, method: str, path: str, token: str, key: DPoPKey) -> tuple[int, Any]:
        """A call with a DPoP-bound ``token`` and a fresh proof of ``key`` for it."""
        proof = key.proof(method, self.url + path, access_token=token)
        return await self.call(method, path, None, headers={"Authorization": f"DPoP {token}", "DPoP": proof})


@pytest.fixture
async def admin(app_with: AppFactory) -> AsyncIterator[Admin]:
    port = free_port()
    http = await app_with(admin_port=port)
    registered = await register(
        registry_of(http),
        ClientMetadata(
            client_name="admin console",
            redirect_uris=["https://admin.example/callback"],
            grant_types=["authorization_code"],
            scope=["admin:read", "admin:write"],
        ),
    )
    ADMIN_CLIENT["client_id"] = registered.client.client_id
    yield Admin(http, f"http://127.0.0.1:{port}")


async def new_user(registry: Registry, *, is_admin: bool) -> str:
    user = await registry.users.create(f"adm-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    if is_admin:
        await registry.users.set_admin(user.user_id, True)
    return user.subject


async def test_the_admin_api_is_not_on_the_public_port(admin: Admin) -> None:
    assert (await admin.http.get("/clients")).status == 404
    assert (await admin.http.get("/audit")).status == 404
    status, doc = await admin.call("GET", "/openapi.json", None)
    assert status == 200 and "/clients/{client_id}/approve" in doc["paths"]


async def test_tokens_are_checked(admin: Admin) -> None:
    registry = admin.registry
    root = await new_user(registry, is_admin=True)
    status, body = await admin.call("GET", "/clients", None)
    assert status == 401 and body["error"] == "invalid_token"
    assert "error=" not in admin.challenge  # RFC 6750 §3.1: a request without credentials
    assert (await admin.call("GET", "/clients", token(registry, root, "openid")))[0] == 403
    # an admin scope in the token of a user who is not an admin
    plain = await new_user(registry, is_admin=False)
    assert (await admin.call("GET", "/clients", token(registry, plain, "admin:read")))[0] == 403
    # read scope cannot write
    assert (await admin.call("POST", "/keys/rotate", token(registry, root, "admin:read")))[0] == 403
    # not Tessera's: signed by another key
    forged = jwt.encode(
        {"iss": registry.settings.issuer, "sub": root, "scope": "admin:read"},
        "x" * 32,
        algorithm="HS256",
        headers={"typ": "at+jwt", "kid": "k"},
    )
    assert (await admin.call("GET", "/clients", forged))[0] == 401
    # expired
    issued = registry.access_tokens.prepare()
    old = type(issued)(jti=issued.jti, issued_at=issued.issued_at - 7200, expires_at=issued.issued_at - 3600)
    expired = registry.access_tokens.sign(
        old, subject=root, client_id=ADMIN_CLIENT["client_id"], scope=("admin:read",)
    )
    assert (await admin.call("GET", "/clients", expired))[0] == 401
    # revoked
    good = token(registry, root, "admin:read")
    assert (await admin.call("GET", "/clients", good))[0] == 200
    claims = jwt.decode(good, options={"verify_signature": False})
    from datetime import UTC, datetime

    await registry.revoked_tokens.revoke(claims["jti"], datetime.fromtimestamp(claims["exp"], UTC))
    assert (await admin.call("GET", "/clients", good))[0] == 401


async def test_each_endpoint(admin: Admin) -> None:
    registry = admin.registry
    root = await new_user(registry, is_admin=True)
    write = token(registry, root, "admin:write")
    status, created = await admin.call(
        "POST",
        "/clients",
        write,
        json={"client_name": "Ops", "redirect_uris": ["https://ops.example/cb"], "scope": "photos:read"},
    )
    assert status == 201, created
    client_id = created["client_id"]
    assert created["client_secret"]
    assert (await admin.call("GET", f"/clients/{client_id}", write))[1]["status"] == "approved"
    assert any(c["client_id"] == client_id for c in (await admin.call("GET", "/clients", write))[1])
    status, suspended = await admin.call(
        "POST", f"/clients/{client_id}/suspend", write, json={"reason": "abuse"}
    )
    assert status == 200 and suspended["status"] == "suspended"
    assert (await admin.call("POST", f"/clients/{client_id}/suspend", write, json={"reason": "x"}))[0] == 409
    assert (await admin.call("POST", f"/clients/{client_id}/reinstate", write))[1]["status"] == "approved"
    assert (await admin.call("POST", f"/clients/{client_id}/approve", write))[0] == 409
    assert (await admin.call("POST", f"/clients/{client_id}/reject", write, json={}))[0] == 400
    bad = await admin.call(
        "POST", "/clients", write, json={"client_name": "x", "redirect_uris": ["http://a.example/"]}
    )
    assert bad[0] == 400 and bad[1]["error"] == "invalid_redirect_uri"
    # users
    status, user = await admin.call(
        "POST", "/users", write, json={"username": f"new-{uuid.uuid4().hex[:6]}", "password": PASSWORD}
    )
    assert status == 201 and user["is_admin"] is False
    user_id = user["user_id"]
    assert (await admin.call("PUT", f"/users/{user_id}/admin", write, json={"admin": True}))[1]["is_admin"]
    assert (await admin.call("GET", f"/users/{user_id}", write))[1]["is_admin"] is True
    assert any(u["user_id"] == user_id for u in (await admin.call("GET", "/users", write))[1])
    await registry.consents.grant(uuid.UUID(user_id), client_id, ("photos:read",))
    consents = (await admin.call("GET", f"/consents?user_id={user_id}", write))[1]
    assert [c["client_id"] for c in consents] == [client_id]
    assert (await admin.call("DELETE", f"/consents/{user_id}/{client_id}", write))[1]["consent_revoked"]
    assert (await admin.call("DELETE", f"/users/{user_id}/grants", write))[0] == 200
    assert (await admin.call("DELETE", f"/users/{user_id}", write))[0] == 200
    assert (await admin.call("GET", f"/users/{user_id}", write))[0] == 404
    # keys and the audit trail
    before = len((await admin.call("GET", "/keys", write))[1])
    assert (await admin.call("POST", "/keys/rotate", write, json={"prepublication": 3600}))[0] == 201
    assert len((await admin.call("GET", "/keys", write))[1]) == before + 1
    events = (await admin.call("GET", f"/audit?client_id={client_id}", write))[1]
    assert {"client.suspended", "client.reinstated"} <= {e["event"] for e in events}
    assert (await admin.call("DELETE", f"/clients/{client_id}", write))[0] == 200
    assert (await admin.call("GET", f"/clients/{client_id}", write))[0] == 404


def test_the_document_describes_every_route() -> None:
    doc = document()
    assert {"/clients", "/users", "/consents", "/keys", "/audit"} <= set(doc["paths"])


async def test_resources(admin: Admin) -> None:
    """The APIs tokens are issued for (RFC 8707), as ``tessera resource`` manages them."""
    registry = admin.registry
    write = token(registry, await new_user(registry, is_admin=True), "admin:write")
    identifier = f"https://api-{uuid.uuid4().hex[:8]}.example/photos"
    body = {"identifier": identifier, "name": "Photos", "scopes": ["photos:read"]}
    status, created = await admin.call("POST", "/resources", write, json=body)
    assert status == 201, created
    assert (created["identifier"], created["scopes"]) == (identifier, ["photos:read"])
    assert (await admin.call("POST", "/resources", write, json=body))[0] == 400  # registered already
    status, refused = await admin.call("POST", "/resources", write, json={**body, "identifier": "no-uri"})
    assert status == 400 and "absolute URI" in refused["error_description"]
    status, refused = await admin.call("POST", "/resources", write, json={**body, "scopes": ["nope"]})
    assert status == 400 and "TESSERA_SCOPES" in refused["error_description"]
    assert any(r["identifier"] == identifier for r in (await admin.call("GET", "/resources", write))[1])
    status, shown = await admin.call("GET", "/resource", write, params={"identifier": identifier})
    assert (status, shown["name"]) == (200, "Photos")
    read = token(registry, await new_user(registry, is_admin=True), "admin:read")
    assert (await admin.call("DELETE", "/resource", read, params={"identifier": identifier}))[0] == 403
    assert (await admin.call("DELETE", "/resource", write, params={"identifier": identifier}))[0] == 200
    assert (await admin.call("GET", "/resource", write, params={"identifier": identifier}))[0] == 404


async def test_a_dpop_bound_token_is_taken_only_with_a_proof_of_its_key(admin: Admin) -> None:
    """RFC 9449 §7 at the admin API: ``Authorization: DPoP`` with a proof for the admin API's own URL,
    made with the token's key, each proof once; never the token as a bearer token."""
    registry = admin.registry
    key, thief = DPoPKey(), DPoPKey()
    root = await new_user(registry, is_admin=True)
    bound = registry.access_tokens.sign(
        registry.access_tokens.prepare(),
        subject=root,
        client_id=ADMIN_CLIENT["client_id"],
        scope=("admin:read",),
        jkt=key.jkt,
    )
    url = admin.url + "/clients"

    async def dpop(proof: str, token: str = bound) -> tuple[int, Any]:
        return await admin.call(
            "GET", "/clients", None, headers={"Authorization": f"DPoP {token}", "DPoP": proof}
        )

    proof = key.proof("GET", url, access_token=bound)
    assert (await dpop(proof))[0] == 200
    # the same proof again: refused, as a DPoP challenge naming the algorithms
    status, body = await dpop(proof)
    assert status == 401 and body["error"] == "invalid_dpop_proof"
    assert admin.challenge.startswith("DPoP ") and "algs=" in admin.challenge
    # the token as a bearer token (a copy without the key): refused
    status, body = await admin.call("GET", "/clients", bound)
    assert status == 401 and body["error"] == "invalid_token"
    assert "DPoP" in body["error_description"]
    # a proof by another key, for another URL (the public port's), another method, without ath
    refused = [
        thief.proof("GET", url, access_token=bound),
        key.proof("GET", url.replace(admin.url, str(admin.http.make_url(""))), access_token=bound),
        key.proof("POST", url, access_token=bound),
        key.proof("GET", url),
    ]
    for proof in refused:
        status, body = await dpop(proof)
        assert status == 401 and body["error"] in ("invalid_dpop_proof", "invalid_token"), body
        assert admin.challenge.startswith("DPoP ")
    # a bearer token sent with the DPoP scheme
    plain = token(registry, root, "admin:read")
    status, body = await dpop(key.proof("GET", url, access_token=plain), plain)
    assert status == 401 and body["error"] == "invalid_token"
    # a request with no token is offered both schemes (RFC 9449 §7.1)
    status, _ = await admin.call("GET", "/clients", None)
    assert status == 401 and admin.challenge.startswith("Bearer ") and 'DPoP algs="' in admin.challenge
    # the scope still decides what a proven token may do
    status, body = await admin.dpop("POST", "/keys/rotate", bound, key)
    assert status == 403 and body["error"] == "insufficient_scope"


async def test_an_operators_client_gets_a_dpop_bound_admin_token_and_uses_it(admin: Admin) -> None:
    """End to end: client_credentials with a DPoP proof at /token (RFC 9449 §5), then the admin API."""
    registry = admin.registry
    registered = await register(
        registry,
        ClientMetadata(
            client_name="ops robot",
            redirect_uris=[],
            grant_types=["client_credentials"],
            scope=["admin:read"],
            dpop_bound_access_tokens=True,
        ),
    )
    assert registered.secret
    key = DPoPKey()
    token_url = registry.settings.endpoint("/oauth2/token")
    answer = await admin.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "admin:read"},
        headers={
            **basic(registered.client.client_id, registered.secret),
            "DPoP": key.proof("POST", token_url),
        },
    )
    issued = await answer.json()
    assert answer.status == 200, issued
    assert issued["token_type"] == "DPoP"
    bound = issued["access_token"]
    status, _ = await admin.dpop("GET", "/clients", bound, key)
    assert status == 200
    assert (await admin.call("GET", "/clients", bound))[0] == 401


async def test_on_a_wildcard_address_without_its_url_bearer_tokens_work_and_dpop_is_refused(
    app_with: AppFactory,
) -> None:
    """A containerised admin API listens on 0.0.0.0, which names no URL a caller used: until
    TESSERA_ADMIN_URL says which, DPoP requests are refused there, and bearer tokens work."""
    port = free_port()
    http = await app_with(admin_port=port, admin_host="0.0.0.0")  # noqa: S104
    registry = registry_of(http)
    registered = await register(
        registry,
        ClientMetadata(
            client_name="console",
            redirect_uris=["https://admin.example/cb"],
            grant_types=["authorization_code"],
            scope=["admin:read"],
        ),
    )
    ADMIN_CLIENT["client_id"] = registered.client.client_id
    admin = Admin(http, f"http://127.0.0.1:{port}")
    root = await new_user(registry, is_admin=True)
    assert (await admin.call("GET", "/clients", token(registry, root, "admin:read")))[0] == 200
    key = DPoPKey()
    bound = registry.access_tokens.sign(
        registry.access_tokens.prepare(),
        subject=root,
        client_id=registered.client.client_id,
        scope=("admin:read",),
        jkt=key.jkt,
    )
    proof = key.proof("GET", admin.url + "/clients", access_token=bound)
    status, body = await admin.call(
        "GET", "/clients", None, headers={"Authorization": f"DPoP {bound}", "DPoP": proof}
    )
    assert status == 401 and body["error"] == "invalid_dpop_proof"
    assert "TESSERA_ADMIN_URL" in body["error_description"]
    assert admin.challenge.startswith("DPoP realm=") and ", DPoP algs" not in admin.challenge
