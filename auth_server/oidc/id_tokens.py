"""The ID token (OpenID Connect Core §2, §3.1.3.6, §3.2.2.10, §3.3.2.11).

Who signed in, when and how, for one client: ``iss sub aud exp iat auth_time nonce acr amr azp
sid``, the hashes binding it to what came with it (``at_hash`` for an access token, ``c_hash`` for
a code: the left half of the token's SHA-256, §3.1.3.6, §3.3.2.11), and the profile claims the
request releases into it (:mod:`auth_server.oidc.claims`). Signed with the client's registered
algorithm (RS256 unless it chose ES256). Issuing one in a session records the client there, so
that logging out of the session tells it (Back-Channel Logout).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from auth_server.clients import Client
from auth_server.oidc import claims as oidc_claims
from auth_server.oidc import signer
from auth_server.oidc.acr import acr_of
from auth_server.oidc.claims import ClaimsRequest
from auth_server.registry import Registry


@dataclass(frozen=True, slots=True)
class Authentication:
    """What an ID token says about one sign-in and the request it answers."""

    subject: str  # the user's own id (the client may see a pairwise one)
    auth_time: int
    scope: tuple[str, ...]
    nonce: str | None = None
    sid: str | None = None
    amr: tuple[str, ...] = ("pwd",)
    claims: str | None = None  # the serialized ``claims`` request parameter, if any


def half_hash(value: str) -> str:
    """``at_hash`` / ``c_hash``: base64url of the left half of SHA-256 (the hash of RS256 and ES256)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


async def issue(
    registry: Registry,
    client: Client,
    authentication: Authentication,
    *,
    code: str | None = None,
    access_token: str | None = None,
) -> str:
    """A signed ID token for ``client``; profile claims go into it only when no access token
    comes with it (they are at userinfo otherwise), or when asked for it by name."""
    now = int(time.time())
    token: dict[str, Any] = {
        "iss": registry.settings.issuer,
        "sub": await registry.subjects.for_client(client, authentication.subject),
        "aud": client.client_id,
        "exp": now + registry.settings.id_token_ttl,
        "iat": now,
        "auth_time": authentication.auth_time,
        "acr": acr_of(authentication.amr),  # "1", or two-step's (auth_server/oidc/acr.py)
        "amr": list(authentication.amr),
        "azp": client.client_id,
        "jti": str(uuid.uuid4()),
    }
    if authentication.nonce is not None:
        token["nonce"] = authentication.nonce
    if authentication.sid is not None:
        token["sid"] = authentication.sid
    if code is not None:
        token["c_hash"] = half_hash(code)
    if access_token is not None:
        token["at_hash"] = half_hash(access_token)
    request = ClaimsRequest.parse(authentication.claims)
    names = oidc_claims.released(
        authentication.scope, request, "id_token", scope_claims_here=access_token is None and code is None
    )
    if names:
        profile = await registry.users.profile(uuid.UUID(authentication.subject))
        if profile is not None:
            token.update(oidc_claims.values(profile, names))
    if authentication.sid is not None:
        await registry.sessions.note_client(authentication.sid, client.client_id)
    return signer.sign(registry.keyring, token, alg=client.id_token_signed_response_alg)
