"""The Photo Warehouse (resource server) against a real, running Tessera: local JWT validation end to end."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from auth_server import keys
from auth_server.crypto import hash_password
from resource_server.app import create_app
from resource_server.settings import ResourceSettings
from tests.support.flow import basic
from tests.support.servers import PASSWORD, LiveServer, running_auth_server
from tests.support.services import Services

Factory = Callable[..., Awaitable[TestClient]]


def png(seed: int = 0) -> bytes:
    """A real 1x1 PNG (the warehouse checks magic bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixel = zlib.compress(bytes([0, seed % 256, 0, 0]))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", pixel)
        + chunk(b"IEND", b"")
    )


def resource_settings(issuer: str, audience: str, database_url: str, **extra: Any) -> ResourceSettings:
    return ResourceSettings(issuer=issuer, database_url=database_url, audience=audience, **extra)


@pytest.fixture
async def warehouse(aiohttp_client: Factory, live_server: LiveServer, database_url: str) -> TestClient:
    settings = resource_settings(live_server.url, live_server.settings.access_token_audience, database_url)
    return await aiohttp_client(create_app(settings))


async def _token(live: LiveServer, *, scope: str, username: str | None = None) -> str:
    """A user's token via the password grant (or the client's own via client_credentials)."""
    grants = ["client_credentials"] if username is None else ["password"]
    client, secret = await live.registry.clients.create(
        name="tests",
        redirect_uris=[],
        grant_types=grants,
        scope=scope.split(),
        auth_method="client_secret_basic",
    )
    assert secret
    form = {"grant_type": grants[0], "scope": scope}
    if username is not None:
        form.update(username=username, password=PASSWORD)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{live.url}/oauth2/token", data=form, headers=basic(client.client_id, secret)) as r,
    ):
        body = await r.json()
        assert r.status == 200, body
        token: str = body["access_token"]
        return token


async def _user_token(live: LiveServer, scope: str = "photos:read photos:write") -> str:
    user = await live.registry.users.create(f"u-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
    return await _token(live, scope=scope, username=user.username)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _upload(
    warehouse: TestClient, token: str, content: bytes, content_type: str = "image/png", title: str = "t"
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("title", title)
    form.add_field("file", io.BytesIO(content), filename="photo.png", content_type=content_type)
    return await warehouse.post("/api/photos", data=form, headers=_auth(token))


async def test_upload_list_read_and_delete(warehouse: TestClient, live_server: LiveServer) -> None:
    token = await _user_token(live_server)
    assert (await (await warehouse.get("/api/photos", headers=_auth(token))).json()) == {"photos": []}
    created = await _upload(warehouse, token, png(1), title="Xiamen harbour")
    assert created.status == 201
    photo = await created.json()
    assert photo["title"] == "Xiamen harbour" and photo["content_type"] == "image/png"
    listed = await (await warehouse.get("/api/photos", headers=_auth(token))).json()
    assert [p["id"] for p in listed["photos"]] == [photo["id"]]
    meta = await warehouse.get(f"/api/photos/{photo['id']}", headers=_auth(token))
    assert (await meta.json())["size"] == len(png(1))
    content = await warehouse.get(f"/api/photos/{photo['id']}/content", headers=_auth(token))
    assert content.content_type == "image/png" and await content.read() == png(1)
    assert (await warehouse.delete(f"/api/photos/{photo['id']}", headers=_auth(token))).status == 204
    assert (await warehouse.get(f"/api/photos/{photo['id']}", headers=_auth(token))).status == 404


async def test_a_user_never_sees_anothers_photos(warehouse: TestClient, live_server: LiveServer) -> None:
    alice, bob = await _user_token(live_server), await _user_token(live_server)
    photo = await (await _upload(warehouse, alice, png(2))).json()
    for method, path in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        response = await warehouse.request(method, f"/api/photos/{photo['id']}{path}", headers=_auth(bob))
        assert response.status == 404, (method, path)
        assert (await response.json())["error"] == "not_found"
    assert (await (await warehouse.get("/api/photos", headers=_auth(bob))).json())["photos"] == []
    assert (await warehouse.get(f"/api/photos/{photo['id']}", headers=_auth(alice))).status == 200


async def test_pagination(warehouse: TestClient, live_server: LiveServer) -> None:
    token = await _user_token(live_server)
    ids = [(await (await _upload(warehouse, token, png(n))).json())["id"] for n in range(3)]
    first = await (await warehouse.get("/api/photos?limit=2", headers=_auth(token))).json()
    assert [p["id"] for p in first["photos"]] == ids[::-1][:2]
    second = await (await warehouse.get(first["next"], headers=_auth(token))).json()
    assert [p["id"] for p in second["photos"]] == ids[:1] and "next" not in second


async def test_scopes_are_enforced_with_rfc6750_errors(
    warehouse: TestClient, live_server: LiveServer
) -> None:
    read_only = await _user_token(live_server, scope="photos:read")
    response = await _upload(warehouse, read_only, png())
    assert response.status == 403
    challenge = response.headers["WWW-Authenticate"]
    assert (
        challenge.startswith("Bearer ")
        and 'error="insufficient_scope"' in challenge
        and 'scope="photos:write"' in challenge
    )
    response = await warehouse.get("/api/photos")
    assert response.status == 401
    assert "error=" not in response.headers["WWW-Authenticate"]  # RFC 6750 §3.1: no token, no error code
    response = await warehouse.get("/api/photos", headers=_auth("not.a.jwt"))
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    response = await warehouse.get(f"/api/photos?access_token={read_only}")
    assert response.status == 400  # tokens only in the Authorization header


async def test_uploads_are_checked(warehouse: TestClient, live_server: LiveServer) -> None:
    token = await _user_token(live_server)
    assert (await _upload(warehouse, token, b"hello", "text/plain")).status == 415
    assert (
        await _upload(warehouse, token, b"\xff\xd8\xff" + b"jpeg", "image/png")
    ).status == 415  # bytes lie
    big = png() + b"\0" * (5 * 1024 * 1024)
    assert (await _upload(warehouse, token, big)).status == 413
    response = await warehouse.post(
        "/api/photos", data=b"{}", headers={**_auth(token), "Content-Type": "application/json"}
    )
    assert response.status == 415


async def test_stats_are_for_partner_clients_only(warehouse: TestClient, live_server: LiveServer) -> None:
    partner = await _token(live_server, scope="warehouse:stats")
    response = await warehouse.get("/api/stats", headers=_auth(partner))
    assert response.status == 200
    assert set(await response.json()) == {"users", "photos", "bytes"}
    user = await live_server.registry.users.create(f"u-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
    user_token = await _token(live_server, scope="warehouse:stats", username=user.username)
    assert (await warehouse.get("/api/stats", headers=_auth(user_token))).status == 403
    photos_token = await _user_token(live_server)
    response = await warehouse.get("/api/stats", headers=_auth(photos_token))
    assert response.status == 403 and 'scope="warehouse:stats"' in response.headers["WWW-Authenticate"]
    # and a partner token is no way into anyone's photos
    assert (
        await warehouse.get("/api/photos", headers=_auth(await _token(live_server, scope="photos:read")))
    ).status == 403


@pytest.fixture
async def stoppable_auth(
    database_url: str, backing: Services, redis_prefix: str
) -> AsyncIterator[tuple[LiveServer, web.AppRunner]]:
    async with running_auth_server(database_url, backing.redis_url, redis_prefix) as running:
        yield running


async def test_keeps_answering_while_the_auth_server_is_down(
    aiohttp_client: Factory, stoppable_auth: tuple[LiveServer, web.AppRunner], database_url: str
) -> None:
    live, runner = stoppable_auth
    warehouse = await aiohttp_client(
        create_app(resource_settings(live.url, live.settings.access_token_audience, database_url))
    )
    token = await _user_token(live)
    assert (await warehouse.get("/api/photos", headers=_auth(token))).status == 200
    await runner.cleanup()  # the auth server is gone
    assert (await warehouse.get("/api/photos", headers=_auth(token))).status == 200
    assert (await _upload(warehouse, token, png(5))).status == 201


async def test_rotated_keys_are_picked_up_without_restart(
    aiohttp_client: Factory, stoppable_auth: tuple[LiveServer, web.AppRunner], database_url: str
) -> None:
    live, _ = stoppable_auth
    settings = resource_settings(
        live.url,
        live.settings.access_token_audience,
        database_url,
        jwks_refresh_interval=3600,
        jwks_min_refetch_interval=0,
    )
    warehouse = await aiohttp_client(create_app(settings))
    before = await _user_token(live)
    assert (await warehouse.get("/api/photos", headers=_auth(before))).status == 200
    rotated = await keys.rotate(live.registry, prepublication=0)
    try:
        await keys.reload(live.registry)
        after = await _user_token(live)
        assert jwt.get_unverified_header(after)["kid"] == rotated.kid
        # an unknown kid makes the validator refetch the JWKS: no restart, no waiting for the refresh
        assert (await warehouse.get("/api/photos", headers=_auth(after))).status == 200
        assert (
            await warehouse.get("/api/photos", headers=_auth(before))
        ).status == 200  # old key still published
    finally:
        # the shared test database keeps signing with ES256 keys; make the rotated key the last word anyway
        await keys.reload(live.registry)


async def test_malformed_uploads_are_clear_4xx(warehouse: TestClient, live_server: LiveServer) -> None:
    token = await _user_token(live_server)
    cases = [
        (b"--x\r\n", "multipart/form-data"),  # no boundary
        (b"garbage without the boundary", "multipart/form-data; boundary=abc"),
        (
            b'--abc\r\nContent-Disposition: form-data; name="file"\r\n\r\npartial',
            "multipart/form-data; boundary=abc",
        ),
    ]
    for body, content_type in cases:
        response = await warehouse.post(
            "/api/photos", data=body, headers={**_auth(token), "Content-Type": content_type}
        )
        assert response.status == 400, (body, await response.text())
        assert (await response.json())["error"] == "invalid_request"
    form = aiohttp.FormData()
    form.add_field("title", "nul\x00title")
    form.add_field("file", io.BytesIO(png()), filename="p.png", content_type="image/png")
    assert (await warehouse.post("/api/photos", data=form, headers=_auth(token))).status == 400
    riff_not_webp = b"RIFF\x00\x00\x00\x00WAVEfmt "
    assert (await _upload(warehouse, token, riff_not_webp, "image/webp")).status == 415


async def test_pagination_survives_a_deleted_cursor_photo(
    warehouse: TestClient, live_server: LiveServer
) -> None:
    token = await _user_token(live_server)
    ids = [(await (await _upload(warehouse, token, png(n))).json())["id"] for n in range(3)]
    first = await (await warehouse.get("/api/photos?limit=2", headers=_auth(token))).json()
    assert (
        await warehouse.delete(f"/api/photos/{first['photos'][-1]['id']}", headers=_auth(token))
    ).status == 204
    second = await warehouse.get(first["next"], headers=_auth(token))
    assert second.status == 200
    assert [p["id"] for p in (await second.json())["photos"]] == ids[:1]
    bad = await warehouse.get("/api/photos?after=not-a-cursor", headers=_auth(token))
    assert bad.status == 400
