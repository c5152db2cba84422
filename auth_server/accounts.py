"""The rules of accounts people make and recover themselves (issue 18), shared by the sign-up and
password-reset pages: what a new username, email address, nickname and password must be, the
budgets of the forms that send mail, and hashing a new password within the hashing threads' places.

Problems are *codes* (``{"username": "taken"}``); the templates say what each means
(``templates/account_fields.html``), so every word a person reads can be translated there.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from auth_server import login_csrf, password_rules, paths, usernames
from auth_server.appkeys import REGISTRY
from auth_server.client_documents import host_allowed
from auth_server.crypto import HASHING, HashingBusy, hash_password
from auth_server.pages import render
from auth_server.passwords import TooBusy
from auth_server.settings import Settings
from auth_server.stores.rate_limits import Limit
from shared.http import address_bucket, client_ip, has_control_characters

HOUR = 3600
USERNAME_MAX = 64  # a name people choose themselves is a public handle: short enough to show
NICKNAME_MAX = 100
EMAIL_MAX = 254  # RFC 5321 §4.5.3.1.3: the longest path, less its angle brackets
IDENTIFIER_MAX = 320  # what the reset and new-link forms take: a username or an address


@dataclass(frozen=True, slots=True)
class SignUpFields:
    """What the sign-up form was given (the password apart: it is never shown again)."""

    username: str = ""
    email: str = ""
    nickname: str = ""

    @classmethod
    def of(cls, form: dict[str, str]) -> SignUpFields:
        return cls(
            username=form.get("username", "").strip(),
            email=form.get("email", "").strip(),
            nickname=form.get("nickname", "").strip(),
        )


def username_problem(username: str) -> str | None:
    if not username:
        return "missing"
    if len(username) > USERNAME_MAX:
        return "too_long"
    if "@" in username:
        return "at_sign"  # a username is never mistaken for an address in the reset form
    if usernames.problem(username) is not None or not usernames.canonical(username).strip():
        return "invalid"
    return None


def normal_email(email: str) -> str:
    """The address as stored: as typed, its domain in lower case (domains are case-insensitive;
    the local part is the receiving server's to interpret)."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local}@{unicodedata.normalize('NFKC', domain).lower()}"


def email_problem(email: str, settings: Settings) -> str | None:
    """A deliberately plain check: the link mailed to the address is the real test of it."""
    if not email:
        return "missing"
    local, at, domain = email.rpartition("@")
    labels = domain.split(".")
    if (
        not at
        or not local
        or len(email) > EMAIL_MAX
        or len(local) > 64
        or has_control_characters(email)
        or any(c.isspace() for c in email)
        or len(labels) < 2
        or not all(labels)
    ):
        return "invalid"
    if not host_allowed(unicodedata.normalize("NFKC", domain).lower(), settings.signup_email_domains):
        return "domain"
    return None


def nickname_problem(nickname: str) -> str | None:
    if len(nickname) > NICKNAME_MAX:
        return "too_long"
    if has_control_characters(nickname):
        return "invalid"
    return None


def password_problems(
    password: str, again: str, settings: Settings, *, username: str = "", email: str = ""
) -> list[str]:
    """What is wrong with a new password (:mod:`auth_server.password_rules`), and whether it was
    typed the same twice."""
    found = password_rules.problems(
        password, username=username, email=email, min_length=settings.password_min_length
    )
    if not found and password != again:
        found.append("mismatch")
    return found


def sign_up_problems(fields: SignUpFields, password: str, again: str, settings: Settings) -> dict[str, Any]:
    """Each field's problem (the password's: a list of them); empty when the form is good."""
    found: dict[str, Any] = {}
    for name, problem in (
        ("username", username_problem(fields.username)),
        ("email", email_problem(fields.email, settings)),
        ("nickname", nickname_problem(fields.nickname)),
    ):
        if problem is not None:
            found[name] = problem
    weak = password_problems(password, again, settings, username=fields.username, email=fields.email)
    if weak:
        found["password"] = weak
    return found


def identifier_key(typed: str) -> str:
    """Whose budget a request for mail spends: the address in lower case, or the canonical username."""
    typed = typed.strip()
    return typed.lower() if "@" in typed else usernames.canonical(typed)


def per_address_per_hour(name: str, request: web.Request, per_hour: int) -> Limit:
    """A budget per client address (an IPv6 client's whole /64), counted per hour."""
    return Limit(f"{name}-ip", address_bucket(client_ip(request)), per_hour, window=HOUR)


def per_identifier_per_hour(name: str, typed: str, per_hour: int) -> Limit:
    """A budget per username or address typed, whether or not it has an account, counted per hour."""
    return Limit(name, identifier_key(typed), per_hour, window=HOUR)


async def hash_new_password(password: str) -> str:
    """The argon2id hash of a new password, made in a hashing thread like every password check
    (:data:`auth_server.crypto.HASHING`); :class:`~auth_server.passwords.TooBusy` when every place
    is taken."""
    try:
        with HASHING.admit():
            return await asyncio.get_running_loop().run_in_executor(HASHING.executor, hash_password, password)
    except HashingBusy:
        raise TooBusy() from None


class Problems(dict[str, Any]):
    """A form's problems by field; a field without one reads as ``None`` in a template."""

    def __missing__(self, key: str) -> None:
        return None


def limits(settings: Settings) -> dict[str, Any]:
    """The bounds the pages state (and their inputs' ``maxlength``)."""
    return {
        "username": USERNAME_MAX,
        "nickname": NICKNAME_MAX,
        "identifier": IDENTIFIER_MAX,
        "password": settings.password_min_length,
        "domains": settings.signup_email_domains,
    }


def account_page(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page of the account forms, its CSRF token bound to the visitor's login cookie as the login
    form's is (:mod:`auth_server.login_csrf`: nothing is stored for a visitor who is not signed in)."""
    settings = request.app[REGISTRY].settings
    nonce, csrf = login_csrf.token(request)
    context.setdefault("message", None)
    context.setdefault("retry_minutes", 1)
    context["problems"] = Problems(context.get("problems") or {})
    response = render(
        template,
        status=status,
        csrf=csrf,
        paths=paths,
        site_name=settings.site_name,
        limits=limits(settings),
        **context,
    )
    login_csrf.set_cookie(request, response, nonce)
    return response


def retry_minutes(seconds: int) -> int:
    return max(1, round(seconds / 60))
