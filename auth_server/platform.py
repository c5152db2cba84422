"""The open platform's decisions about an application (issue 15), made in one place for the
developer console, the admin console, the admin API, dynamic registration and the CLI.

An application is a client with a status (``clients.STATUSES``): *pending* review, *approved*,
*rejected*, or *suspended*. Only an approved client may be used (``Client.active``: /authorize
shows an error page, the token endpoint answers ``unauthorized_client``); a change to a client's
status reaches every replica through the client cache's invalidation. Suspending revokes the
client's refresh tokens and deny-lists their live access tokens at once. A change that widens
an approved client (more scopes, another redirect URI) waits in ``pending_changes`` for review while
the approved settings keep working. Every decision is in the audit trail.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auth_server.clients import SECRET_METHODS, Client
from auth_server.i18n import N_, _
from auth_server.registration import (
    ClientMetadata,
    Registered,
    RegistrationError,
    register,
    validate_openid_metadata,
    validate_registration,
)
from auth_server.registry import Registry
from auth_server.settings import Settings


class ReviewError(ValueError):
    """A decision that does not apply to the application as it is (the message says why)."""


async def _client(registry: Registry, client_id: str) -> Client:
    client = await registry.clients.load(client_id)
    if client is None:
        raise ReviewError(f"no client {client_id!r}")
    return client


def review_version(client: Client) -> str:
    """A digest of what a reviewer sees of an application: a decision made on a page is refused if
    the application changed since (a developer's edit, an RFC 7592 update), so that nothing is
    approved unseen."""
    seen = {**client.registration(), **{name: getattr(client, name) for name in _SEEN}}
    seen["pending_changes"] = client.pending_changes
    material = json.dumps(seen, sort_keys=True, default=str).encode()
    return hashlib.sha256(material).hexdigest()[:32]


_SEEN = ("status", "description", "contact_name", "contact_email", "scope_justification", "review_note")


def _unchanged(client: Client, version: str | None) -> None:
    if version is not None and not hmac.compare_digest(version, review_version(client)):
        raise ReviewError(N_("The application changed since you looked at it: look again before deciding."))


async def approve(
    registry: Registry, client_id: str, *, reviewer: str | None = None, version: str | None = None
) -> Client:
    """Approve a pending application, or the change an approved one waits with (``version``: the
    :func:`review_version` the reviewer saw, if the decision comes from a page)."""
    client = await _client(registry, client_id)
    _unchanged(client, version)
    if client.status == "approved" and client.pending_changes:
        await registry.clients.change(client_id, client.pending_changes)
        await registry.clients.set_pending_changes(client_id, None)
    elif client.status != "pending":
        raise ReviewError(f"client {client_id} is {client.status}, not waiting for review")
    reviewed = await registry.clients.review(client_id, "approved")
    assert reviewed is not None
    await registry.audit.record("client.approved", client_id=client_id, reviewer=reviewer)
    return reviewed


async def reject(
    registry: Registry,
    client_id: str,
    reason: str,
    *,
    reviewer: str | None = None,
    version: str | None = None,
) -> Client:
    """Reject a pending application (or the change an approved one waits with); the developer
    sees ``reason``."""
    client = await _client(registry, client_id)
    _unchanged(client, version)
    if client.status == "approved" and client.pending_changes:
        await registry.clients.set_pending_changes(client_id, None)
        status = "approved"  # the change is refused; the approved settings stay
    elif client.status == "pending":
        status = "rejected"
    else:
        raise ReviewError(f"client {client_id} is {client.status}, not waiting for review")
    reviewed = await registry.clients.review(client_id, status, note=reason)
    assert reviewed is not None
    await registry.audit.record("client.rejected", client_id=client_id, reviewer=reviewer, reason=reason)
    return reviewed


async def suspend(registry: Registry, client_id: str, reason: str, *, reviewer: str | None = None) -> Client:
    """Stop a live application at once: no new tokens or refreshes, its refresh tokens revoked and
    their live access tokens deny-listed."""
    client = await _client(registry, client_id)
    if client.status != "approved":
        raise ReviewError(f"client {client_id} is {client.status}; only an approved one can be suspended")
    reviewed = await registry.clients.review(client_id, "suspended", note=reason)
    assert reviewed is not None
    families = await revoke_grants(registry, "client suspended", client_id=client_id)
    await registry.audit.record(
        "client.suspended",
        client_id=client_id,
        reviewer=reviewer,
        reason=reason,
        refresh_token_families_revoked=families,
    )
    return reviewed


async def reinstate(registry: Registry, client_id: str, *, reviewer: str | None = None) -> Client:
    """Let a suspended application be used again (its revoked tokens stay revoked)."""
    client = await _client(registry, client_id)
    if client.status != "suspended":
        raise ReviewError(f"client {client_id} is {client.status}, not suspended")
    reviewed = await registry.clients.review(client_id, "approved")
    assert reviewed is not None
    await registry.audit.record("client.reinstated", client_id=client_id, reviewer=reviewer)
    return reviewed


async def revoke_grants(
    registry: Registry, reason: str, *, subject: str | None = None, client_id: str | None = None
) -> int:
    """Revoke the refresh-token families of a user, a client, or a user's with one client, and
    deny-list their live access tokens; how many families."""
    if subject is not None:
        revoked = await registry.refresh_tokens.revoke_subject(subject, reason, client_id=client_id)
    else:
        assert client_id is not None, "a subject, a client, or both"
        revoked = await registry.refresh_tokens.revoke_client(client_id, reason)
    for family_id, live in revoked.items():
        await registry.revoked_tokens.revoke_grant(family_id, live)
    return len(revoked)


@dataclass(frozen=True, slots=True)
class Edited:
    client: Client
    applied: tuple[str, ...]  # the fields changed at once
    for_review: tuple[str, ...]  # the fields that wait for review (pending_changes)


# Where users are sent, and how the app presents itself to them (the consent page's "Reviewed by"):
# after review, a new value of any of these waits for the next review, as wider access does.
_REVIEWED_AS_SHOWN = (
    "client_name",
    "logo_uri",
    "client_uri",
    "policy_uri",
    "tos_uri",
    "backchannel_logout_uri",
)
_REVIEWED_SETS = ("scope", "redirect_uris", "post_logout_redirect_uris")


def widening(client: Client, changes: dict[str, Any]) -> dict[str, Any]:
    """The part of ``changes`` that needs review first: scopes the client does not have, redirect or
    post-logout redirect URIs not registered, and a new name, logo, website, policy, terms or
    back-channel logout URI (what the reviewer approved users would see and where they would go)."""
    wider: dict[str, Any] = {}
    for name in _REVIEWED_SETS:
        if name in changes and not set(changes[name]) <= set(getattr(client, name)):
            wider[name] = list(changes[name])
    for name in _REVIEWED_AS_SHOWN:  # a new value; taking one away (no logo) shows users less
        if name in changes and changes[name] is not None and changes[name] != getattr(client, name):
            wider[name] = changes[name]
    return wider


async def request_change(registry: Registry, client: Client, changes: dict[str, Any]) -> Edited:
    """Change a client's details, already validated (the developer console, RFC 7592 ``PUT``). What
    :func:`widening` finds in a change to an approved or suspended client waits for review in
    ``pending_changes`` while the approved settings keep working; the rest applies at once. A client
    not yet approved (or rejected) changes at once: it is all under review anyway."""
    reviewed = client.status in ("approved", "suspended")
    wider = widening(client, changes) if reviewed else {}
    now = {name: value for name, value in changes.items() if name not in wider}
    updated = client
    if now:
        changed = await registry.clients.change(client.client_id, now)
        assert changed is not None
        updated = changed
    if wider:
        waiting = {**(client.pending_changes or {}), **wider}
        changed = await registry.clients.set_pending_changes(client.client_id, waiting)
        assert changed is not None
        updated = changed
        await registry.audit.record(
            "client.change_requested", client_id=client.client_id, fields=sorted(wider)
        )
    return Edited(updated, tuple(sorted(now)), tuple(sorted(wider)))


def owner_of(client: Client, user_id: uuid.UUID) -> bool:
    """Whether ``user_id`` is the developer who owns ``client``."""
    return client.owner_id is not None and client.owner_id == user_id


# --- the developer's side (the developer console, /developers) ---------------------------------

# Scopes that let a client administer the platform (the admin API's): never offered to a developer.
ADMIN_SCOPE_PREFIX = "admin"
# What an application registered at the developer console is: a confidential web app using the
# code grant with PKCE and refresh tokens, authenticating with HTTP Basic (RFC 6749 §2.3.1).
DEVELOPER_GRANT_TYPES = ("authorization_code", "refresh_token")
DEVELOPER_AUTH_METHOD = "client_secret_basic"
# the audit event that marks a secret as handed to the developer (shown once, after approval)
SECRET_ISSUED = "client.secret_issued"  # noqa: S105 - an event name


def offered_scopes(settings: Settings) -> dict[str, str]:
    """The scopes a developer may ask for, with their descriptions: every known scope except the
    admin ones."""
    return {
        scope: description
        for scope, description in settings.scopes.items()
        if scope != ADMIN_SCOPE_PREFIX and not scope.startswith(ADMIN_SCOPE_PREFIX + ":")
    }


@dataclass(frozen=True, slots=True)
class Application:
    """What a developer fills in to apply for an app, or to change one (issue 15, item 1)."""

    client_name: str = ""
    description: str = ""
    client_uri: str = ""
    logo_uri: str = ""
    policy_uri: str = ""
    contact_name: str = ""
    contact_email: str = ""
    redirect_uris: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()
    scope_justification: str = ""

    @classmethod
    def of(cls, client: Client) -> Application:
        """The application as the client has it now (the edit form's starting values)."""
        return cls(
            client_name=client.client_name,
            description=client.description or "",
            client_uri=client.client_uri or "",
            logo_uri=client.logo_uri or "",
            policy_uri=client.policy_uri or "",
            contact_name=client.contact_name or "",
            contact_email=client.contact_email or "",
            redirect_uris=client.redirect_uris,
            scope=client.scope,
            scope_justification=client.scope_justification or "",
        )

    def fields(self) -> dict[str, Any]:
        """By ``clients.CHANGEABLE`` name; optional ones left empty are ``None``."""
        return {
            field.name: (getattr(self, field.name) or None)
            if isinstance(getattr(self, field.name), str)
            else tuple(getattr(self, field.name))
            for field in dataclasses.fields(self)
        }


# in the language of the page that shows them (translated by form_problems)
_REQUIRED = {
    "client_name": N_("Give the app a name."),
    "description": N_("Say what the app does."),
    "client_uri": N_("Give the app's website."),
    "policy_uri": N_("Give the address of the app's privacy policy."),
    "contact_name": N_("Name the person responsible for the app."),
    "contact_email": N_("Give an email address we can reach that person at."),
    "scope_justification": N_("Say why the app needs the access it asks for."),
}
_LIMITS = {"client_name": 100, "contact_name": 200, "contact_email": 254, "description": 2000}


def form_problems(application: Application, settings: Settings) -> dict[str, str]:
    """What is missing or wrong in a developer's form, by field, in plain words of the page's
    language (the registration rules themselves are checked after, by
    :mod:`auth_server.registration`)."""
    problems: dict[str, str] = {}
    for field, message in _REQUIRED.items():
        if not getattr(application, field).strip():
            problems[field] = _(message)
    for field, limit in _LIMITS.items():
        if len(getattr(application, field)) > limit:
            problems[field] = _("Keep this under %(limit)d characters.") % {"limit": limit}
    email = application.contact_email.strip()
    if email and ("@" not in email.strip("@") or any(c.isspace() for c in email)):
        problems["contact_email"] = _("This does not look like an email address.")
    if not application.redirect_uris:
        problems["redirect_uris"] = _("Give at least one address people come back to after signing in.")
    if not application.scope:
        problems["scope"] = _("Choose at least one kind of access.")
    elif not set(application.scope) <= set(offered_scopes(settings)):
        problems["scope"] = _("Choose only the kinds of access listed.")
    return problems


def _metadata(application: Application, **platform: Any) -> ClientMetadata:
    return ClientMetadata(
        client_name=application.client_name.strip(),
        redirect_uris=application.redirect_uris,
        grant_types=DEVELOPER_GRANT_TYPES,
        scope=application.scope,
        token_endpoint_auth_method=DEVELOPER_AUTH_METHOD,
        require_pkce=True,
        logo_uri=application.logo_uri.strip() or None,
        client_uri=application.client_uri.strip() or None,
        policy_uri=application.policy_uri.strip() or None,
        description=application.description.strip(),
        contact_name=application.contact_name.strip(),
        contact_email=application.contact_email.strip(),
        scope_justification=application.scope_justification.strip(),
        **platform,
    )


async def apply(registry: Registry, owner_id: uuid.UUID, application: Application) -> Registered:
    """Register a developer's application, pending review, through the one registration service
    (every rule of :func:`auth_server.registration.register`). Its secret exists from creation (the
    column needs a hash for a secret method) but is never shown: the developer gets one only after
    approval (:func:`issue_secret`). :class:`RegistrationError` if a rule is broken."""
    problems = form_problems(application, registry.settings)
    if problems:
        raise RegistrationError(next(iter(problems.values())))
    registered = await register(
        registry, _metadata(application, status="pending", owner_id=owner_id, registered_via="developer")
    )
    await registry.audit.record(
        "client.applied", client_id=registered.client.client_id, subject=str(owner_id)
    )
    return registered


def _changes(client: Client, application: Application) -> dict[str, Any]:
    """The fields of ``application`` that differ from the client's."""
    current = Application.of(client).fields()
    return {name: value for name, value in application.fields().items() if value != current[name]}


def check_change(registry: Registry, client: Client, application: Application) -> None:
    """The client as it would be after the change, checked by the registration rules
    (:class:`RegistrationError` naming the first one broken)."""
    problems = form_problems(application, registry.settings)
    if problems:
        raise RegistrationError(next(iter(problems.values())))
    settings = registry.settings
    metadata = dataclasses.replace(
        _metadata(application),
        grant_types=client.grant_types,
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        require_pkce=client.require_pkce,
        post_logout_redirect_uris=client.post_logout_redirect_uris,
        tos_uri=client.tos_uri,
    )
    validate_registration(
        name=metadata.client_name,
        redirect_uris=metadata.redirect_uris,
        grant_types=metadata.grant_types,
        scope=metadata.scope,
        auth_method=metadata.token_endpoint_auth_method,
        known_scopes=set(settings.scopes),
        jwks=client.jwks,
        jwks_uri=client.jwks_uri,
        require_pkce=metadata.require_pkce,
        development=settings.development,
    )
    validate_openid_metadata(metadata, development=settings.development)


async def edit(registry: Registry, client: Client, application: Application) -> Edited:
    """Change a developer's application. A change that widens an approved (or suspended) app — more
    scopes, another redirect URI — waits for review in ``pending_changes`` while the approved settings
    keep working; the rest applies at once. An app not yet approved changes at once (it is all under
    review anyway)."""
    check_change(registry, client, application)
    return await request_change(registry, client, _changes(client, application))


async def secret_issued(registry: Registry, client_id: str) -> bool:
    """Whether the developer has been handed this client's secret (it is shown once)."""
    client = await registry.clients.load(client_id)
    return client is not None and client.secret_issued_at is not None


async def issue_secret(registry: Registry, client: Client) -> str:
    """The secret of a newly approved application, shown once: a fresh one replaces the one made at
    registration (which nobody ever saw), so a secret exists only for an app the platform approved."""
    if client.status != "approved":
        raise ReviewError(N_("The app gets its secret once it is approved."))
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        raise ReviewError(N_("This app does not use a client secret."))
    secret = await registry.clients.issue_first_secret(client.client_id)  # once, even if asked twice at once
    if secret is None:
        raise ReviewError(N_("The secret was already shown once; rotate it to get a new one."))
    await registry.audit.record(SECRET_ISSUED, client_id=client.client_id)
    return secret


async def rotate(registry: Registry, client: Client, *, keep_old: bool = True) -> str:
    """A new secret for an app whose secret was issued; the old one keeps working for
    ``Settings.secret_overlap`` seconds, so that a deployment can change over without breaking —
    or stops at once (``keep_old=False``: the old secret leaked)."""
    if not await secret_issued(registry, client.client_id):
        raise ReviewError(N_("Get the app's first secret before rotating it."))
    overlap = registry.settings.secret_overlap if keep_old else 0
    secret = await registry.clients.rotate_secret(client.client_id, overlap=overlap)
    if secret is None:
        raise ReviewError(N_("This app does not use a client secret."))
    return secret


@dataclass(frozen=True, slots=True)
class Usage:
    users: int  # how many users authorized the app (remembered consents)
    tokens_last_day: int


async def usage(registry: Registry, client_id: str) -> Usage:
    """How many users authorized the app, and how many tokens it got in the last day."""
    consents = await registry.consents.list(client_id=client_id)
    return Usage(len(consents), await registry.token_counts.last_day(client_id))


# --- the reviewer's side (the admin console, /admin) ---------------------------------------------

REVIEW_ORDER = {"pending": 0, "approved": 1, "suspended": 2, "rejected": 3}


def review_queue(clients: list[Client], status: str | None = None) -> list[Client]:
    """Applications for the admin console: those pending review (or with a change pending) first,
    then by status; only ``status`` ones if given."""
    chosen = [c for c in clients if status is None or c.status == status]
    return sorted(chosen, key=lambda c: 0 if c.pending_changes else REVIEW_ORDER.get(c.status, 9))


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    current: tuple[str, ...]
    proposed: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]


def change_diff(client: Client, changes: Mapping[str, Any] | None) -> list[FieldChange]:
    """A pending change as a diff against the approved settings, field by field."""
    diff = []
    for field, value in (changes or {}).items():
        current = _as_items(getattr(client, field, None))
        proposed = _as_items(value)
        added = tuple(v for v in proposed if v not in current)
        removed = tuple(v for v in current if v not in proposed)
        diff.append(FieldChange(field, current, proposed, added, removed))
    return diff


def _as_items(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)
