"""The tokens of email-verification and password-reset links, in Redis (issue 18).

Each is 256 random bits; only its SHA-256 is stored, under a key that names its purpose, for the
link's lifetime (Redis expires it), and it is taken with ``GETDEL``: good for one use, even when
two requests race. A reset token also carries a digest of the password hash it was issued under,
so that any password change (another reset, the user's own) makes every earlier link useless.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from auth_server.crypto import hexdigest, new_token
from shared.redis import Keys

VERIFY_EMAIL = "verify-email"
RESET_PASSWORD = "reset-password"  # noqa: S105 - a purpose, not a secret
PURPOSES = (VERIFY_EMAIL, RESET_PASSWORD)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")  # what new_token() makes, give or take


@dataclass(frozen=True, slots=True)
class AccountToken:
    """What a link's token stands for."""

    user_id: str
    email: str  # the address the link was sent to (a verification link verifies this one only)
    password_marker: str | None = None  # a reset link's: see :func:`password_marker`


def password_marker(password_hash: str) -> str:
    """What a reset link remembers of the password it may replace: a digest of its argon2 hash."""
    return hexdigest(password_hash)


class AccountTokenStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def _key(self, purpose: str, token: str) -> str:
        assert purpose in PURPOSES
        return self._keys(f"account-token-{purpose}", hexdigest(token))

    async def issue(self, purpose: str, record: AccountToken, *, ttl: int) -> str:
        """A new token for ``record``, working for ``ttl`` seconds; only its hash is stored."""
        token = new_token()
        await self._redis.set(self._key(purpose, token), json.dumps(asdict(record)), ex=ttl)
        return token

    async def peek(self, purpose: str, token: str) -> AccountToken | None:
        """What ``token`` stands for, if it still works; it keeps working (the page that shows a
        form before the token is spent)."""
        if not _TOKEN.fullmatch(token):
            return None
        return _parse(await self._redis.get(self._key(purpose, token)))

    async def take(self, purpose: str, token: str) -> AccountToken | None:
        """What ``token`` stands for, spending it: ``None`` if it never worked, expired, or was taken."""
        if not _TOKEN.fullmatch(token):
            return None
        return _parse(await self._redis.getdel(self._key(purpose, token)))


def _parse(raw: bytes | str | None) -> AccountToken | None:
    return None if raw is None else AccountToken(**json.loads(raw))
