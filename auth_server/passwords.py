"""Checking a user's password, shared by the login page and the password grant.

In order: a place in the argon2id queue (refused at once when full), an attempt reserved in the
lockout buckets (refused while locked out; see :mod:`auth_server.stores.login_attempts`), then the
check, in a worker thread, costing the same whether or not the user exists, then the outcome
settled in the buckets. Both outcomes look the
same to the caller and go to the audit trail; the password is never logged.

For a user with two-step sign-in (issue 18) the right password is only the first step: the attempt
is handed back without counting as a success (no failures forgotten, no address remembered as hers)
and audited as ``login.password_verified``; the second step settles its own attempt
(:mod:`auth_server.endpoints.two_step`). Callers check :meth:`TwoStepStore.enabled
<auth_server.stores.two_step.TwoStepStore.enabled>` before they sign anyone in.
"""

from __future__ import annotations

from auth_server.crypto import HASHING, HashingBusy, verify_password
from auth_server.registry import Registry
from auth_server.stores.login_attempts import Busy, Lockout
from auth_server.stores.users import User
from auth_server.usernames import MAX_LENGTH

MAX_PASSWORD_LENGTH = 1024
BUSY_RETRY_AFTER = 1  # seconds: a full queue drains in about that


class LockedOut(Exception):
    def __init__(self, lockout: Lockout) -> None:
        super().__init__("too many failed attempts")
        self.retry_after = lockout.retry_after


class TooBusy(Exception):
    """No place for this check now (the hashing queue, or the attempts in flight for this user or
    address, are full): answered at once with 503 and ``Retry-After``, never an unbounded wait."""


async def check_credentials(
    registry: Registry, username: str, password: str, ip: str, *, via: str, client_id: str | None = None
) -> User | None:
    """The user whose password this is, or ``None``.

    Raises :class:`LockedOut` while locked out and :class:`TooBusy` when no place is free; ``via``
    names the way in, for the audit trail.
    """
    if not username or not password or len(username) > MAX_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        return None
    try:
        with HASHING.admit():
            attempt = await registry.login_attempts.reserve(username, ip)
            if isinstance(attempt, Lockout):
                raise LockedOut(attempt)
            try:
                user = await registry.users.by_username(username)
                verified = await verify_password(None if user is None else user.password_hash, password)
                first_step = verified and user is not None and await registry.two_step.enabled(user.user_id)
            except BaseException:
                await registry.login_attempts.settle(attempt, succeeded=None)  # no outcome: hand it back
                raise
    except (HashingBusy, Busy):
        raise TooBusy() from None
    subject = None if user is None else user.subject
    if first_step and user is not None:
        await registry.login_attempts.settle(attempt, succeeded=None)  # the second step decides
        await registry.audit.record(
            "login.password_verified", client_id=client_id, subject=subject, ip=ip, via=via
        )
        return user
    if verified and user is not None:
        await registry.login_attempts.settle(attempt, succeeded=True)
        await registry.audit.record("login.succeeded", client_id=client_id, subject=subject, ip=ip, via=via)
        return user
    locks_out = await registry.login_attempts.settle(attempt, succeeded=False)
    await registry.audit.record("login.failed", client_id=client_id, subject=subject, ip=ip, via=via)
    if locks_out:
        await registry.audit.record(
            "login.locked_out", client_id=client_id, subject=subject, ip=ip, username=username, via=via
        )
    return None
