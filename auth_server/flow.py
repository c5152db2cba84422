"""``tessera flow``: run the authorization-code flow (RFC 6749 §4.1, RFC 7636 PKCE) as a client would.

Like Hydra's ``hydra perform authorization-code``: it prints (and opens, if it can) the authorization
URL with PKCE and a fresh ``state``, listens for the redirect on a loopback callback
(``http://127.0.0.1:PORT/callback``, RFC 8252 §7.3 — the client must have it registered), checks the
``state``, exchanges the code at the token endpoint and prints the token response as JSON. It talks
to the authorization server over HTTP only, finding its endpoints in the RFC 8414 metadata.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import re
import secrets
import sys
import webbrowser
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from shared.cli import CommandError

CALLBACK_PATH = "/callback"
DEFAULT_PORT = 8400


@dataclass(frozen=True, slots=True)
class FlowRequest:
    issuer: str
    client_id: str
    client_secret: str | None  # None: a public client (PKCE only)
    scope: str
    port: int
    open_browser: bool = True
    timeout: float = 300.0

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"


@dataclass(frozen=True, slots=True)
class _Callback:
    params: dict[str, str]


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _metadata(http: aiohttp.ClientSession, issuer: str) -> dict[str, Any]:
    url = f"{issuer}/.well-known/oauth-authorization-server"
    try:
        async with http.get(url) as response:
            if response.status != 200:
                raise CommandError(f"{url} answered HTTP {response.status}: is {issuer} a Tessera issuer?")
            metadata: dict[str, Any] = await response.json()
    except aiohttp.ClientError as error:
        raise CommandError(
            f"cannot reach the authorization server at {issuer} ({error}); is it running?"
            " (`tessera dev` or `tessera auth-server`; --issuer names another one)"
        ) from None
    return metadata


def _page_text(page: str) -> str:
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(html.unescape(text).split())[:300]


async def _preflight(http: aiohttp.ClientSession, url: str, request: FlowRequest) -> None:
    """Ask the authorization endpoint once, before the user does: an unknown client or an
    unregistered redirect URI is shown as an error page (never redirected), and is said here."""
    async with http.get(url, allow_redirects=False) as response:
        if response.status < 400:
            return
        page = await response.text()
    raise CommandError(
        f"the authorization server refused the request (HTTP {response.status}): {_page_text(page)}\n"
        f"Check that client {request.client_id!r} exists (`tessera client show {request.client_id}`) and has"
        f" {request.redirect_uri} among its redirect URIs; register a client for this command with, e.g.,\n"
        f"  tessera client create --name 'tessera flow' --public --redirect-uri {request.redirect_uri}"
        f" --scope '{request.scope}'"
    )


async def _listen(request: FlowRequest) -> tuple[web.AppRunner, asyncio.Future[_Callback]]:
    arrived: asyncio.Future[_Callback] = asyncio.get_running_loop().create_future()

    async def callback(http_request: web.Request) -> web.Response:
        if not arrived.done():
            arrived.set_result(_Callback(dict(http_request.query)))
        return web.Response(
            text="<!doctype html><title>tessera flow</title>"
            "<p>Done: the authorization response reached <code>tessera flow</code>."
            " You can close this window and return to the terminal.</p>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get(CALLBACK_PATH, callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", request.port).start()
    except OSError as error:
        await runner.cleanup()
        raise CommandError(
            f"cannot listen on 127.0.0.1:{request.port} ({error.strerror}); choose another with --port"
            " (and register that redirect URI for the client)"
        ) from None
    return runner, arrived


async def _exchange(
    http: aiohttp.ClientSession, token_endpoint: str, request: FlowRequest, code: str, verifier: str
) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": request.redirect_uri,
        "code_verifier": verifier,
    }
    auth = None
    if request.client_secret is None:
        form["client_id"] = request.client_id
    else:
        auth = aiohttp.BasicAuth(request.client_id, request.client_secret)  # client_secret_basic
    async with http.post(token_endpoint, data=form, auth=auth) as response:
        body: dict[str, Any] = await response.json(content_type=None)
        if response.status != 200:
            raise CommandError(
                f"the token endpoint refused the code (HTTP {response.status}):"
                f" {body.get('error')}: {body.get('error_description', '')}"
            )
    return body


async def perform(request: FlowRequest) -> dict[str, Any]:
    """Run the flow; the token response."""
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    async with aiohttp.ClientSession() as http:
        metadata = await _metadata(http, request.issuer)
        query = {
            "response_type": "code",
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "scope": request.scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        url = f"{metadata['authorization_endpoint']}?{urlencode(query)}"
        runner, arrived = await _listen(request)
        try:
            await _preflight(http, url, request)
            _say(f"Open this URL in a browser, sign in and answer the consent page:\n\n  {url}\n")
            if request.open_browser:
                with contextlib.suppress(webbrowser.Error):
                    webbrowser.open(url)
            _say(f"Waiting for the redirect to {request.redirect_uri} (Ctrl-C to give up)…")
            try:
                answer = (await asyncio.wait_for(arrived, request.timeout)).params
            except TimeoutError:
                raise CommandError(f"no redirect arrived within {request.timeout:.0f} s") from None
        finally:
            await runner.cleanup()
        if answer.get("state") != state:
            raise CommandError("the redirect's state does not match the request's: refusing its code")
        if "error" in answer:
            raise CommandError(
                f"the authorization server answered {answer['error']}: {answer.get('error_description', '')}"
            )
        if "code" not in answer:
            raise CommandError("the redirect carried neither a code nor an error")
        if "iss" in answer and answer["iss"] != metadata.get("issuer"):
            # RFC 9207: a response from another issuer (mix-up)
            raise CommandError(
                f"the redirect came from issuer {answer['iss']!r}, not {metadata.get('issuer')!r}"
            )
        return await _exchange(http, metadata["token_endpoint"], request, answer["code"], verifier)
