"""What the server has issued, as the parts that issue, store and revoke tokens all see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class IssuedAccess:
    """An issued access token (RFC 9068) by its ``jti`` and expiry: kept beside the refresh token
    issued with it, so that revoking the refresh token's family can deny-list it too."""

    jti: str
    expires_at: datetime
