"""The secrets of dynamic registration (RFC 7591 §3, RFC 7592 §3), stored only as SHA-256 digests.

* Initial access tokens (``registration_tokens``): an operator hands one out (``tessera
  registration-token create``) so that a machine may register at the registration endpoint under
  the ``token`` policy. Each may expire, may be used a limited number of times (the use is counted
  atomically, in the one ``UPDATE`` that checks it), and may auto-approve what it registers.
* Registration access tokens (``clients.registration_access_token_hash``): what a dynamically
  registered client presents to read, update or delete its registration (RFC 7592). A new one is
  issued at registration and on every update (§2.2); the previous one stops working at once.

The tokens carry 256 bits of entropy, so a digest lookup is as safe as a comparison; the
registration access token is compared in constant time all the same.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from auth_server.crypto import digest, new_token


@dataclass(frozen=True, slots=True)
class InitialAccessToken:
    """An initial access token's record (never the token itself)."""

    created_at: datetime
    expires_at: datetime | None
    max_uses: int | None
    uses: int
    auto_approve: bool


def _token(row: asyncpg.Record) -> InitialAccessToken:
    return InitialAccessToken(
        row["created_at"], row["expires_at"], row["max_uses"], row["uses"], row["auto_approve"]
    )


class RegistrationTokenStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- initial access tokens (RFC 7591 §3) ----------------------------------------------------

    async def create(
        self, *, expires_in: int | None = None, max_uses: int | None = None, auto_approve: bool = False
    ) -> tuple[str, InitialAccessToken]:
        """A new initial access token, returned once; only its digest is kept."""
        token = new_token()
        row = await self._pool.fetchrow(
            "INSERT INTO registration_tokens (token_hash, expires_at, max_uses, auto_approve)"
            " VALUES ($1, CASE WHEN $2::int IS NULL THEN NULL ELSE now() + make_interval(secs => $2) END,"
            " $3, $4) RETURNING created_at, expires_at, max_uses, uses, auto_approve",
            digest(token),
            expires_in,
            max_uses,
            auto_approve,
        )
        assert row is not None
        return token, _token(row)

    async def use(self, token: str) -> InitialAccessToken | None:
        """Spend one use of ``token``; ``None`` if it is unknown, expired or used up. The check and
        the count are one statement, so concurrent registrations never exceed ``max_uses``."""
        row = await self._pool.fetchrow(
            "UPDATE registration_tokens SET uses = uses + 1 WHERE token_hash = $1"
            " AND (expires_at IS NULL OR expires_at > now()) AND (max_uses IS NULL OR uses < max_uses)"
            " RETURNING created_at, expires_at, max_uses, uses, auto_approve",
            digest(token),
        )
        return None if row is None else _token(row)

    async def refund(self, token: str) -> None:
        """Give back the use a registration that was refused had spent."""
        await self._pool.execute(
            "UPDATE registration_tokens SET uses = uses - 1 WHERE token_hash = $1 AND uses > 0", digest(token)
        )

    async def issue_access_token(self, client_id: str) -> str:
        """A new registration access token for ``client_id``, replacing the previous one."""
        token = new_token()
        await self._pool.execute(
            "UPDATE clients SET registration_access_token_hash = $2 WHERE client_id = $1",
            client_id,
            digest(token),
        )
        return token

    async def access_token_matches(self, client_id: str, token: str) -> bool:
        """Whether ``token`` is the client's current registration access token (constant time)."""
        stored = await self._pool.fetchval(
            "SELECT registration_access_token_hash FROM clients WHERE client_id = $1", client_id
        )
        # compared even when there is none, so that an unknown client costs the same
        matches = hmac.compare_digest(digest(token), stored or b"\0" * 32)
        return stored is not None and matches
