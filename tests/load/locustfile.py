"""Mixed, realistic traffic against Tessera and the Photo Warehouse, for Locust.

Two kinds of simulated users:

- ``PhotoOwner`` (most of the traffic): a person using a web app (a confidential client) that
  signs in through the browser flow once: ``/oauth2/authorize`` → the login form → the consent
  form (only the first time a user is asked) → the redirect with ``code``, ``state`` and ``iss``
  → ``/oauth2/token`` with the PKCE verifier. Then it lists photos, fetches one (and sometimes
  its content), sometimes uploads a tiny PNG (deleting its oldest upload), refreshes its token
  when it nears expiry or every ``TESSERA_BENCH_REFRESH_EVERY`` tasks (rotation: it always keeps
  the newest refresh token), and sometimes runs ``/oauth2/authorize`` again while signed in (SSO:
  straight to a code, no login, no consent), revoking the grant it replaces.
- ``Partner`` (fewer): a B2B server with a ``client_credentials`` token calling ``/api/stats``,
  fetching a new token before the old one expires.

The redirect URI belongs to no real server: redirects are never followed automatically. Each hop
of the browser flow is requested on its own, and the final redirect's ``Location`` is parsed
instead of fetched. Every response whose status (or body) is not the expected one is reported as
a failure, so the failure count of a run means something.

Environment
-----------
``TESSERA_BENCH_ISSUER``         the authorization server's base URL, which must also be its
                                 issuer (``iss`` is checked). Unset: Locust's ``--host``.
``TESSERA_BENCH_API``            the Photo Warehouse's base URL (http://localhost:8001)
``TESSERA_BENCH_SEED``           path of the seed JSON below (required)
``TESSERA_BENCH_REFRESH_EVERY``  a PhotoOwner refreshes its token after this many tasks (10)
``TESSERA_BENCH_WAIT``           a PhotoOwner's think time between tasks, "min,max" seconds (0.5,2)
``TESSERA_BENCH_PARTNER_WAIT``   a Partner's pause between calls, "min,max" seconds (0.1,0.5)

Seed JSON (``TESSERA_BENCH_SEED``)
----------------------------------
::

    {
      "users": [{"username": "bench-0001", "password": "…"}, …],          # at least one
      "web_client": {                                                       # a confidential client
        "client_id": "…", "client_secret": "…",                             # registered for
        "redirect_uri": "http://127.0.0.1:9999/callback",                   # authorization_code and
        "scope": "photos:read photos:write"                                 # refresh_token
      },
      "partners": [{"client_id": "…", "client_secret": "…"}, …]             # client_credentials with
    }                                                                       # warehouse:stats

A partner may add ``"scope"`` (sent in its token request; otherwise its registered scope is used).
``web_client.client_secret`` may be omitted or null for a public client (``none`` authentication).
Simulated users take the seeded users and partners in turn, so several may share one account.
``tests/load/locust_seed.py`` creates such a file with the ``tessera`` command.

Example::

    TESSERA_BENCH_ISSUER=http://127.0.0.1:8500 TESSERA_BENCH_API=http://127.0.0.1:8501 \\
    TESSERA_BENCH_SEED=/tmp/seed.json \\
    locust -f tests/load/locustfile.py --headless -u 50 -r 10 -t 30s --csv /tmp/run --only-summary
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import os
import random
import re
import secrets
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote_plus, urljoin, urlsplit

from locust import HttpUser, between, task
from locust.clients import HttpSession, ResponseContextManager

# ---------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True, slots=True)
class SeedUser:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class WebClient:
    client_id: str
    client_secret: str | None
    redirect_uri: str
    scope: str


@dataclass(frozen=True, slots=True)
class PartnerClient:
    client_id: str
    client_secret: str
    scope: str | None


@dataclass(frozen=True, slots=True)
class Seed:
    users: tuple[SeedUser, ...]
    web_client: WebClient
    partners: tuple[PartnerClient, ...]


class SeedError(ValueError):
    pass


def _text(value: object, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise SeedError(f"{where} must be a non-empty string")
    return value


def _required(value: object, where: str) -> str:
    text = _text(value, where)
    assert text is not None
    return text


def _objects(value: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise SeedError(f"{where} must be a list of objects")
    return value


def parse_seed(raw: object) -> Seed:
    if not isinstance(raw, dict):
        raise SeedError("the seed must be a JSON object")
    users = tuple(
        SeedUser(
            _required(u.get("username"), f"users[{i}].username"), _required(u.get("password"), "password")
        )
        for i, u in enumerate(_objects(raw.get("users"), "users"))
    )
    if not users:
        raise SeedError("users must list at least one user")
    web = raw.get("web_client")
    if not isinstance(web, dict):
        raise SeedError("web_client must be an object")
    web_client = WebClient(
        client_id=_required(web.get("client_id"), "web_client.client_id"),
        client_secret=_text(web.get("client_secret"), "web_client.client_secret", optional=True),
        redirect_uri=_required(web.get("redirect_uri"), "web_client.redirect_uri"),
        scope=_required(web.get("scope"), "web_client.scope"),
    )
    partners = tuple(
        PartnerClient(
            client_id=_required(p.get("client_id"), f"partners[{i}].client_id"),
            client_secret=_required(p.get("client_secret"), f"partners[{i}].client_secret"),
            scope=_text(p.get("scope"), f"partners[{i}].scope", optional=True),
        )
        for i, p in enumerate(_objects(raw.get("partners", []), "partners"))
    )
    return Seed(users, web_client, partners)


def _load_seed() -> Seed:
    path = os.environ.get("TESSERA_BENCH_SEED")
    if not path:
        sys.exit("locustfile: set TESSERA_BENCH_SEED to the seed JSON (see the docstring of this file)")
    try:
        with open(path, encoding="utf-8") as file:
            return parse_seed(json.load(file))
    except (OSError, ValueError) as error:
        sys.exit(f"locustfile: cannot use the seed {path}: {error}")


def _wait_range(name: str, default: tuple[float, float]) -> tuple[float, float]:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        low, high = (float(part) for part in raw.split(","))
    except ValueError:
        sys.exit(f"locustfile: {name} must be 'min,max' in seconds, got {raw!r}")
    if not 0 <= low <= high:
        sys.exit(f"locustfile: {name} must have 0 <= min <= max, got {raw!r}")
    return low, high


def _positive(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(f"locustfile: {name} must be a whole number >= 1, got {raw!r}")
    return int(raw)


SEED = _load_seed()
ISSUER = (os.environ.get("TESSERA_BENCH_ISSUER") or "").rstrip("/") or None
API = (os.environ.get("TESSERA_BENCH_API") or "http://localhost:8001").rstrip("/")
REFRESH_EVERY = _positive("TESSERA_BENCH_REFRESH_EVERY", 10)
OWNER_WAIT = _wait_range("TESSERA_BENCH_WAIT", (0.5, 2.0))
PARTNER_WAIT = _wait_range("TESSERA_BENCH_PARTNER_WAIT", (0.1, 0.5))

# A token is renewed when less than this share of its lifetime (and at most 30 s) is left.
RENEW_SHARE, RENEW_MAX_SECONDS = 0.2, 30.0
# Photos a PhotoOwner uploaded that it keeps; older ones are deleted (keeps the tables bounded).
KEEP_UPLOADS = 2
# Titles of photos uploaded by this file; another simulated user's uploads may vanish at any time.
UPLOAD_PREFIX = "locust-"

_next_user = itertools.count()
_next_partner = itertools.count()

# ---------------------------------------------------------------------------------------------
# helpers: PKCE, client authentication, responses


@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)  # 64 characters: within RFC 7636's 43..128
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


@dataclass(frozen=True, slots=True)
class Step:
    """Where the browser stands after an answer of ``/oauth2/authorize``: exactly one is set."""

    code: str | None = None
    login_url: str | None = None
    consent_page: str | None = None


@dataclass(slots=True)
class Tokens:
    access_token: str
    expires_at: float  # time.monotonic() deadline
    lifetime: float
    refresh_token: str | None

    def expiring(self) -> bool:
        margin = min(RENEW_MAX_SECONDS, self.lifetime * RENEW_SHARE)
        return time.monotonic() >= self.expires_at - margin


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    """``client_secret_basic`` with RFC 6749 §2.3.1's form-encoding of id and secret."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


def hidden(page: str, name: str) -> str | None:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    return None if match is None else html.unescape(match.group(1))


_PAGE_ERROR = re.compile(r'<p class="(?:error|muted details)"[^>]*>(.*?)</p>', re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def describe(response: ResponseContextManager) -> str:
    """A short, stable account of a response: its status and the error it names, if any."""
    status = response.status_code
    if not status:
        error = getattr(response, "error", None)
        return f"no response ({type(error).__name__ if error is not None else 'unknown error'})"
    detail = ""
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body:
            detail = f"{body['error']}: {body.get('error_description', '')}"
    elif "html" in content_type:
        match = _PAGE_ERROR.search(response.text)
        if match:
            detail = html.unescape(_TAGS.sub("", match.group(1))).strip()
    if not detail and "WWW-Authenticate" in response.headers:
        detail = response.headers["WWW-Authenticate"]
    if not detail and "Location" in response.headers:
        detail = "Location " + _location_shape(response.headers["Location"])
    return f"HTTP {status}" + (f" ({detail[:160]})" if detail else "")


def _location_shape(location: str) -> str:
    """A redirect target without its query values, so failures group by kind, not by code."""
    parts = urlsplit(location)
    names = ",".join(sorted(query_of(location)))
    return f"{parts.scheme + '://' if parts.scheme else ''}{parts.netloc}{parts.path}?[{names}]"


BUSY_RETRIES = 4  # a sign-in shed as busy is tried this many times in all, then a failure
BUSY_NAME = "/login [503 busy: retried after Retry-After]"  # tests/load/bench.py reports it by name


def _busy_retry_after(response: ResponseContextManager) -> float | None:
    """Seconds to wait when ``response`` is Tessera shedding a login storm, else None: 503 with
    ``Retry-After`` and the login form again (a database or Redis outage is a 503 with
    ``Retry-After`` too, but on the error page: a failure, never retried away)."""
    if response.status_code != 503 or hidden(response.text, "csrf_token") is None:
        return None
    try:
        return min(max(float(response.headers.get("Retry-After", "")), 0.1), 10.0)
    except ValueError:
        return None


def fail(response: ResponseContextManager, message: str) -> None:
    """Report ``response`` as a failure in Locust's statistics (grouped by name and message)."""
    response.failure(message)  # type: ignore[no-untyped-call]


@contextmanager
def call(
    client: HttpSession,
    method: str,
    url: str,
    name: str,
    *,
    params: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    files: dict[str, tuple[str, bytes, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Iterator[ResponseContextManager]:
    """One request, reported under ``name``; redirects are never followed, and the caller judges it."""
    with client.request(
        method,
        url,
        name=name,
        params=params,
        data=data,
        files=files,
        headers=headers,
        allow_redirects=False,
        catch_response=True,
    ) as response:
        yield response


def expect(response: ResponseContextManager, *statuses: int) -> bool:
    if response.status_code in statuses:
        return True
    wanted = " or ".join(str(s) for s in statuses)
    fail(response, f"expected {wanted}, got {describe(response)}")
    return False


def json_object(response: ResponseContextManager) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        fail(response, "the body is not a JSON object")
        return None
    return body


def token_body(response: ResponseContextManager, *, refresh: bool) -> Tokens | None:
    """A successful token response (RFC 6749 §5.1), or a reported failure."""
    if not expect(response, 200):
        return None
    body = json_object(response)
    if body is None:
        return None
    access, kind, lifetime = body.get("access_token"), body.get("token_type"), body.get("expires_in")
    if not isinstance(access, str) or not isinstance(kind, str) or kind.lower() != "bearer":
        fail(response, "no Bearer access_token in the token response")
        return None
    if not isinstance(lifetime, int) or lifetime <= 0:
        fail(response, "no positive expires_in in the token response")
        return None
    refresh_token = body.get("refresh_token")
    if refresh and not isinstance(refresh_token, str):
        fail(response, "no refresh_token in the token response")
        return None
    return Tokens(
        access_token=access,
        expires_at=time.monotonic() + lifetime,
        lifetime=float(lifetime),
        refresh_token=refresh_token if isinstance(refresh_token, str) else None,
    )


def tiny_png() -> bytes:
    """A valid 1x1 RGBA PNG of a random colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixel = bytes([0, random.randrange(256), random.randrange(256), random.randrange(256), 255])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(pixel))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------------------------------------
# the users


class PhotoOwner(HttpUser):
    """A person using the photo web app: signs in once, then browses, uploads and stays signed in."""

    weight = 5
    wait_time = between(*OWNER_WAIT)
    host = ISSUER

    def on_start(self) -> None:
        self.account = SEED.users[next(_next_user) % len(SEED.users)]
        self.app = SEED.web_client
        self.issuer = (ISSUER or self.host or "").rstrip("/")
        self.tasks_since_refresh = 0
        self.tag = f"{UPLOAD_PREFIX}{secrets.token_hex(5)}-"  # titles of this simulated user's uploads
        self.uploads: list[str] = []  # ids of this simulated user's uploads, oldest first
        self.photos: list[str] = []  # ids it may fetch: seeded photos and its own uploads
        self.tokens: Tokens | None = self.authorize(sso=False)
        if self.tokens is not None and self.list_photos() and not self.photos:
            self.upload(self.tokens.access_token)  # a new user's first photo, so views have a target

    # -- the browser flow ----------------------------------------------------------------------

    def authorize(self, *, sso: bool) -> Tokens | None:
        """The code flow with PKCE as a browser drives it; the tokens, or ``None`` after a failure.

        With ``sso`` the session must still be signed in and the consent stored: the first answer
        has to be the redirect with a code.
        """
        pkce, state = Pkce.new(), secrets.token_urlsafe(16)
        params = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": self.app.redirect_uri,
            "scope": self.app.scope,
            "state": state,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        step: Step | None
        name = "/oauth2/authorize [sso]" if sso else "/oauth2/authorize"
        with call(self.client, "GET", f"{self.issuer}/oauth2/authorize", name, params=params) as response:
            if sso:
                code = self._callback(response, state)
                step = None if code is None else Step(code=code)
            else:
                step = self._authorize_answer(response, state)
        if step is None:
            return None
        if step.login_url is not None:
            after_login = self._sign_in(step.login_url)
            if after_login is None:
                return None
            resume = urljoin(self.issuer, after_login)
            with call(self.client, "GET", resume, "/oauth2/authorize [after login]") as response:
                step = self._authorize_answer(response, state, login_allowed=False)
            if step is None:
                return None
        code = step.code if step.consent_page is None else self._consent(step.consent_page, state)
        return None if code is None else self._exchange(code, pkce)

    def _authorize_answer(
        self, response: ResponseContextManager, state: str, *, login_allowed: bool = True
    ) -> Step | None:
        """What ``/oauth2/authorize`` answered: the login page, the consent page, or a code."""
        if response.status_code == 200:
            if hidden(response.text, "request_id") is None:
                fail(response, "a 200 from /oauth2/authorize that is not the consent form")
                return None
            return Step(consent_page=response.text)
        location = response.headers.get("Location", "")
        if login_allowed and response.status_code == 302 and urlsplit(location).path == "/login":
            return Step(login_url=urljoin(self.issuer, location))
        code = self._callback(response, state)
        return None if code is None else Step(code=code)

    def _callback(self, response: ResponseContextManager, state: str) -> str | None:
        """The code from a redirect back to the client, after checking ``state`` and ``iss``."""
        if not expect(response, 302, 303):
            return None
        location = response.headers.get("Location", "")
        if not location.startswith(self.app.redirect_uri):
            fail(response, f"redirected elsewhere than the client: {_location_shape(location)}")
            return None
        answer = query_of(location)
        if "error" in answer:
            fail(response, f"authorization error {answer['error']}: {answer.get('error_description', '')}")
            return None
        if answer.get("state") != state:
            fail(response, "the state in the redirect differs from the one sent")
            return None
        if answer.get("iss") != self.issuer:  # RFC 9207: mix-up defence
            fail(response, f"iss {answer.get('iss')!r} in the redirect is not {self.issuer!r}")
            return None
        code = answer.get("code")
        if not code:
            fail(response, "no code in the redirect")
            return None
        return code

    def _sign_in(self, login_url: str) -> str | None:
        """Open the login page and submit it; where it sends the browser next."""
        with call(self.client, "GET", login_url, "/login") as page:
            if not expect(page, 200):
                return None
            csrf, return_to = hidden(page.text, "csrf_token"), hidden(page.text, "return_to")
            if not csrf or return_to is None:
                fail(page, "the login page has no csrf_token or return_to field")
                return None
        form = {
            "csrf_token": csrf,
            "return_to": return_to,
            "username": self.account.username,
            "password": self.account.password,
        }
        for attempt in range(1, BUSY_RETRIES + 1):
            with call(self.client, "POST", f"{self.issuer}/login", "/login", data=form) as response:
                wait = _busy_retry_after(response)
                if wait is not None and attempt < BUSY_RETRIES:
                    # a login storm is shed with 503 and Retry-After (auth_server/passwords.py):
                    # the answer Tessera means to give, which a person's browser shows and she
                    # retries after; counted in a row of its own, never hidden, never a failure
                    response.request_meta["name"] = BUSY_NAME  # type: ignore[index]
                    response.success()  # type: ignore[no-untyped-call]
                    time.sleep(wait)
                    continue
                if not expect(response, 303):
                    return None
                location = response.headers.get("Location", "")
                if urlsplit(location).path != "/oauth2/authorize":
                    fail(response, f"login led elsewhere than the authorization request: {location[:80]}")
                    return None
                return location
        return None  # pragma: no cover - the last attempt returns or fails above

    def _consent(self, page: str, state: str) -> str | None:
        csrf, request_id = hidden(page, "csrf_token"), hidden(page, "request_id")
        form = {"csrf_token": csrf or "", "request_id": request_id or "", "consent": "allow"}
        with call(self.client, "POST", f"{self.issuer}/consent", "/consent", data=form) as response:
            return self._callback(response, state)

    def _client_auth(self, form: dict[str, str]) -> dict[str, str]:
        if self.app.client_secret is None:
            form["client_id"] = self.app.client_id
            return {}
        return basic_auth(self.app.client_id, self.app.client_secret)

    def _exchange(self, code: str, pkce: Pkce) -> Tokens | None:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.app.redirect_uri,
            "code_verifier": pkce.verifier,
        }
        headers = self._client_auth(form)
        name = "/oauth2/token [authorization_code]"
        with call(
            self.client, "POST", f"{self.issuer}/oauth2/token", name, data=form, headers=headers
        ) as response:
            return token_body(response, refresh=True)

    def refresh(self) -> None:
        """Rotate the refresh token; after a failure, sign in again (SSO) on the next task."""
        assert self.tokens is not None and self.tokens.refresh_token is not None
        form = {"grant_type": "refresh_token", "refresh_token": self.tokens.refresh_token}
        headers = self._client_auth(form)
        name = "/oauth2/token [refresh_token]"
        with call(
            self.client, "POST", f"{self.issuer}/oauth2/token", name, data=form, headers=headers
        ) as response:
            self.tokens = token_body(response, refresh=True)
        self.tasks_since_refresh = 0

    def revoke(self, refresh_token: str) -> None:
        form = {"token": refresh_token, "token_type_hint": "refresh_token"}
        headers = self._client_auth(form)
        url = f"{self.issuer}/oauth2/revoke"
        with call(self.client, "POST", url, "/oauth2/revoke", data=form, headers=headers) as response:
            expect(response, 200)

    def bearer(self) -> str | None:
        """A live access token, refreshed or re-obtained first when needed."""
        self.tasks_since_refresh += 1
        if self.tokens is None:
            self.tokens = self.authorize(sso=False)
            self.tasks_since_refresh = 0
        elif self.tokens.expiring() or self.tasks_since_refresh >= REFRESH_EVERY:
            self.refresh()
        return None if self.tokens is None else self.tokens.access_token

    def _api(
        self, method: str, path: str, name: str, token: str, check: Callable[[ResponseContextManager], object]
    ) -> None:
        """Call the Photo Warehouse; a 401 drops the access token so that the next task renews it."""
        headers = {"Authorization": f"Bearer {token}"}
        with call(self.client, method, f"{API}{path}", name, headers=headers) as response:
            if response.status_code == 401 and self.tokens is not None:
                self.tokens.expires_at = 0.0
            check(response)

    # -- the API -------------------------------------------------------------------------------

    def list_photos(self) -> bool:
        token = self.bearer()
        if token is None:
            return False
        ok = False

        def check(response: ResponseContextManager) -> None:
            nonlocal ok
            if not expect(response, 200) or (body := json_object(response)) is None:
                return
            listed = body.get("photos")
            if not isinstance(listed, list):
                fail(response, "no photos list in the body")
                return
            mine = set(self.uploads)
            self.photos = [
                p["id"]
                for p in listed
                if isinstance(p, dict)
                and isinstance(p.get("id"), str)
                # another simulated user of the same account may delete its uploads at any moment
                and (p["id"] in mine or not str(p.get("title", "")).startswith(UPLOAD_PREFIX))
            ]
            ok = True

        self._api("GET", "/api/photos?limit=20", "/api/photos", token, check)
        return ok

    def upload(self, token: str) -> None:
        title = f"{self.tag}{len(self.uploads)}"
        headers = {"Authorization": f"Bearer {token}"}
        files = {"file": ("pixel.png", tiny_png(), "image/png")}
        with call(
            self.client,
            "POST",
            f"{API}/api/photos",
            "/api/photos",
            data={"title": title},
            files=files,
            headers=headers,
        ) as response:
            if not expect(response, 201) or (body := json_object(response)) is None:
                return
            photo_id = body.get("id")
            if not isinstance(photo_id, str) or body.get("title") != title:
                fail(response, "the upload's answer lacks its id or title")
                return
            self.uploads.append(photo_id)
            self.photos.append(photo_id)

    @task(8)
    def browse(self) -> None:
        self.list_photos()

    @task(8)
    def view_photo(self) -> None:
        if not self.photos:
            self.list_photos()
            return
        token = self.bearer()
        if token is None:
            return
        photo_id = random.choice(self.photos)

        def check(response: ResponseContextManager) -> None:
            if not expect(response, 200) or (body := json_object(response)) is None:
                return
            if body.get("id") != photo_id:
                fail(response, "the photo returned is not the one asked for")

        def check_content(response: ResponseContextManager) -> None:
            if not expect(response, 200):
                return
            if not response.headers.get("Content-Type", "").startswith("image/"):
                fail(response, "the content is not an image")

        self._api("GET", f"/api/photos/{photo_id}", "/api/photos/{id}", token, check)
        if random.random() < 0.3:
            path = f"/api/photos/{photo_id}/content"
            self._api("GET", path, "/api/photos/{id}/content", token, check_content)

    @task(1)
    def upload_photo(self) -> None:
        """Upload a photo, and delete this simulated user's oldest upload beyond the few it keeps."""
        token = self.bearer()
        if token is None:
            return
        self.upload(token)
        if len(self.uploads) > KEEP_UPLOADS:
            photo_id = self.uploads.pop(0)
            if photo_id in self.photos:
                self.photos.remove(photo_id)
            path = f"/api/photos/{photo_id}"
            self._api("DELETE", path, "/api/photos/{id}", token, lambda response: expect(response, 204))

    @task(1)
    def authorize_again(self) -> None:
        """The app asks for a new grant while the user is still signed in: a code at once (SSO)."""
        if self.tokens is None:
            self.bearer()
            return
        tokens = self.authorize(sso=True)
        if tokens is None:
            return
        previous, self.tokens = self.tokens.refresh_token, tokens
        self.tasks_since_refresh = 0
        if previous is not None:
            self.revoke(previous)  # the app drops the grant it replaces


class Partner(HttpUser):
    """A B2B partner's server: client_credentials, then the warehouse statistics."""

    weight = 1
    wait_time = between(*PARTNER_WAIT)
    host = ISSUER

    def on_start(self) -> None:
        self.partner = SEED.partners[next(_next_partner) % len(SEED.partners)]
        self.issuer = (ISSUER or self.host or "").rstrip("/")
        self.tokens: Tokens | None = None

    def token(self) -> str | None:
        if self.tokens is None or self.tokens.expiring():
            form = {"grant_type": "client_credentials"}
            if self.partner.scope:
                form["scope"] = self.partner.scope
            headers = basic_auth(self.partner.client_id, self.partner.client_secret)
            name = "/oauth2/token [client_credentials]"
            url = f"{self.issuer}/oauth2/token"
            with call(self.client, "POST", url, name, data=form, headers=headers) as response:
                self.tokens = token_body(response, refresh=False)
        return None if self.tokens is None else self.tokens.access_token

    @task
    def stats(self) -> None:
        token = self.token()
        if token is None:
            return
        headers = {"Authorization": f"Bearer {token}"}
        with call(self.client, "GET", f"{API}/api/stats", "/api/stats", headers=headers) as response:
            if response.status_code == 401 and self.tokens is not None:
                self.tokens.expires_at = 0.0  # fetch a new token before the next call
            if not expect(response, 200) or (body := json_object(response)) is None:
                return
            if not all(isinstance(body.get(k), int) for k in ("users", "photos", "bytes")):
                fail(response, "the statistics lack users, photos or bytes")


if not SEED.partners:
    Partner.abstract = True  # no partner in the seed: Locust runs PhotoOwners only
