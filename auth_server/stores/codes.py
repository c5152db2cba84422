"""Authorization codes in Redis (RFC 6749 §4.1.2, §10.5).

A code is 256 random bits; Redis holds only its SHA-256, for at most ``code_ttl`` seconds. Redeeming
is one Lua script: it reads the grant, checks what the token request presents against it (client,
redirect URI, PKCE) and, only if all match, deletes the code and leaves a tombstone in its place, all
atomically — so the grant consumed is the grant checked, and a mistaken request leaves the code
usable (a typo is not a replay). A later
redemption finds the tombstone, marks it replayed, and gets back what was issued from the code so
the caller can revoke it; if the replay comes before the first redemption has recorded what it
issued, the first redemption sees the mark when it records, and revokes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime

from redis.asyncio import Redis

from auth_server.crypto import hexdigest, new_token
from shared.redis import Keys

# KEYS: the code, its tombstone. ARGV: tombstone ms, client_id, whether a redirect_uri was presented
# ('1'/'0') and its value, whether a code_verifier was sent ('1'/'0') and its S256 challenge ('' if
# malformed), the thumbprint of the DPoP proof's key ('' without a proof). The challenge is compared
# in the clear: it was public in the authorization request, and only the verifier's preimage
# matters; so was the thumbprint (dpop_jkt), and only the proof's signature matters. Then the
# resource named ('' none) and the default audience: the refusals of auth_server.resources.chosen,
# here so that a token request naming no resource, or one outside the grant, leaves the code unspent.
_REDEEM = """
local value = redis.call('GET', KEYS[1])
if value then
  local grant = cjson.decode(value)
  if grant.client_id ~= ARGV[2] then return {3, 'client'} end
  local presented = ARGV[3] == '1'
  local required = grant.redirect_uri_given ~= false
  if (presented or required) and not (presented and ARGV[4] == grant.redirect_uri) then
    return {3, 'redirect_uri'}
  end
  local challenge = grant.code_challenge
  local sent = ARGV[5] == '1'
  if challenge == nil or challenge == cjson.null then
    if sent then return {3, 'verifier_unexpected'} end
  elseif not sent then
    return {3, 'verifier_missing'}
  elseif ARGV[6] ~= challenge then
    return {3, 'verifier'}
  end
  local jkt = grant.dpop_jkt
  if jkt ~= nil and jkt ~= cjson.null and ARGV[7] ~= jkt then return {3, 'dpop_jkt'} end
  local granted = grant.resources
  if type(granted) ~= 'table' then granted = {} end
  if ARGV[8] == '' then
    if #granted > 1 then return {3, 'resource_unnamed'} end
  else
    local covered = #granted == 0 and ARGV[8] == ARGV[9]
    for _, name in ipairs(granted) do
      if name == ARGV[8] then covered = true end
    end
    if not covered then return {3, 'resource'} end
  end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'client_id', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  return {1, value}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'replayed', '1')
  return {2, cjson.encode(redis.call('HGETALL', KEYS[2]))}
end
return {0, false}
"""

_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'family_id', ARGV[1], 'jti', ARGV[2], 'exp', ARGV[3])
if redis.call('HGET', KEYS[1], 'replayed') then return 1 end
return 0
"""


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """What the user approved, bound to the code."""

    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    subject: str
    auth_time: int
    code_challenge: str | None
    # whether /authorize named the redirect URI (then /token must repeat it, RFC 6749 §4.1.3)
    redirect_uri_given: bool = True
    # OpenID Connect: what the ID token issued for the code repeats (Core §3.1.3.6)
    nonce: str | None = None
    claims: str | None = None
    sid: str | None = None
    amr: tuple[str, ...] = ("pwd",)
    # when the grant the user chose ends (Unix time; None: until revoked): the refresh-token family
    # issued for the code ends then at the latest (issue 15)
    grant_ends_at: int | None = None
    # the resources the user approved tokens for (RFC 8707); none: the default audience
    resources: tuple[str, ...] = ()
    # the DPoP key the code is bound to (RFC 9449 §10, ``dpop_jkt``): redeemed only with a proof of it
    dpop_jkt: str | None = None


@dataclass(frozen=True, slots=True)
class Issued:
    """What a redeemed code produced: revoked if the code is replayed."""

    family_id: uuid.UUID | None
    jti: str | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Replayed:
    issued: Issued


@dataclass(frozen=True, slots=True)
class Presented:
    """What a token request presents with a code, checked against its grant before it is consumed."""

    client_id: str
    redirect_uri: str | None
    verifier_sent: bool
    # the S256 challenge of the verifier sent; None when none was sent or it is malformed
    verifier_challenge: str | None
    # the thumbprint of the key of the DPoP proof sent (RFC 9449 §10); None: no proof
    dpop_jkt: str | None = None
    # the resource the token request names (RFC 8707; None: none), and the default audience
    resource: str | None = None
    default_audience: str = ""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The code is live but the request does not match its grant; the code was left unconsumed.

    ``reason``: ``client`` (issued to another client), ``redirect_uri``, ``verifier_missing``,
    ``verifier_unexpected`` (a verifier where no challenge was sent), ``verifier`` (wrong verifier),
    ``dpop_jkt`` (the code is bound to a DPoP key, and the request had no proof made with it),
    ``resource`` (a resource the grant does not cover), ``resource_unnamed`` (the grant covers
    several, and the request named none).
    """

    reason: str


class CodeStore:
    def __init__(self, redis: Redis, keys: Keys, *, ttl: int, tombstone_ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl
        self._tombstone_ms = tombstone_ttl * 1000
        self._redeem = redis.register_script(_REDEEM)
        self._record = redis.register_script(_RECORD)

    def _key_pair(self, code: str) -> list[str]:
        ident = hexdigest(code)
        return [self._keys("code", ident), self._keys("code-used", ident)]

    async def issue(self, grant: CodeGrant, *, ttl: int | None = None) -> str:
        """A new code for ``grant``, good for ``ttl`` seconds, at most the store's (``code_ttl``):
        a client's security profile may want less (FAPI 2.0: 60 s, ``auth_server/profiles.py``)."""
        code = new_token()
        payload = asdict(grant)
        lifetime = self._ttl if ttl is None else min(ttl, self._ttl)
        await self._redis.set(self._key_pair(code)[0], json.dumps(payload), ex=lifetime)
        return code

    async def redeem(self, code: str, presented: Presented) -> CodeGrant | Replayed | Mismatch | None:
        """Consume a code once, if ``presented`` matches its grant (one round trip).

        ``None``: never issued or expired. ``Replayed``: already consumed. ``Mismatch``: live, but
        not for this request, and still unconsumed.
        """
        status, value = await self._redeem(
            keys=self._key_pair(code),
            args=[
                self._tombstone_ms,
                presented.client_id,
                "0" if presented.redirect_uri is None else "1",
                presented.redirect_uri or "",
                "1" if presented.verifier_sent else "0",
                presented.verifier_challenge or "",
                presented.dpop_jkt or "",
                presented.resource or "",
                presented.default_audience,
            ],
        )
        if status == 1:
            data = json.loads(value)
            data["scope"] = tuple(data["scope"])
            for name in ("amr", "resources"):
                if name in data:
                    data[name] = tuple(data[name])
            return CodeGrant(**data)
        if status == 2:
            flat = json.loads(value)
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            return Replayed(_issued(fields))
        if status == 3:
            return Mismatch(value.decode() if isinstance(value, bytes) else str(value))
        return None

    async def record_issued(self, code: str, issued: Issued) -> bool:
        """Remember what ``code`` produced; True if the code was replayed meanwhile (revoke it then)."""
        replayed = await self._record(
            keys=[self._key_pair(code)[1]],
            args=[
                "" if issued.family_id is None else str(issued.family_id),
                issued.jti or "",
                "" if issued.expires_at is None else issued.expires_at.isoformat(),
            ],
        )
        return bool(replayed)


def _issued(fields: dict[str, str]) -> Issued:
    family, jti, exp = fields.get("family_id"), fields.get("jti"), fields.get("exp")
    return Issued(
        family_id=uuid.UUID(family) if family else None,
        jti=jti or None,
        expires_at=datetime.fromisoformat(exp) if exp else None,
    )
