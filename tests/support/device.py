"""The device authorization grant (RFC 8628) from both sides, through the aiohttp test client (or a
``ClientSession`` with a ``base_url``): the device's requests, and the user's part on /device."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from auth_server.clients import Client
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from tests.support.flow import Http, basic, hidden, query_of, sign_in

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")


async def device_client(
    registry: Registry,
    *,
    public: bool = True,
    scope: str = "openid profile offline_access photos:read photos:write",
    grant_types: Sequence[str] = (DEVICE_CODE, "refresh_token"),
    name: str = "Living Room TV",
) -> tuple[Client, str | None]:
    """A client registered for the device grant alone: no redirect URI (none is needed)."""
    registered = await register(
        registry,
        ClientMetadata(
            client_name=name,
            redirect_uris=[],
            grant_types=list(grant_types),
            scope=scope.split(),
            token_endpoint_auth_method="none" if public else "client_secret_basic",
        ),
    )
    return registered.client, registered.secret


def _auth(client_id: str, secret: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(form fields, headers) that authenticate the client: its id alone, or HTTP Basic."""
    if secret is None:
        return {"client_id": client_id}, {}
    return {}, basic(client_id, secret)


async def start(
    http: Http,
    client_id: str,
    secret: str | None = None,
    *,
    scope: str | None = "photos:read",
    resources: Sequence[str] = (),
) -> tuple[int, dict[str, Any]]:
    """The device authorization request (RFC 8628 §3.1): its status and JSON body."""
    fields, headers = _auth(client_id, secret)
    data: list[tuple[str, str]] = list(fields.items())
    if scope is not None:
        data.append(("scope", scope))
    data += [("resource", resource) for resource in resources]
    response = await http.post("/oauth2/device_authorization", data=data, headers=headers)
    assert response.headers["Cache-Control"] == "no-store"
    return response.status, await response.json()


async def poll(
    http: Http, client_id: str, secret: str | None, device_code: str, **extra: str
) -> tuple[int, dict[str, Any]]:
    """One poll of the token endpoint (RFC 8628 §3.4): its status and JSON body."""
    fields, headers = _auth(client_id, secret)
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": DEVICE_CODE, "device_code": device_code, **fields, **extra},
        headers=headers,
    )
    assert response.headers["Cache-Control"] == "no-store"
    return response.status, await response.json()


def verification_path(uri: str) -> str:
    """``verification_uri_complete`` as a path and query on the server under test."""
    parts = urlsplit(uri)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def open_verification(http: Http, path: str, username: str, password: str) -> str:
    """Open the verification page as the user would (signing in when asked); its HTML."""
    response = await http.get(path, allow_redirects=False)
    if response.status == 303 and response.headers["Location"].startswith("/login"):
        return_to = query_of(response.headers["Location"])["return_to"]
        assert await sign_in(http, username, password, return_to) == 303
        response = await http.get(return_to, allow_redirects=False)
    assert response.status == 200, await response.text()
    return await response.text()


async def enter_code(http: Http, page: str, user_code: str) -> tuple[int, str]:
    """Submit ``user_code`` on the code page ``page``: the status and the page answered."""
    response = await http.post(
        "/device", data={"csrf_token": hidden(page, "csrf_token"), "user_code": user_code}
    )
    return response.status, await response.text()


async def answer_consent(
    http: Http, consent_page: str, decision: str = "allow", ticked: Sequence[str] | None = None
) -> tuple[int, str]:
    """Answer the consent page shown for a device; ``ticked``: the scopes left ticked (None: as shown)."""
    data = [
        ("csrf_token", hidden(consent_page, "csrf_token")),
        ("request_id", hidden(consent_page, "request_id")),
        ("consent", decision),
    ]
    if ticked is not None:
        data += [("scope_choice", "1"), *(("scope", scope) for scope in ticked)]
    response = await http.post("/device/consent", data=data)
    return response.status, await response.text()


async def approve(
    http: Http,
    authorization: dict[str, Any],
    username: str,
    password: str,
    *,
    decision: str = "allow",
    ticked: Sequence[str] | None = None,
) -> str:
    """The user's whole part, from ``verification_uri_complete``: sign in, confirm the code, answer
    the consent page; the last page's HTML."""
    page = await open_verification(
        http, verification_path(authorization["verification_uri_complete"]), username, password
    )
    status, consent = await enter_code(http, page, hidden(page, "user_code"))
    assert status == 200 and 'action="/device/consent"' in consent, consent
    status, done = await answer_consent(http, consent, decision, ticked)
    assert status == 200, done
    return done
