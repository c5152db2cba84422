"""Device authorization grant (RFC 8628): a device without a browser (a TV, a printer, a CLI) is
signed in by its user on another one.

:func:`start` answers the device authorization request (§3.1-3.2): the client, authenticated (or a
public one naming itself), may use this grant; its scope and resources (RFC 8707) are checked as at
/authorize; it gets a ``device_code`` to poll with and a ``user_code`` for the user to enter at
``verification_uri`` (``/device``, ``endpoints/device.py``: she signs in, enters or confirms the
code, and answers the consent page).

:func:`exchange` answers each poll at the token endpoint (§3.4-3.5), in one Redis round trip
(:meth:`~auth_server.stores.device_codes.DeviceCodeStore.poll`): ``authorization_pending`` until the
user answers, ``slow_down`` to a device polling sooner than its interval (which grows by 5 s),
``access_denied``, ``expired_token``, and once allowed the tokens, exactly once: a device code is
then spent, and a code issued to another client is answered as unknown. A poll naming a resource
the approval does not cover (or none, of several) is ``invalid_target`` and spends nothing, as a
code's token request. The tokens are issued as the code grant issues them: for one of the approved
resources, a refresh token (unless the request is an OpenID Connect one without
``offline_access``), an ID token when ``openid`` was approved (without ``sid``: the device's
sign-in is not the browser session she used to allow it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from auth_server import paths, resources, scopes
from auth_server.clients import Client
from auth_server.grants.base import Grant
from auth_server.grants.common import TokenRequest, issue_tokens
from auth_server.oidc import id_tokens
from auth_server.oidc.id_tokens import Authentication
from auth_server.registry import Registry
from auth_server.stores import device_codes
from auth_server.stores.device_codes import DeviceAuthorization, shown_user_code
from shared.errors import (
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    UnauthorizedClient,
)

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


# RFC 8628 §3.5: the token endpoint's answers while the device waits (status 400, RFC 6749 §5.2)
class AuthorizationPending(OAuthError):
    error = "authorization_pending"


class SlowDown(OAuthError):
    error = "slow_down"


class ExpiredToken(OAuthError):
    error = "expired_token"


class DeviceAccessDenied(OAuthError):
    """``access_denied`` at the token endpoint: a 400, as every error there (RFC 6749 §5.2)."""

    error = "access_denied"


async def start(
    registry: Registry, client: Client, params: Mapping[str, str], named: Sequence[str]
) -> dict[str, Any]:
    """The device authorization response (RFC 8628 §3.2) to an authenticated client's request
    (§3.1): ``params`` its single-valued parameters, ``named`` its ``resource`` values."""
    if not client.active:  # pending review, rejected or suspended
        raise UnauthorizedClient(f"This client cannot get tokens: it is {client.status}.")
    if not client.allows_grant(DEVICE_CODE):
        raise UnauthorizedClient(f"This client is not registered for the {DEVICE_CODE} grant.")
    settings = registry.settings
    scope = scopes.resolve(scopes.parse(params.get("scope")), client.scope, set(settings.scopes))
    names = resources.identifiers(named)
    for target in await resources.resolve(registry, client, names):
        target.scope(scope)  # each resource with a requested scope of its own, as at /authorize
    issued = await registry.device_codes.issue(DeviceAuthorization(client.client_id, scope, names))
    verification_uri = settings.endpoint(paths.DEVICE)
    user_code = shown_user_code(issued.user_code)
    return {
        "device_code": issued.device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
        "expires_in": issued.expires_in,
        "interval": issued.interval,
    }


async def exchange(registry: Registry, client: Client, request: TokenRequest) -> dict[str, Any]:
    device_code = request.get("device_code")
    if device_code is None:
        raise InvalidRequest("The device_code parameter is required.")
    resource = request.get("resource")
    if resource is not None:
        # one this client may not ask for is a mistake, refused before the poll; one the approval
        # does not cover is refused by the poll itself, which then leaves the approval (as a code's)
        await resources.resolve(registry, client, resources.identifiers([resource]))
    poll = await registry.device_codes.poll(
        device_code,
        client.client_id,
        resource=resource,  # RFC 8707 §2.2: one the approval covers
        default_audience=registry.settings.access_token_audience,
    )
    if poll.approval is None:
        raise _ANSWERS[poll.outcome](poll.interval)
    approval = poll.approval
    # the client's registration may have narrowed since the user allowed it
    scope = tuple(s for s in approval.scope if s in client.scope)
    if not scope:
        raise InvalidScope("The client is no longer allowed any of the approved scopes.")
    target = await resources.target(registry, client, resource, poll.resources)
    openid = "openid" in scope
    ends = approval.grant_ends_at
    issued = await issue_tokens(
        registry,
        client,
        subject=approval.subject,
        scope=scope,
        auth_time=approval.auth_time,
        # OpenID Connect Core §11, as for a code: a sign-in gets a refresh token only for offline_access
        refresh=GRANT.issues_refresh_tokens and (not openid or "offline_access" in scope),
        # the duration the user chose on the consent page bounds the family (issue 15)
        ends_at=None if ends is None else datetime.fromtimestamp(ends, UTC),
        target=target,
        resources=poll.resources,
        proof=request.dpop,  # RFC 9449 §5: a device that sent a DPoP proof gets tokens bound to its key
    )
    if openid:
        authentication = Authentication(
            subject=approval.subject, auth_time=approval.auth_time, scope=scope, amr=approval.amr
        )
        issued.body["id_token"] = await id_tokens.issue(
            registry, client, authentication, access_token=issued.body["access_token"]
        )
    return issued.body


def _unknown(_: int) -> OAuthError:
    return InvalidGrant("The device code is invalid or has expired.")


# What a device is told while it has no tokens (RFC 8628 §3.5), by what its poll found.
_ANSWERS: dict[str, Callable[[int], OAuthError]] = {
    device_codes.PENDING: lambda _: AuthorizationPending(
        "The user has not answered yet: poll again after the interval."
    ),
    device_codes.SLOW_DOWN: lambda interval: SlowDown(
        f"Polling too often: wait at least {interval} seconds between requests from now on."
    ),
    device_codes.DENIED: lambda _: DeviceAccessDenied("The user denied the request."),
    device_codes.EXPIRED: lambda _: ExpiredToken(
        "The device code has expired: start again with a new device authorization request."
    ),
    device_codes.UNKNOWN: _unknown,
    device_codes.USED: lambda _: InvalidGrant("The device code was already used."),
    # RFC 8707 §2.2 (auth_server.resources.chosen's refusals): the approval is left for the next poll
    device_codes.RESOURCE: lambda _: InvalidTarget("The resource was not part of the authorization grant."),
    device_codes.RESOURCE_UNNAMED: lambda _: InvalidTarget(
        "The grant covers several resources: name one with the resource parameter."
    ),
}


GRANT = Grant(
    DEVICE_CODE,
    token_endpoint=exchange,
    parameters=("device_code", "resource"),
    issues_refresh_tokens=True,
)
