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

import uuid
from typing import Any

from auth_server.clients import Client
from auth_server.registry import Registry


class ReviewError(ValueError):
    """A decision that does not apply to the application as it is (the message says why)."""


async def _client(registry: Registry, client_id: str) -> Client:
    client = await registry.clients.load(client_id)
    if client is None:
        raise ReviewError(f"no client {client_id!r}")
    return client


async def approve(registry: Registry, client_id: str, *, reviewer: str | None = None) -> Client:
    """Approve a pending application, or the change an approved one waits with."""
    client = await _client(registry, client_id)
    if client.status == "approved" and client.pending_changes:
        await registry.clients.change(client_id, client.pending_changes)
        await registry.clients.set_pending_changes(client_id, None)
    elif client.status != "pending":
        raise ReviewError(f"client {client_id} is {client.status}, not waiting for review")
    reviewed = await registry.clients.review(client_id, "approved")
    assert reviewed is not None
    await registry.audit.record("client.approved", client_id=client_id, reviewer=reviewer)
    return reviewed


async def reject(registry: Registry, client_id: str, reason: str, *, reviewer: str | None = None) -> Client:
    """Reject a pending application (or the change an approved one waits with); the developer
    sees ``reason``."""
    client = await _client(registry, client_id)
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


def widening(client: Client, changes: dict[str, Any]) -> dict[str, Any]:
    """The part of ``changes`` that widens what the client may do, which needs review first: scopes
    it does not have, redirect URIs not registered."""
    wider: dict[str, Any] = {}
    if "scope" in changes and not set(changes["scope"]) <= set(client.scope):
        wider["scope"] = list(changes["scope"])
    if "redirect_uris" in changes and not set(changes["redirect_uris"]) <= set(client.redirect_uris):
        wider["redirect_uris"] = list(changes["redirect_uris"])
    return wider


def owner_of(client: Client, user_id: uuid.UUID) -> bool:
    """Whether ``user_id`` is the developer who owns ``client``."""
    return client.owner_id is not None and client.owner_id == user_id
