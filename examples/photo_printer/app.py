"""Photo Printer: a third-party site that prints photos it imports from the Photo Warehouse.

Its users "Sign in with Photo Warehouse": it is an OpenID Connect relying party and a confidential
OAuth 2.0 client (``client_secret_basic``) in one sign-in, and uses only what any client may use:
the issuer's discovery document, the authorization-code flow with PKCE S256, ``state`` and
``nonce``, RFC 9207's ``iss`` check, the token endpoint, a verified ID token (``oidc.py``),
userinfo, RP-initiated and back-channel logout, and the warehouse API. It imports nothing from
Tessera.

Sessions live on the server, in memory: the browser holds only a random id in an ``HttpOnly``,
``SameSite=Lax`` cookie, and tokens never reach it (except the ID token, as the ``id_token_hint``
of the sign-out redirect). Photos reach the browser through this site's own ``/photos/{id}/image``
proxy. Tokens, codes and the client secret are never logged, and the
access log leaves out query strings.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit, urlunsplit

import aiohttp
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from examples.photo_printer.oidc import (
    KeySet,
    LogoutRequest,
    MetadataError,
    ProviderMetadata,
    TokenInvalid,
    check_url,
    discover,
    verify_id_token,
    verify_logout_token,
)

__all__ = ["ConfigError", "MetadataError", "PrinterSettings", "create_app"]

log = logging.getLogger("photo_printer")

COOKIE = "photo_printer_session"
# sign in (openid), greet by name with the avatar (profile, email), keep importing while the user is
# away (offline_access: a refresh token, OpenID Connect Core §11), and read the photos
DEFAULT_SCOPE = "openid profile email offline_access photos:read"
PENDING_TTL = 600  # seconds a sign-in may take, from /connect to /callback
SESSION_IDLE_TIMEOUT = 3600
MAX_SESSIONS = 10_000
EXPIRY_MARGIN = 30  # refresh this many seconds before the access token's stored expiry
THUMBNAIL_WIDTH = 160
PAGE_SIZE = 24
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # /callback's URL holds the code: it must never travel in a Referer header
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def content_security_policy(form_targets: str = "") -> str:
    """The pages' policy. img-src: the user's avatar is a URL of the provider's choosing (https:, or
    a data: URL). form-action: the sign-out form redirects to the provider's end_session_endpoint, and
    browsers check a form's redirects too, so its origin is in ``form_targets``."""
    return (
        "default-src 'none'; img-src 'self' data: https:; style-src 'unsafe-inline';"
        f" form-action 'self'{' ' + form_targets if form_targets else ''}; frame-ancestors 'none';"
        " base-uri 'none'"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


class ConfigError(ValueError):
    """A setting is missing or malformed."""


def _check_url(name: str, value: str) -> str:
    try:
        return check_url(name, value)
    except ValueError as error:
        raise ConfigError(str(error)) from None


@dataclass(frozen=True, slots=True)
class PrinterSettings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str = "http://localhost:9000/callback"
    api_base: str = "http://localhost:8001"
    host: str = "127.0.0.1"
    port: int = 9000
    scope: str = DEFAULT_SCOPE

    def __post_init__(self) -> None:
        _check_url("PRINTER_ISSUER", self.issuer)
        _check_url("PRINTER_REDIRECT_URI", self.redirect_uri)
        _check_url("PRINTER_API_BASE", self.api_base)
        if urlsplit(self.issuer).query:
            raise ConfigError("PRINTER_ISSUER must not have a query (OpenID Connect Discovery §3)")
        if not self.client_id or not self.client_secret:
            raise ConfigError("PRINTER_CLIENT_ID and PRINTER_CLIENT_SECRET are required")
        if "openid" not in self.scope.split():
            raise ConfigError("PRINTER_SCOPE must include openid: the printer signs its users in")
        if not 0 < self.port < 65536:
            raise ConfigError("PRINTER_PORT must be between 1 and 65535")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PrinterSettings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str:
            value = env.get(name, "").strip() or default
            if value is None:
                raise ConfigError(f"{name} is required")
            return value

        try:
            port = int(get("PRINTER_PORT", "9000"))
        except ValueError:
            raise ConfigError("PRINTER_PORT must be a whole number") from None
        return cls(
            issuer=get("PRINTER_ISSUER", "http://localhost:8000").rstrip("/"),
            client_id=get("PRINTER_CLIENT_ID"),
            client_secret=get("PRINTER_CLIENT_SECRET"),
            redirect_uri=get("PRINTER_REDIRECT_URI", "http://localhost:9000/callback"),
            api_base=get("PRINTER_API_BASE", "http://localhost:8001").rstrip("/"),
            host=get("PRINTER_HOST", "127.0.0.1"),
            port=port,
            scope=get("PRINTER_SCOPE", DEFAULT_SCOPE),
        )

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.redirect_uri).scheme == "https"

    @property
    def post_logout_redirect_uri(self) -> str:
        """Where the provider sends the browser back after sign-out: this site's home page."""
        parts = urlsplit(self.redirect_uri)
        return urlunsplit((parts.scheme, parts.netloc, "/", "", ""))


# --- server-side sessions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """What /connect remembers until /callback: the state, the nonce and the PKCE verifier."""

    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    created_at: float


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float | None  # time.time() seconds; None when the server gave no expires_in
    scope: str

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at - EXPIRY_MARGIN


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """Who signed in: the ID token's ``sub`` and ``sid``, the profile userinfo gave, and the ID token
    itself (the ``id_token_hint`` of the sign-out)."""

    sub: str
    sid: str | None
    display_name: str
    picture: str | None
    id_token: str = field(repr=False)


@dataclass(slots=True, eq=False)
class BrowserSession:
    session_id: str = field(repr=False)
    csrf_token: str = field(repr=False)
    last_seen: float
    pending: PendingAuthorization | None = None
    user: SignedInUser | None = None
    tokens: Tokens | None = None
    logout_state: str | None = field(default=None, repr=False)  # the state of a sign-out in progress
    # one refresh at a time: the browser loads thumbnails in parallel, and Tessera rotates refresh
    # tokens and revokes the whole family when a rotated one is presented again
    refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)


class SessionStore:
    """Sessions by id, in this process's memory (a demo; a real site would use Redis or a database)."""

    def __init__(self, *, idle_timeout: float = SESSION_IDLE_TIMEOUT, max_sessions: int = MAX_SESSIONS):
        self.idle_timeout, self.max_sessions = idle_timeout, max_sessions
        self._sessions: dict[str, BrowserSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str | None) -> BrowserSession | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        now = time.time()
        if session is None:
            return None
        if now - session.last_seen > self.idle_timeout:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def create(self) -> BrowserSession:
        now = time.time()
        self._prune(now)
        session = BrowserSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now)
        self._sessions[session.session_id] = session
        return session

    def end(self, session: BrowserSession) -> None:
        """Forget the session: its cookie is worth nothing from now on."""
        self._sessions.pop(session.session_id, None)

    def end_matching(self, logout: LogoutRequest) -> int:
        """End the session with the logout's ``sid`` (when it has one), or every session of its ``sub``;
        return how many ended."""
        ended = [
            session_id
            for session_id, session in self._sessions.items()
            if session.user is not None
            and (logout.sid is None or session.user.sid == logout.sid)
            and (logout.sub is None or session.user.sub == logout.sub)
        ]
        for session_id in ended:
            del self._sessions[session_id]
        return len(ended)

    def rotate(self, session: BrowserSession) -> None:
        """New id and CSRF token for the same session, once it holds tokens (no session fixation)."""
        self._sessions.pop(session.session_id, None)
        session.session_id, session.csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._sessions[session.session_id] = session

    def _prune(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if now - s.last_seen > self.idle_timeout]:
            del self._sessions[sid]
        while len(self._sessions) >= self.max_sessions:  # the oldest first
            del self._sessions[next(iter(self._sessions))]


SETTINGS = web.AppKey("printer_settings", PrinterSettings)
SESSIONS = web.AppKey("printer_sessions", SessionStore)
METADATA = web.AppKey("printer_metadata", ProviderMetadata)
KEYS = web.AppKey("printer_keys", KeySet)
POLICY = web.AppKey("printer_content_security_policy", str)
HTTP = web.AppKey("printer_http", aiohttp.ClientSession)


def current_session(request: web.Request) -> BrowserSession | None:
    return request.app[SESSIONS].get(request.cookies.get(COOKIE))


def connected_session(request: web.Request) -> BrowserSession | None:
    session = current_session(request)
    return session if session is not None and session.tokens is not None else None


def set_session_cookie(request: web.Request, response: web.StreamResponse, session: BrowserSession) -> None:
    response.set_cookie(
        COOKIE,
        session.session_id,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request.app[SETTINGS].secure_cookies,
    )


# --- talking to the token endpoint and the API ----------------------------------------------------


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def basic_authorization(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: id and secret are form-encoded first, then joined and base64-encoded."""
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class TokenError(Exception):
    """The token endpoint refused, or did not answer (``status`` None)."""

    def __init__(self, error: str, status: int | None) -> None:
        super().__init__(error)
        self.error, self.status = error, status

    @property
    def temporary(self) -> bool:
        return self.status is None or self.status >= 500 or self.error == "temporarily_unavailable"


class Reconnect(Exception):
    """The session's tokens are gone or no longer accepted: the user has to connect again."""


class Unavailable(Exception):
    """The warehouse or the authorization server did not answer."""


async def token_request(app: web.Application, form: dict[str, str]) -> dict[str, Any]:
    settings, metadata = app[SETTINGS], app[METADATA]
    headers = {
        "Authorization": basic_authorization(settings.client_id, settings.client_secret),
        "Accept": "application/json",
    }
    try:
        async with app[HTTP].post(
            metadata.token_endpoint, data=form, headers=headers, allow_redirects=False
        ) as response:
            status = response.status
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
    except (aiohttp.ClientError, TimeoutError):
        raise TokenError("unreachable", None) from None
    if status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        raise TokenError(error if isinstance(error, str) else f"http_{status}", status)
    return body


def tokens_from(body: Mapping[str, Any], *, previous_refresh: str | None, scope: str) -> Tokens:
    access, token_type = body.get("access_token"), body.get("token_type")
    if not isinstance(access, str) or not access or not isinstance(token_type, str):
        raise TokenError("invalid_token_response", 200)
    if token_type.lower() != "bearer":
        raise TokenError("unsupported_token_type", 200)
    expires_in = body.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        expires_at = time.time() + expires_in
    refresh = body.get("refresh_token")
    granted = body.get("scope")
    return Tokens(
        access_token=access,
        # RFC 6749 §6: a server may keep the refresh token; Tessera always rotates it
        refresh_token=refresh if isinstance(refresh, str) and refresh else previous_refresh,
        expires_at=expires_at,
        scope=granted if isinstance(granted, str) else scope,  # §5.1: omitted means as requested
    )


async def _form(request: web.Request) -> Mapping[str, Any]:
    """The posted form, or an empty one when the body is malformed (the CSRF check then fails)."""
    try:
        return await request.post()
    except (ValueError, LookupError, UnicodeDecodeError):
        return {}


async def refresh(app: web.Application, session: BrowserSession, stale: Tokens) -> Tokens:
    """New tokens for ``stale``, unless a concurrent request has already replaced them."""
    async with session.refresh_lock:
        current = session.tokens
        if current is None:
            raise Reconnect
        if current is not stale:
            return current
        if current.refresh_token is None:
            session.tokens = None
            raise Reconnect
        try:
            body = await token_request(
                app, {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
            )
            tokens = tokens_from(body, previous_refresh=current.refresh_token, scope=current.scope)
        except TokenError as error:
            log.info("refreshing the access token failed: %s", error.error)
            if error.temporary:
                raise Unavailable from None
            session.tokens = None  # invalid_grant and the like: this grant is over
            raise Reconnect from None
        session.tokens = tokens
        return tokens


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    content_type: str
    body: bytes


async def _api_get(app: web.Application, path: str, access_token: str) -> ApiResponse:
    url = app[SETTINGS].api_base + path
    try:
        async with app[HTTP].get(
            url, headers={"Authorization": f"Bearer {access_token}"}, allow_redirects=False
        ) as response:
            return ApiResponse(response.status, response.content_type, await response.read())
    except (aiohttp.ClientError, TimeoutError):
        raise Unavailable from None


async def call_api(app: web.Application, session: BrowserSession, path: str) -> ApiResponse:
    """GET ``path`` on the warehouse with the session's token, refreshing it once when needed."""
    tokens = session.tokens
    if tokens is None:
        raise Reconnect
    refreshed = False
    if tokens.expired(time.time()):
        tokens, refreshed = await refresh(app, session, tokens), True
    response = await _api_get(app, path, tokens.access_token)
    if response.status == 401 and not refreshed:  # revoked, expired early, or signed with a retired key
        tokens = await refresh(app, session, tokens)
        response = await _api_get(app, path, tokens.access_token)
    if response.status == 401:
        if session.tokens is tokens:
            session.tokens = None
        raise Reconnect
    return response


# --- who signed in: the ID token and userinfo ------------------------------------------------------


class UserinfoError(Exception):
    """Userinfo did not answer with the signed-in user's claims."""


async def fetch_userinfo(app: web.Application, access_token: str) -> dict[str, Any]:
    """The claims userinfo (Core §5.3) gives for ``access_token``, or ``{}`` if the provider has none."""
    endpoint = app[METADATA].userinfo_endpoint
    if endpoint is None:
        return {}
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    try:
        async with app[HTTP].get(endpoint, headers=headers, allow_redirects=False) as response:
            if response.status != 200 or response.content_type != "application/json":
                raise UserinfoError(f"status {response.status}, {response.content_type}")
            claims = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise UserinfoError(type(error).__name__) from None
    if not isinstance(claims, dict):
        raise UserinfoError("not a JSON object")
    return claims


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def avatar(claims: Mapping[str, Any]) -> str | None:
    """The ``picture`` claim, if the page may show it: an https URL or a data: URL of an image."""
    picture = _text(claims, "picture")
    if picture is None:
        return None
    if picture.startswith("data:image/") or urlsplit(picture).scheme == "https":
        return picture
    return None


async def signed_in_user(
    app: web.Application, body: Mapping[str, Any], tokens: Tokens, nonce: str
) -> SignedInUser:
    """The user a token response signs in: its ID token verified, and userinfo read with the same ``sub``."""
    id_token = body.get("id_token")
    if not isinstance(id_token, str):
        raise TokenInvalid("the token response has no ID token")
    claims = await verify_id_token(
        id_token,
        keys=app[KEYS],
        metadata=app[METADATA],
        client_id=app[SETTINGS].client_id,
        nonce=nonce,
        access_token=tokens.access_token,
    )
    profile = await fetch_userinfo(app, tokens.access_token)
    if profile and profile.get("sub") != claims["sub"]:
        raise UserinfoError("userinfo is about another user")  # Core §5.3.2: must not be used
    merged = {**claims, **profile}
    names = (_text(merged, name) for name in ("nickname", "name", "preferred_username"))
    sid = claims.get("sid")
    return SignedInUser(
        sub=claims["sub"],
        sid=sid if isinstance(sid, str) else None,
        display_name=next((name for name in names if name), "there"),
        picture=avatar(merged),
        id_token=id_token,
    )


# --- pages ------------------------------------------------------------------------------------------


def render(
    template: str, *, status: int = 200, session: BrowserSession | None = None, **context: Any
) -> web.Response:
    """A page; with the signed-in ``session``, its header greets the user and offers to sign out."""
    context.setdefault("csrf", session.csrf_token if session is not None else "")
    user = session.user if session is not None else None
    text = _templates.get_template(template).render(user=user, **context)
    return web.Response(text=text, status=status, content_type="text/html")


def message(
    heading: str,
    text: str,
    *,
    status: int = 200,
    error: bool = False,
    detail: str | None = None,
    link: str | None = None,
    link_text: str = "",
) -> web.Response:
    return render(
        "message.html",
        status=status,
        heading=heading,
        message=text,
        error=error,
        detail=detail,
        link=link,
        link_text=link_text,
    )


def sign_in_failed(why: str, *, status: int = 400) -> web.Response:
    return message(
        "Sign-in failed",
        f"Photo Warehouse could not sign you in ({why}). Please try again.",
        status=status,
        error=True,
        link="/connect",
        link_text="Try again",
    )


def invalid_link() -> web.Response:
    return message(
        "Sign-in failed",
        "This sign-in link is not valid or has expired.",
        status=400,
        error=True,
        link="/connect",
        link_text="Start again",
    )


def please_reconnect() -> web.Response:
    return message(
        "Connection lost",
        "Photo Warehouse no longer accepts our access to your photos. Please connect again.",
        link="/connect",
        link_text="Sign in with Photo Warehouse",
    )


def unavailable() -> web.Response:
    return message(
        "Photo Warehouse is not answering",
        "We could not reach Photo Warehouse. Please try again in a moment.",
        status=503,
        error=True,
    )


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    return values[0] if len(values) == 1 and values[0] else None


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())


def _photo_id(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _csrf_ok(session: BrowserSession, form: Mapping[str, Any]) -> bool:
    token = form.get("csrf_token")
    return isinstance(token, str) and _same(token, session.csrf_token)


def expired_form() -> web.Response:
    return message(
        "Please try again",
        "This form has expired. Go back to your photos and try again.",
        status=400,
        error=True,
        link="/photos",
        link_text="Your photos",
    )


async def index(request: web.Request) -> web.Response:
    """The home page: a greeting, or "Sign in with Photo Warehouse" (and, back from a sign-out whose
    ``state`` matches, the news that it worked: RP-Initiated Logout §3)."""
    session = current_session(request)
    signed_out = False
    state = _single(request, "state")
    if session is not None and session.logout_state is not None and state is not None:
        signed_out = _same(state, session.logout_state)
        session.logout_state = None
    return render("index.html", session=session, signed_out=signed_out)


async def connect(request: web.Request) -> web.Response:
    settings, metadata = request.app[SETTINGS], request.app[METADATA]
    session = current_session(request) or request.app[SESSIONS].create()
    pending = PendingAuthorization(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),
        created_at=time.time(),
    )
    session.pending = pending
    params = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": settings.redirect_uri,
        "scope": settings.scope,
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": s256(pending.code_verifier),
        "code_challenge_method": "S256",
    }
    endpoint = metadata.authorization_endpoint
    separator = "&" if urlsplit(endpoint).query else "?"
    response = web.Response(status=302, headers={"Location": f"{endpoint}{separator}{urlencode(params)}"})
    set_session_cookie(request, response, session)
    return response


async def callback(request: web.Request) -> web.Response:
    app = request.app
    settings, metadata = app[SETTINGS], app[METADATA]
    session = current_session(request)
    pending = session.pending if session is not None else None
    state = _single(request, "state")
    if (
        session is None
        or pending is None
        or state is None
        or time.time() - pending.created_at > PENDING_TTL
        or not _same(state, pending.state)
    ):
        return invalid_link()
    session.pending = None  # one use only
    iss = request.query.getall("iss", [])
    if iss != [metadata.issuer] and (iss or metadata.iss_parameter_supported):
        # RFC 9207 §2.4: the answer comes from another issuer (a mix-up attack), or lacks iss
        # although this issuer always sends it
        log.warning("authorization response with a wrong or missing iss refused")
        return message(
            "Sign-in failed",
            "This sign-in response did not come from Photo Warehouse's sign-in server.",
            status=400,
            error=True,
            link="/connect",
            link_text="Start again",
        )
    error = _single(request, "error")
    if error == "access_denied":
        return message(
            "Not signed in",
            "You chose not to sign in with Photo Warehouse. Nothing was imported.",
            link="/connect",
            link_text="Try again",
        )
    if error is not None:
        return message(
            "Sign-in failed",
            f"Photo Warehouse could not sign you in ({error}).",
            status=400,
            error=True,
            detail=_single(request, "error_description"),
            link="/connect",
            link_text="Try again",
        )
    code = _single(request, "code")
    if code is None:
        return invalid_link()
    try:
        body = await token_request(
            app,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": settings.redirect_uri,
                "code_verifier": pending.code_verifier,
            },
        )
        tokens = tokens_from(body, previous_refresh=None, scope=settings.scope)
        user = await signed_in_user(app, body, tokens, pending.nonce)
    except TokenError as failure:
        log.warning("the code exchange failed: %s", failure.error)
        return sign_in_failed(failure.error, status=502)
    except TokenInvalid as refused:
        log.warning("the ID token was refused: %s", refused)
        return sign_in_failed("invalid_id_token")
    except UserinfoError as failure:
        log.warning("userinfo failed: %s", failure)
        return sign_in_failed("userinfo_failed", status=502)
    session.user, session.tokens = user, tokens
    app[SESSIONS].rotate(session)
    response = see_other("/")  # the home page greets the user
    set_session_cookie(request, response, session)
    return response


@dataclass(frozen=True, slots=True)
class PhotoView:
    id: str
    title: str


def _photo_list(body: Any) -> tuple[list[PhotoView], str | None]:
    items = body.get("photos") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValueError("no photos list")
    photos = []
    for item in items:
        photo_id = _photo_id(item.get("id")) if isinstance(item, dict) else None
        if photo_id is None:
            continue
        title = item.get("title")
        photos.append(PhotoView(photo_id, title if isinstance(title, str) and title else "Untitled"))
    next_after = None
    if isinstance(body.get("next"), str):
        after = parse_qs(urlsplit(body["next"]).query).get("after", [""])[0]
        next_after = _photo_id(after) if after else None
    return photos, next_after


async def photos_page(request: web.Request) -> web.Response:
    session = connected_session(request)
    if session is None:
        return see_other("/")
    query: dict[str, str | int] = {"limit": PAGE_SIZE}
    after = _photo_id(request.query.get("after")) if "after" in request.query else None
    if after is not None:
        query["after"] = after
    try:
        api = await call_api(request.app, session, f"/api/photos?{urlencode(query)}")
        if api.status != 200:
            return message(
                "Something went wrong",
                f"Photo Warehouse answered with an error ({api.status}).",
                status=502,
                error=True,
            )
        photos, next_after = _photo_list(json.loads(api.body))
    except Reconnect:
        return please_reconnect()
    except Unavailable:
        return unavailable()
    except ValueError:
        return message("Something went wrong", "Photo Warehouse sent an unexpected answer.", status=502)
    return render(
        "photos.html",
        photos=photos,
        next_after=next_after,
        width=THUMBNAIL_WIDTH,
        session=session,
    )


async def photo_image(request: web.Request) -> web.Response:
    session = connected_session(request)
    photo_id = _photo_id(request.match_info["photo_id"])
    if session is None:
        return web.Response(status=401, text="Connect Photo Warehouse first.")
    if photo_id is None:
        return web.Response(status=404, text="No such photo.")
    try:
        api = await call_api(request.app, session, f"/api/photos/{photo_id}/content")
    except Reconnect:
        return web.Response(status=401, text="Connect Photo Warehouse again.")
    except Unavailable:
        return web.Response(status=503, text="Photo Warehouse is not answering.")
    if api.status == 404:
        return web.Response(status=404, text="No such photo.")
    if api.status != 200 or api.content_type not in IMAGE_TYPES:
        return web.Response(status=502, text="Photo Warehouse sent no image.")
    return web.Response(
        body=api.body,
        content_type=api.content_type,
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


async def print_photo(request: web.Request) -> web.Response:
    session = connected_session(request)
    if session is None:
        return see_other("/")
    if not _csrf_ok(session, await _form(request)):
        return expired_form()
    photo_id = _photo_id(request.match_info["photo_id"])
    if photo_id is None:
        return message("Not found", "That photo is not in your Photo Warehouse.", status=404)
    try:
        api = await call_api(request.app, session, f"/api/photos/{photo_id}")
        if api.status == 404:
            return message("Not found", "That photo is not in your Photo Warehouse.", status=404)
        if api.status != 200:
            return message(
                "Something went wrong",
                f"Photo Warehouse answered with an error ({api.status}).",
                status=502,
                error=True,
            )
        photo = json.loads(api.body)
        title = photo.get("title") if isinstance(photo, dict) else None
    except Reconnect:
        return please_reconnect()
    except Unavailable:
        return unavailable()
    except ValueError:
        return message("Something went wrong", "Photo Warehouse sent an unexpected answer.", status=502)
    log.info("print job queued")
    title = title if isinstance(title, str) and title else "Untitled"
    return render("printed.html", session=session, title=title)


async def revoke(app: web.Application, tokens: Tokens) -> None:
    """Revoke the tokens at the issuer (RFC 7009) when it offers revocation: the refresh token, which
    takes the access tokens of its grant with it (§2.1), else the access token."""
    endpoint = app[METADATA].revocation_endpoint
    if endpoint is None:
        return
    settings = app[SETTINGS]
    if tokens.refresh_token is not None:
        form = {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
    else:
        form = {"token": tokens.access_token, "token_type_hint": "access_token"}
    headers = {"Authorization": basic_authorization(settings.client_id, settings.client_secret)}
    try:
        async with app[HTTP].post(endpoint, data=form, headers=headers, allow_redirects=False) as r:
            if r.status != 200:
                log.warning("revoking the %s failed with status %d", form["token_type_hint"], r.status)
    except (aiohttp.ClientError, TimeoutError):
        log.warning("revoking the %s failed: the server did not answer", form["token_type_hint"])


async def logout(request: web.Request) -> web.Response:
    """Sign out: end this site's session, revoke its tokens, and send the browser to the provider's
    end_session_endpoint to sign out there too (RP-Initiated Logout 1.0 §2), with a fresh ``state``
    that the home page checks on the way back."""
    app = request.app
    sessions = app[SESSIONS]
    session = current_session(request)
    if session is None:
        return see_other("/")
    if not _csrf_ok(session, await _form(request)):
        return expired_form()
    # under the refresh lock: a refresh in flight must not write tokens back after we dropped them
    async with session.refresh_lock:
        tokens, session.tokens = session.tokens, None
    user, session.user = session.user, None
    sessions.end(session)
    if tokens is not None:
        await revoke(app, tokens)
    endpoint = app[METADATA].end_session_endpoint
    if user is None or endpoint is None:
        return see_other("/")
    returning = sessions.create()  # anonymous: it only remembers the state
    returning.logout_state = secrets.token_urlsafe(32)
    params = {
        "id_token_hint": user.id_token,
        "client_id": app[SETTINGS].client_id,
        "post_logout_redirect_uri": app[SETTINGS].post_logout_redirect_uri,
        "state": returning.logout_state,
    }
    separator = "&" if urlsplit(endpoint).query else "?"
    response = see_other(f"{endpoint}{separator}{urlencode(params)}")
    set_session_cookie(request, response, returning)
    return response


def _logout_error(description: str) -> web.Response:
    return web.json_response(
        {"error": "invalid_request", "error_description": description},
        status=400,
        headers={"Cache-Control": "no-store"},
    )


async def backchannel_logout(request: web.Request) -> web.Response:
    """Back-Channel Logout 1.0 §2.5: the provider POSTs a signed ``logout_token``; every session it
    names ends here, so the user's next page of this site shows them signed out."""
    app = request.app
    if request.content_type != "application/x-www-form-urlencoded":
        return _logout_error("the logout token comes as an application/x-www-form-urlencoded form")
    try:
        values = (await request.post()).getall("logout_token", [])
    except (ValueError, UnicodeDecodeError):
        values = []
    if len(values) != 1 or not isinstance(values[0], str) or not values[0]:
        return _logout_error("send exactly one logout_token")
    try:
        logout_request = await verify_logout_token(
            values[0], keys=app[KEYS], metadata=app[METADATA], client_id=app[SETTINGS].client_id
        )
    except TokenInvalid as refused:
        log.warning("a logout token was refused: %s", refused)
        return _logout_error(f"the logout token is not valid: {refused}")
    ended = app[SESSIONS].end_matching(logout_request)
    log.info("back-channel logout: %d session(s) ended", ended)
    return web.Response(status=200, headers={"Cache-Control": "no-store"})


# --- the application --------------------------------------------------------------------------------


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path and status; never the query string (codes, state)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        log.info("%s %s %d", request.method, request.path, exc.status)
        raise
    log.info("%s %s %d", request.method, request.path, response.status)
    return response


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", request.app[POLICY])
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)


async def _backend(app: web.Application) -> AsyncIterator[None]:
    """An HTTP client for the issuer and the API, the issuer's discovery document, checked, and its
    keys (fetched when an ID token first needs them)."""
    settings = app[SETTINGS]
    # no cookie jar: nothing the servers set may leak from one user's calls into another's
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT, cookie_jar=aiohttp.DummyCookieJar()) as http:
        metadata = await discover(http, settings.issuer)
        app[METADATA], app[KEYS], app[HTTP] = metadata, KeySet(http, metadata.jwks_uri), http
        end_session = metadata.end_session_endpoint
        app[POLICY] = content_security_policy(_origin(end_session) if end_session else "")
        log.info("configured from %s's discovery document; client %s", settings.issuer, settings.client_id)
        yield


def create_app(settings: PrinterSettings, *, sessions: SessionStore | None = None) -> web.Application:
    app = web.Application(middlewares=[log_requests], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[SESSIONS] = SessionStore() if sessions is None else sessions
    app.cleanup_ctx.append(_backend)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", index)
    app.router.add_get("/connect", connect)
    app.router.add_get("/callback", callback)
    app.router.add_get("/photos", photos_page)
    app.router.add_get("/photos/{photo_id}/image", photo_image)
    app.router.add_post("/photos/{photo_id}/print", print_photo)
    app.router.add_post("/logout", logout)
    app.router.add_post("/backchannel-logout", backchannel_logout)
    return app
