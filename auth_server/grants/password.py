"""Resource owner password credentials grant (RFC 6749 §4.3).

Deprecated by RFC 9700 §2.4 and off unless a client is registered for it: only for first-party
apps that the user already trusts with the password. An unknown user and a wrong password give the
same ``invalid_grant``; brute force is throttled per username and per IP across all replicas.
A user with two-step sign-in (issue 18) is refused with ``invalid_grant`` even with the right
password: this grant has no way to ask for the second step (RFC 9700 §2.4), so the app must send
her through the authorization endpoint.
"""

from __future__ import annotations

from typing import Any

from auth_server import resources, scopes
from auth_server.clients import Client
from auth_server.grants.base import Grant
from auth_server.grants.common import TokenRequest, issue_tokens
from auth_server.passwords import BUSY_RETRY_AFTER, LockedOut, TooBusy, check_credentials
from auth_server.registry import Registry
from shared.errors import InvalidGrant, InvalidRequest, TemporarilyUnavailable


async def exchange(registry: Registry, client: Client, request: TokenRequest) -> dict[str, Any]:
    username, password = request.get("username"), request.get("password")
    if username is None or password is None:
        raise InvalidRequest("The username and password parameters are required.")
    scope = scopes.resolve(scopes.parse(request.get("scope")), client.scope, set(registry.settings.scopes))
    # before the password is checked: a mistaken resource costs no guess
    target = await resources.target(registry, client, request.get("resource"), None)
    try:
        user = await check_credentials(
            registry, username, password, request.client_ip, via="password_grant", client_id=client.client_id
        )
    except LockedOut as locked:
        raise InvalidGrant(
            "Too many failed sign-in attempts; retry later.", retry_after=locked.retry_after
        ) from None
    except TooBusy:
        raise TemporarilyUnavailable(
            "The server is checking too many passwords; retry shortly.", retry_after=BUSY_RETRY_AFTER
        ) from None
    if user is None:
        raise InvalidGrant("The username or password is incorrect.")
    if await registry.two_step.enabled(user.user_id):
        raise InvalidGrant(
            "This user has two-step sign-in turned on, which the password grant cannot ask for:"
            " sign her in through the authorization endpoint (the code flow) instead."
        )
    scope = await scopes.for_user(registry, user.subject, scope)
    issued = await issue_tokens(
        registry,
        client,
        subject=user.subject,
        scope=scope,
        auth_time=None,
        refresh=GRANT.issues_refresh_tokens,
        target=target,
        resources=() if target.resource is None else (target.audience,),
        proof=request.dpop,
    )
    return issued.body


GRANT = Grant(
    "password",
    token_endpoint=exchange,
    parameters=("username", "password", "scope", "resource"),
    issues_refresh_tokens=True,
    deprecated=True,
)
