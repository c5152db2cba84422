"""Ending sign-in sessions, and telling clients: OpenID Connect Back-Channel Logout 1.0.

:func:`end_session` is the one way a session ends, whether the user signs out at Tessera
(``/logout``) or a client asks (RP-Initiated Logout 1.0, ``endpoints/end_session.py``): the
session is deleted, its cookie cleared, and every client that got an ID token in it and registered
a ``backchannel_logout_uri`` (§2.2) is queued a logout token (§2.3-§2.4).

:func:`deliver_forever` is the worker every replica runs: it claims due deliveries from the Redis
queue (:mod:`auth_server.stores.logout_deliveries`), signs a fresh logout token for each and POSTs
it (§2.5) through the guarded :class:`shared.fetch.Fetcher`. A 2xx answer is success (§2.8: 200,
though some frameworks answer 204); a 400 is the client refusing the token, given up; anything else
(5xx, 429, no answer) is retried with exponential back-off, then given up with a warning and an
audit event. Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.crypto import new_token
from auth_server.oidc.signer import sign
from auth_server.pages import cookie_name, current_session, session_id
from auth_server.queue_worker import work_forever
from auth_server.registry import UNAVAILABLE_ERRORS, Registry
from auth_server.stores.logout_deliveries import DEFAULT_LEASE, Claimed, Delivery
from auth_server.stores.sessions import Session
from shared.fetch import Fetcher, FetchError, FetchRefused
from shared.http import client_ip

log = logging.getLogger("tessera.logout")

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105 - a media type (Back-Channel Logout §2.4)
LOGOUT_TOKEN_TTL = 120  # seconds: the token is delivered at once, or signed afresh for a retry
DELIVERY_TIMEOUT = 5.0  # seconds one POST to a client may take
POLL_INTERVAL = 1.0  # seconds between looks at the queue (an enqueue in this process wakes it sooner)
MAX_OUTAGE_WAIT = 30.0  # seconds between looks at an unreachable queue, at most
BATCH = 20  # deliveries claimed at once, and POSTed concurrently
MAX_ANSWER_BYTES = 16 * 1024  # what is read of a client's answer (it is not used)


# -- Ending a session --------------------------------------------------------------------------------


async def end_session(request: web.Request, response: web.StreamResponse, *, via: str) -> list[str]:
    """End the browser's session (if any) and clear its cookie on ``response``; return the clients
    queued a logout token. ``via`` names the page that ended it, for the audit trail.

    A request that carried no session cookie clears none: the cookie is SameSite=Lax, so another
    site's form POST arrives without it, and its answer must not sign the user out."""
    registry = request.app[REGISTRY]
    key = session_id(request)
    if key is None:
        return []
    session = await current_session(request)
    notified = await end(registry, key, session, ip=client_ip(request), via=via)
    settings = registry.settings
    response.del_cookie(cookie_name(request), path="/", secure=settings.secure_cookies, httponly=True)
    return notified


async def end(
    registry: Registry, key: str, session: Session | None, *, ip: str | None, via: str
) -> list[str]:
    """Delete the session stored under cookie value ``key``; if a user was signed in, queue a
    logout token for each client that got an ID token in it and has a ``backchannel_logout_uri``
    (Back-Channel Logout §2.3), and audit ``session.ended``. Returns the clients queued.

    Every logout token is queued before anything is deleted: if PostgreSQL or Redis fails midway,
    the session and its list of clients are still there, and signing out again tells them all."""
    if session is None or session.user_id is None or session.sid is None:
        await registry.sessions.delete(key)
        return []
    client_ids, notified = await _tell_clients(registry, session)
    await registry.sessions.end(key, session.sid, user_id=session.user_id)
    await _audit_ended(registry, session, client_ids, ip=ip, via=via)
    return notified


async def end_listed_session(
    registry: Registry, user_id: str, handle: str, *, ip: str | None, via: str
) -> list[str] | None:
    """End the session of ``user_id`` listed under ``handle`` (the sessions list of
    ``/account/security``: :meth:`~auth_server.stores.sessions.SessionStore.signed_in`), telling its
    clients as :func:`end` does; the clients queued, or ``None`` if she has no such session."""
    for listed in await registry.sessions.signed_in(user_id):
        if listed.handle == handle:
            client_ids, notified = await _tell_clients(registry, listed.session)
            if await registry.sessions.end_listed(user_id, handle) is None:
                return None
            await _audit_ended(registry, listed.session, client_ids, ip=ip, via=via)
            return notified
    return None


async def end_all_sessions(
    registry: Registry, user_id: str, *, except_handle: str | None = None, ip: str | None, via: str
) -> int:
    """End every signed-in session of ``user_id`` but the one listed under ``except_handle`` (the
    browser that asked, when it stays signed in: a password change), telling each one's clients
    (back-channel logout) as :func:`end` does; how many ended. For a password change, a password
    reset, an account locked by an operator. ``except_handle`` is
    :func:`auth_server.stores.sessions.handle_of` of the cookie value to keep."""
    ended = 0
    for listed in await registry.sessions.signed_in(user_id):
        if listed.handle == except_handle:
            continue
        client_ids, _ = await _tell_clients(registry, listed.session)
        if await registry.sessions.end_listed(user_id, listed.handle) is not None:
            ended += 1
            await _audit_ended(registry, listed.session, client_ids, ip=ip, via=via)
    return ended


async def _tell_clients(registry: Registry, session: Session) -> tuple[list[str], list[str]]:
    """Queue a logout token for each client that got an ID token in the signed-in ``session`` and
    has a ``backchannel_logout_uri`` (§2.3), before anything is deleted: if PostgreSQL or Redis
    fails midway, the session and its list of clients are still there. Returns (the clients that
    got ID tokens, those queued)."""
    if session.user_id is None or session.sid is None:
        return [], []
    client_ids = await registry.sessions.clients(session.sid)
    notified = []
    for client_id in client_ids:
        client = await registry.clients.get(client_id)
        if client is None or client.backchannel_logout_uri is None:
            continue
        sub = await registry.subjects.for_client(client, session.user_id)
        await registry.logout_deliveries.enqueue(
            Delivery(client_id=client_id, sub=sub, sid=session.sid, user_id=session.user_id)
        )
        notified.append(client_id)
    return client_ids, notified


async def _audit_ended(
    registry: Registry, session: Session, client_ids: list[str], *, ip: str | None, via: str
) -> None:
    try:
        await registry.audit.record(
            "session.ended", subject=session.user_id, ip=ip, sid=session.sid, clients=client_ids, via=via
        )
    except UNAVAILABLE_ERRORS:  # the session has ended: a lost audit row must not undo the answer
        log.warning("session.ended not audited: the audit trail is unavailable")


# -- Logout tokens (Back-Channel Logout 1.0 §2.4) ---------------------------------------------------


def logout_token_claims(issuer: str, delivery: Delivery, *, now: int) -> dict[str, Any]:
    """§2.4: ``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``events``, ``sub`` and ``sid`` (when the
    session has one); never ``nonce``."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": delivery.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_TTL,
        "jti": new_token(),
        "events": {BACKCHANNEL_EVENT: {}},
        "sub": delivery.sub,
    }
    if delivery.sid is not None:
        claims["sid"] = delivery.sid
    return claims


def logout_token(registry: Registry, client: Client, delivery: Delivery) -> str:
    """A fresh logout token for ``delivery``, signed like the client's ID tokens, typed
    ``logout+jwt`` (§2.4). :class:`LookupError` if the ring has no active key of that algorithm."""
    claims = logout_token_claims(registry.settings.issuer, delivery, now=int(time.time()))
    return sign(registry.keyring, claims, alg=client.id_token_signed_response_alg, typ=LOGOUT_TOKEN_TYPE)


# -- Delivery (Back-Channel Logout 1.0 §2.5, §2.8) --------------------------------------------------


async def deliver_forever(
    registry: Registry, stop: asyncio.Event, *, poll: float = POLL_INTERVAL, lease: float = DEFAULT_LEASE
) -> None:
    """Deliver queued logout tokens until ``stop`` is set; survives Redis and database outages.

    Cancelling it is safe at any point: a delivery claimed and not finished is due again when its
    lease ends, for whichever replica looks first.
    """
    store = registry.logout_deliveries
    fetcher = Fetcher(
        allow_private=registry.settings.development, max_bytes=MAX_ANSWER_BYTES, timeout=DELIVERY_TIMEOUT
    )
    async with fetcher:
        await work_forever(
            store,
            lambda claimed: _deliver_one(registry, fetcher, claimed),
            stop,
            what="back-channel logout",
            log=log,
            batch=BATCH,
            poll=poll,
            lease=lease,
            max_wait=MAX_OUTAGE_WAIT,
        )


async def _deliver_one(registry: Registry, fetcher: Fetcher, claimed: Claimed) -> None:
    """One attempt; a failure of Redis or the database leaves the claim to expire and be retried."""
    try:
        await deliver(registry, fetcher, claimed)
    except Exception as exc:
        log.warning(
            "back-channel logout to client %s interrupted (%r); retried when its claim lapses",
            claimed.delivery.client_id,
            exc,
        )


async def deliver(registry: Registry, fetcher: Fetcher, claimed: Claimed) -> None:
    """POST a fresh logout token for ``claimed`` to its client's ``backchannel_logout_uri`` (§2.5),
    then finish, reschedule or give up on it by the answer (§2.8)."""
    delivery = claimed.delivery
    client = await registry.clients.get(delivery.client_id)
    if client is None or client.backchannel_logout_uri is None:
        log.info("back-channel logout to client %s dropped: no longer registered for it", delivery.client_id)
        await registry.logout_deliveries.finish(delivery)
        return
    try:
        token = logout_token(registry, client, delivery)
        answer = await fetcher.post_form(client.backchannel_logout_uri, {"logout_token": token})
    except FetchRefused as refused:
        await _give_up(registry, delivery, str(refused))
        return
    except (FetchError, LookupError) as failed:
        await _retry(registry, claimed, str(failed))
        return
    if 200 <= answer.status < 300:
        log.info("back-channel logout delivered to client %s", delivery.client_id)
        await registry.logout_deliveries.finish(delivery)
    elif answer.status == 400:
        await _give_up(registry, delivery, "the client refused the logout token (HTTP 400)")
    else:
        await _retry(registry, claimed, f"the client answered HTTP {answer.status}")


async def _retry(registry: Registry, claimed: Claimed, reason: str) -> None:
    store = registry.logout_deliveries
    failed = claimed.delivery.attempts + 1
    delay = store.backoff.delay(failed)
    if delay is None:
        await _give_up(registry, claimed.delivery, f"{reason}; {failed} attempts failed")
        return
    log.info(
        "back-channel logout to client %s failed (%s); attempt %d in %g s",
        claimed.delivery.client_id,
        reason,
        failed + 1,
        delay,
    )
    await store.retry_later(claimed, delay)


async def _give_up(registry: Registry, delivery: Delivery, reason: str) -> None:
    log.warning("back-channel logout to client %s given up: %s", delivery.client_id, reason)
    await registry.logout_deliveries.finish(delivery)
    await registry.audit.record(
        "logout.delivery_failed",
        client_id=delivery.client_id,
        subject=delivery.user_id,
        sid=delivery.sid,
        attempts=delivery.attempts + 1,
        reason=reason,
    )
