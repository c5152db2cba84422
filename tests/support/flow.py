"""A browser's part of the authorization-code flow, driven through the aiohttp test client (or a
``ClientSession`` with a ``base_url``, as the benchmark does against servers of its own)."""

from __future__ import annotations

import base64
import html
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from aiohttp import ClientSession
from aiohttp.test_utils import TestClient

from auth_server.pkce import s256

REDIRECT_URI = "https://printer.example/callback"

Http = TestClient | ClientSession


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        return cls(verifier, s256(verifier))


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no hidden field {name} in page"
    return html.unescape(match.group(1))


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def authorize_params(
    client_id: str,
    *,
    pkce: Pkce | None = None,
    state: str | None = "state-123",
    scope: str | None = "photos:read",
    redirect_uri: str | None = REDIRECT_URI,
    response_type: str = "code",
) -> dict[str, str]:
    params = {"response_type": response_type, "client_id": client_id}
    if redirect_uri is not None:
        params["redirect_uri"] = redirect_uri
    if scope is not None:
        params["scope"] = scope
    if state is not None:
        params["state"] = state
    if pkce is not None:
        params.update(code_challenge=pkce.challenge, code_challenge_method="S256")
    return params


async def sign_in(http: Http, username: str, password: str, return_to: str = "") -> int:
    """Open the login page and submit it; return the status of the submission."""
    page = await http.get("/login", params={"return_to": return_to} if return_to else None)
    html = await page.text()
    response = await http.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": hidden(html, "csrf_token"),
            "return_to": return_to,
        },
        allow_redirects=False,
    )
    return response.status


async def obtain_code(
    http: Http,
    params: dict[str, str],
    username: str,
    password: str,
    *,
    decision: str = "allow",
    repeated: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """Run /authorize as a user would (log in, consent if asked); return the redirect's query.
    ``repeated``: parameters that may be named more than once (RFC 8707 ``resource``)."""
    query = urlencode([*params.items(), *repeated])
    response = await http.get(f"/oauth2/authorize?{query}", allow_redirects=False)
    if response.status == 302 and response.headers["Location"].startswith("/login"):
        return_to = query_of(response.headers["Location"])["return_to"]
        assert await sign_in(http, username, password, return_to) == 303
        response = await http.get(return_to, allow_redirects=False)
    if response.status == 200:  # the consent page
        html = await response.text()
        response = await http.post(
            "/consent",
            data={
                "csrf_token": hidden(html, "csrf_token"),
                "request_id": hidden(html, "request_id"),
                "consent": decision,
            },
            allow_redirects=False,
        )
    assert response.status in (302, 303), await response.text()
    location = response.headers["Location"]
    assert location.startswith(params.get("redirect_uri", REDIRECT_URI))
    return query_of(location)
