"""Checking a user's password, shared by the login page and the password grant.

argon2id runs in a worker thread and costs the same whether or not the user exists; both
outcomes look identical to the caller. Repeated failures lock the username and the client IP out
for a window (see :mod:`auth_server.stores.login_attempts`). The password is never logged.
"""

from __future__ import annotations

from auth_server.crypto import verify_password
from auth_server.registry import Registry
from auth_server.stores.login_attempts import Lockout
from auth_server.stores.users import User


class LockedOut(Exception):
    def __init__(self, lockout: Lockout) -> None:
        super().__init__("too many failed attempts")
        self.retry_after = lockout.retry_after


async def check_credentials(registry: Registry, username: str, password: str, ip: str) -> User | None:
    """The user whose password this is, or ``None``; raises :class:`LockedOut` while locked out."""
    if not username or not password or len(username) > 200 or len(password) > 1024:
        return None
    lockout = await registry.login_attempts.lockout(username, ip)
    if lockout is not None:
        raise LockedOut(lockout)
    user = await registry.users.by_username(username)
    if await verify_password(None if user is None else user.password_hash, password) and user is not None:
        await registry.login_attempts.succeeded(username)
        return user
    if await registry.login_attempts.failed(username, ip):
        await registry.audit.record("login.locked_out", ip=ip, username=username)
    return None
