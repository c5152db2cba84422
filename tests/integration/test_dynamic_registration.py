"""RFC 7591 dynamic registration and RFC 7592 management, under each TESSERA_REGISTRATION policy."""

from __future__ import annotations

from typing import Any

from auth_server import platform
from auth_server.registry import Registry
from tests.support.flow import basic
from tests.support.servers import AppFactory, registry_of

REGISTER = "/oauth2/register"
NATIVE = "http://127.0.0.1:8765/callback"


def native(**fields: Any) -> dict[str, Any]:
    return {
        "client_name": "A CLI",
        "redirect_uris": [NATIVE],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        **fields,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def initial_token(registry: Registry, **options: Any) -> str:
    token, _ = await registry.registration_tokens.create(**options)
    return token


async def test_off_is_404_and_unlisted(app_with: AppFactory) -> None:
    http = await app_with(registration="off")
    assert (await http.post(REGISTER, json=native())).status == 404
    doc = await (await http.get("/.well-known/oauth-authorization-server")).json()
    assert "registration_endpoint" not in doc


async def test_token_policy_needs_an_initial_access_token(app_with: AppFactory) -> None:
    http = await app_with()  # the default: token
    doc = await (await http.get("/.well-known/oauth-authorization-server")).json()
    assert doc["registration_endpoint"] == "http://localhost:8000/oauth2/register"
    assert "admin:read" not in doc["scopes_supported"]
    response = await http.post(REGISTER, json=native())
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_token"
    # RFC 7591 §3: an RFC 6750 protected resource; no token at all, no error code (§3.1)
    assert "error=" not in response.headers["WWW-Authenticate"]
    wrong = await http.post(REGISTER, json=native(), headers=bearer("not-a-token"))
    assert wrong.status == 401
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]


async def test_registration_with_a_token_is_pending_until_approved(app_with: AppFactory) -> None:
    http = await app_with()
    registry = registry_of(http)
    token = await initial_token(registry)
    response = await http.post(
        REGISTER,
        json={
            "client_name": "Partner",
            "redirect_uris": ["https://partner.example/cb"],
            "grant_types": ["authorization_code", "client_credentials"],
            "scope": "photos:read",
            "unknown_field": "ignored (RFC 7591 §2)",
        },
        headers=bearer(token),
    )
    assert response.status == 201, await response.text()
    info = await response.json()
    assert info["client_secret"] and info["client_secret_expires_at"] == 0
    assert info["registration_access_token"] and info["client_id_issued_at"] > 0
    assert info["registration_client_uri"].endswith(f"/oauth2/register/{info['client_id']}")
    assert info["tessera_status"] == "pending" and info["scope"] == "photos:read"
    assert "unknown_field" not in info and "require_pkce" not in info
    client_id, secret = info["client_id"], info["client_secret"]
    grant = {"grant_type": "client_credentials"}
    denied = await http.post("/oauth2/token", data=grant, headers=basic(client_id, secret))
    assert denied.status == 400 and (await denied.json())["error"] == "unauthorized_client"
    await platform.approve(registry, client_id)
    allowed = await http.post("/oauth2/token", data=grant, headers=basic(client_id, secret))
    assert allowed.status == 200, await allowed.text()


async def test_initial_access_token_expiry_uses_and_auto_approval(app_with: AppFactory) -> None:
    http = await app_with()
    registry = registry_of(http)
    once = await initial_token(registry, max_uses=1, auto_approve=True)
    first = await http.post(REGISTER, json=native(), headers=bearer(once))
    assert first.status == 201 and (await first.json())["tessera_status"] == "approved"
    second = await http.post(REGISTER, json=native(), headers=bearer(once))
    assert second.status == 401
    # a refused registration does not spend a use
    twice = await initial_token(registry, max_uses=1)
    bad = await http.post(
        REGISTER, json=native(redirect_uris=["https://x.example/a#frag"]), headers=bearer(twice)
    )
    assert bad.status == 400 and (await bad.json())["error"] == "invalid_redirect_uri"
    assert (await http.post(REGISTER, json=native(), headers=bearer(twice))).status == 201
    expired = await initial_token(registry, expires_in=1)
    await registry.registration_tokens._pool.execute(
        "UPDATE registration_tokens SET expires_at = now() - interval '1 second' WHERE expires_at IS NOT NULL"
    )
    assert (await http.post(REGISTER, json=native(), headers=bearer(expired))).status == 401


async def test_open_native_accepts_a_loopback_public_client(app_with: AppFactory) -> None:
    http = await app_with(registration="open-native")
    response = await http.post(REGISTER, json=native(scope="openid"))
    assert response.status == 201, await response.text()
    info = await response.json()
    assert info["tessera_status"] == "approved" and "client_secret" not in info
    private_use = await http.post(REGISTER, json=native(redirect_uris=["com.example.app:/cb"]))
    assert private_use.status == 201
    assert (await private_use.json())[
        "scope"
    ] == "openid profile offline_access"  # the open scopes by default


async def test_open_native_refuses_what_is_not_native(app_with: AppFactory) -> None:
    http = await app_with(registration="open-native", rate_register_per_ip=100)
    cases = {
        "confidential": (native(token_endpoint_auth_method="client_secret_basic"), "invalid_client_metadata"),
        "https redirect": (native(redirect_uris=["https://app.example/cb"]), "invalid_redirect_uri"),
        "closed scope": (native(scope="photos:write"), "invalid_client_metadata"),
        "admin scope": (native(scope="admin:read"), "invalid_client_metadata"),
        "operator field": (native(first_party=True), "invalid_client_metadata"),
        "software statement": (native(software_statement="x.y.z"), "invalid_software_statement"),
        # else this server would send users anywhere after logout (an open redirector)
        "https post-logout redirect": (
            native(post_logout_redirect_uris=["https://evil.example/phish"]),
            "invalid_redirect_uri",
        ),
        "back-channel logout": (
            native(backchannel_logout_uri="https://evil.example/bc"),
            "invalid_client_metadata",
        ),
    }
    for name, (document, error) in cases.items():
        response = await http.post(REGISTER, json=document)
        assert response.status == 400, name
        assert (await response.json())["error"] == error, name
    assert (
        await http.post(REGISTER, data="not json", headers={"Content-Type": "application/json"})
    ).status == 400


async def test_admin_scopes_are_never_registered_dynamically(app_with: AppFactory) -> None:
    http = await app_with()
    token = await initial_token(registry_of(http), auto_approve=True)
    response = await http.post(
        REGISTER,
        json={"redirect_uris": ["https://a.example/cb"], "scope": "admin:write"},
        headers=bearer(token),
    )
    assert response.status == 400 and (await response.json())["error"] == "invalid_client_metadata"


async def test_fetched_urls_on_private_addresses_are_refused_for_a_production_issuer(
    app_with: AppFactory,
) -> None:
    http = await app_with(issuer="https://auth.example")
    token = await initial_token(registry_of(http))
    for document in (
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": "https://10.0.0.7/jwks.json",
            "grant_types": ["client_credentials"],
        },
        {
            "redirect_uris": ["https://a.example/cb"],
            "subject_type": "pairwise",
            "sector_identifier_uri": "https://192.168.1.1/sector.json",
        },
    ):
        response = await http.post(REGISTER, json=document, headers=bearer(token))
        assert response.status == 400, document
        assert (await response.json())["error"] == "invalid_client_metadata"


async def test_rfc7592_read_update_delete(app_with: AppFactory) -> None:
    http = await app_with(registration="open-native")
    info = await (await http.post(REGISTER, json=native(scope="openid"))).json()
    uri = "/oauth2/register/" + info["client_id"]
    old = info["registration_access_token"]
    anonymous = await http.get(uri)
    assert anonymous.status == 401
    assert "error=" not in anonymous.headers["WWW-Authenticate"]  # RFC 7592 §2.1, RFC 6750 §3.1
    assert (await http.get(uri, headers=bearer("wrong"))).status == 401
    read = await http.get(uri, headers=bearer(old))
    assert read.status == 200 and (await read.json())["client_name"] == "A CLI"
    # a narrowing change applies, a new name waits for review; the token rotates (RFC 7592 §2.2)
    updated = await http.put(
        uri, json={**info, "client_name": "Renamed", "scope": "openid"}, headers=bearer(old)
    )
    assert updated.status == 200, await updated.text()
    body = await updated.json()
    assert body["scope"] == "openid" and body["client_name"] == "A CLI"
    assert body["tessera_pending_changes"] == {"client_name": "Renamed"}
    assert body["registration_access_token"] != old
    assert (await http.get(uri, headers=bearer(old))).status == 401
    new = body["registration_access_token"]
    # a widening change waits for review; the approved settings stay
    wider = await http.put(uri, json=native(scope="openid profile"), headers=bearer(new))
    assert wider.status == 200
    wider_body = await wider.json()
    assert wider_body["scope"] == "openid" and wider_body["tessera_pending_changes"]["scope"]
    new = wider_body["registration_access_token"]
    # what is fixed at registration cannot change
    fixed = await http.put(uri, json=native(grant_types=["authorization_code"]), headers=bearer(new))
    assert fixed.status == 400 and (await fixed.json())["error"] == "invalid_client_metadata"
    # nor a security requirement (RFC 9126 §6, RFC 9449 §5.2): refused, never silently ignored
    for flag in ("require_pushed_authorization_requests", "dpop_bound_access_tokens"):
        tighter = await http.put(uri, json={**native(scope="openid"), flag: True}, headers=bearer(new))
        assert tighter.status == 400 and flag in (await tighter.json())["error_description"]
    mismatched = await http.put(uri, json=native(client_id="someone-else"), headers=bearer(new))
    assert mismatched.status == 400
    assert (await http.delete(uri, headers=bearer(new))).status == 204
    assert (await http.get(uri, headers=bearer(new))).status == 401
    assert await registry_of(http).clients.load(info["client_id"]) is None


async def test_registration_is_rate_limited_per_address(app_with: AppFactory) -> None:
    http = await app_with(registration="open-native", rate_register_per_ip=2, rate_sync_ms=0)
    statuses = [(await http.post(REGISTER, json=native())).status for _ in range(3)]
    assert statuses == [201, 201, 429]


async def test_open_registrations_have_an_hourly_cap(app_with: AppFactory) -> None:
    """60 an hour is one a minute, from every address together (spent in Redis, shared by replicas)."""
    capped = await app_with(registration="open-native", open_registrations_per_hour=60, rate_sync_ms=0)
    assert (await capped.post(REGISTER, json=native())).status == 201
    refused = await capped.post(REGISTER, json=native())
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
