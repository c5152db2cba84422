"""Device authorizations in Redis (RFC 8628 §3.1-3.5, §5.1, §5.2, §6.1), shared by every replica.

A device authorization is one hash, ``device:{D}``, where ``D`` is the SHA-256 of its
``device_code`` (256 random bits, RFC 8628 §5.2): the client it was issued to, what it asks for,
its polling interval, when it was last polled, and its state — ``pending`` until the user answers,
then ``allowed`` (with who allowed what) or ``denied``, and ``done`` once the device has had its
answer. Its ``user_code`` is a second key, ``device-user:{U}`` (``U`` the SHA-256 of the code in
its normal form), pointing at ``D``: neither code is ever stored as itself.

Every step that decides is one Lua script on the one hash, so the replicas agree and each answer is
given once: a poll (:meth:`DeviceCodeStore.poll`, a single round trip, as the device repeats it
every few seconds) reads the state, measures the interval since the last poll with Redis's own clock
(the replicas' clocks never disagree about it) and, once the user has answered, hands the answer
over exactly once. The user's answer (:meth:`allow`, :meth:`deny`) lands only on a pending, live
authorization. The user code is taken with ``GETDEL`` when the user enters it: it works once.

Wrong user codes are counted per address and in all (:meth:`spend_guess`), in fixed windows of
:data:`GUESS_WINDOW` seconds: each entry is counted before it is looked up and handed back when it
was right, so guesses sent at once never outnumber the budget, and people typing their code right
spend none of it (RFC 8628 §5.1).

A hash outlives its ``expires_in`` by :data:`EXPIRED_KEPT` seconds, so a device polling late is
told ``expired_token`` rather than that its code is unknown.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from auth_server.crypto import hexdigest, new_token
from shared.redis import Keys

# RFC 8628 §6.1: A-Z without vowels (no words) and without digits (no modifier keys on a phone)
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8  # 20^8 ≈ 2^34.6 codes
SLOW_DOWN_STEP = 5  # seconds added to the interval by each slow_down (RFC 8628 §3.5)
# A poll this much sooner than the interval is still on time: the gap measured between two
# requests' arrivals is the device's wait plus the jitter of two trips across the network.
POLL_LEEWAY_MS = 500
EXPIRED_KEPT = 600  # seconds an expired authorization is kept, to answer expired_token
GUESS_WINDOW = 600  # seconds: the window wrong user codes are counted in
_USER_CODE_TRIES = 10

# KEYS: the authorization. ARGV: ttl (s), kept after expiry (s), interval (s), then field, value...
_CREATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'state', 'pending', 'expires', now + tonumber(ARGV[1]) * 1000,
  'interval', ARGV[3], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]))
return 1
"""

# KEYS: the authorization. ARGV: client_id, slow_down step (s), leeway (ms), the resource the token
# request names ('' none) and the default audience.
# Returns {outcome, interval} or {'allowed', 0, subject, auth_time, amr, scope, ends, resources}. An
# approval is handed over only to a poll whose resource it covers (auth_server.resources.chosen's
# refusals, as stores/codes.py's): another is answered 'resource' or 'resource_unnamed' and leaves
# it for the next poll, so that a mistaken resource does not spend what the user allowed.
_POLL = """
local h = redis.call('HMGET', KEYS[1], 'client_id', 'state', 'expires', 'interval', 'last')
if not h[1] or h[1] ~= ARGV[1] then return {'unknown', 0} end
if h[2] == 'done' then return {'used', 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= tonumber(h[3]) then return {'expired', 0} end
if h[2] == 'pending' then
  local interval = tonumber(h[4])
  redis.call('HSET', KEYS[1], 'last', now)
  if h[5] and now - tonumber(h[5]) < interval * 1000 - tonumber(ARGV[3]) then
    interval = interval + tonumber(ARGV[2])
    redis.call('HSET', KEYS[1], 'interval', interval)
    return {'slow_down', interval}
  end
  return {'pending', interval}
end
if h[2] == 'denied' then
  redis.call('HSET', KEYS[1], 'state', 'done')
  return {'denied', 0}
end
local a = redis.call('HMGET', KEYS[1], 'subject', 'auth_time', 'amr', 'granted', 'ends', 'resources')
local granted = cjson.decode(a[6] or '[]')
if type(granted) ~= 'table' then granted = {} end
if ARGV[4] == '' then
  if #granted > 1 then return {'resource_unnamed', 0} end
else
  local covered = #granted == 0 and ARGV[4] == ARGV[5]
  for _, name in ipairs(granted) do
    if name == ARGV[4] then covered = true end
  end
  if not covered then return {'resource', 0} end
end
redis.call('HSET', KEYS[1], 'state', 'done')
return {'allowed', 0, a[1], a[2], a[3], a[4], a[5] or '', a[6]}
"""

# KEYS: the authorization. ARGV: the new state, then field, value... Lands on a pending, live one.
_ANSWER = """
local h = redis.call('HMGET', KEYS[1], 'state', 'expires')
if h[1] ~= 'pending' then return 0 end
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 >= tonumber(h[2]) then return 0 end
redis.call('HSET', KEYS[1], 'state', unpack(ARGV))
return 1
"""

# KEYS: the authorization. Returns client_id, scope, resources of a pending, live one, else nothing.
_SHOW = """
local h = redis.call('HMGET', KEYS[1], 'state', 'expires', 'client_id', 'scope', 'resources')
if h[1] ~= 'pending' then return false end
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 >= tonumber(h[2]) then return false end
return {h[3], h[4], h[5]}
"""


def new_user_code() -> str:
    """A user code in its normal form: :data:`USER_CODE_LENGTH` letters of the alphabet."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def normal_user_code(typed: str) -> str | None:
    """What the user typed as a user code in its normal form, or None if it cannot be one: upper
    case, every character outside the alphabet (dashes, spaces, a stray dot) left out (RFC 8628 §6.1)."""
    if len(typed) > 64:
        return None
    letters = "".join(ch for ch in typed.upper() if ch in USER_CODE_ALPHABET)
    return letters if len(letters) == USER_CODE_LENGTH else None


def shown_user_code(code: str) -> str:
    """A user code as people read it: two groups of four, with a dash (``WDJB-MJHT``)."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """What a device asked for (RFC 8628 §3.1), as checked at the device authorization endpoint."""

    client_id: str
    scope: tuple[str, ...]
    resources: tuple[str, ...] = ()  # RFC 8707; none: the default audience


@dataclass(frozen=True, slots=True)
class Issued:
    device_code: str
    user_code: str  # in its normal form
    expires_in: int
    interval: int


@dataclass(frozen=True, slots=True)
class Entered:
    """A user code the user entered, still pending: the authorization it names."""

    device: str  # the authorization's id (the SHA-256 of its device code)
    authorization: DeviceAuthorization


@dataclass(frozen=True, slots=True)
class Approval:
    """Who allowed the device, and what (the scopes she left ticked, for how long)."""

    subject: str
    auth_time: int
    amr: tuple[str, ...]
    scope: tuple[str, ...]
    grant_ends_at: int | None = None  # Unix time; None: until revoked


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """A device authorization shown to a signed-in user on the consent page, waiting for her answer
    (kept in an :class:`~auth_server.stores.authorization_requests.AuthorizationRequestStore`, bound
    to her like an authorization request)."""

    device: str
    client_id: str
    scope: tuple[str, ...]
    resources: tuple[str, ...] = ()
    user_id: str | None = None


# What a poll found (RFC 8628 §3.5): ``allowed`` hands over the approval, the others are answers;
# the last two (RFC 8707 §2.2, invalid_target) leave the approval for a poll naming a resource it covers.
PENDING, SLOW_DOWN, DENIED, EXPIRED, UNKNOWN, USED, ALLOWED = (
    "pending",
    "slow_down",
    "denied",
    "expired",
    "unknown",
    "used",
    "allowed",
)
RESOURCE, RESOURCE_UNNAMED = "resource", "resource_unnamed"


@dataclass(frozen=True, slots=True)
class Guess:
    """A user code entry counted against the budgets of wrong codes (RFC 8628 §5.1)."""

    keys: tuple[str, str]  # the counters it was counted in: its address's, and everyone's
    wait: int | None  # seconds until the budgets allow another entry, when one is spent


@dataclass(frozen=True, slots=True)
class Poll:
    outcome: str
    interval: int = 0  # the interval now in force (pending, slow_down)
    approval: Approval | None = None  # allowed
    resources: tuple[str, ...] = ()  # allowed: the resources the tokens may be for


class DeviceCodeStore:
    def __init__(self, redis: Redis, keys: Keys, *, ttl: int, interval: int) -> None:
        self._redis = redis
        self._keys = keys
        self.ttl = ttl
        self.interval = interval
        self._create = redis.register_script(_CREATE)
        self._poll = redis.register_script(_POLL)
        self._answer = redis.register_script(_ANSWER)
        self._show = redis.register_script(_SHOW)

    def _device_key(self, device: str) -> str:
        return self._keys("device", device)

    def _user_key(self, user_code: str) -> str:
        return self._keys("device-user", hexdigest(user_code))

    async def issue(self, authorization: DeviceAuthorization) -> Issued:
        """Store a new authorization; its device code and user code (RFC 8628 §3.2)."""
        device_code = new_token()
        device = hexdigest(device_code)
        await self._create(
            keys=[self._device_key(device)],
            args=[
                self.ttl,
                EXPIRED_KEPT,
                self.interval,
                "client_id",
                authorization.client_id,
                "scope",
                " ".join(authorization.scope),
                "resources",
                json.dumps(list(authorization.resources)),
            ],
        )
        for _ in range(_USER_CODE_TRIES):  # a live user code names one authorization only
            user_code = new_user_code()
            if await self._redis.set(self._user_key(user_code), device, nx=True, ex=self.ttl):
                return Issued(device_code, user_code, self.ttl, self.interval)
        raise RuntimeError("no free user code: are billions of device authorizations live?")

    async def poll(
        self, device_code: str, client_id: str, *, resource: str | None = None, default_audience: str = ""
    ) -> Poll:
        """The device's poll (RFC 8628 §3.4-3.5), in one round trip; an approval is handed over once,
        to a poll whose ``resource`` (None: none named) it covers, ``default_audience`` standing for
        none approved (:func:`auth_server.resources.chosen`)."""
        reply = await self._poll(
            keys=[self._device_key(hexdigest(device_code))],
            args=[client_id, SLOW_DOWN_STEP, POLL_LEEWAY_MS, resource or "", default_audience],
        )
        outcome, interval = reply[0].decode(), int(reply[1])
        if outcome != ALLOWED:
            return Poll(outcome, interval)
        subject, auth_time, amr, scope, ends, resources = (value.decode() for value in reply[2:8])
        return Poll(
            outcome,
            approval=Approval(
                subject=subject,
                auth_time=int(auth_time),
                amr=tuple(amr.split()),
                scope=tuple(scope.split()),
                grant_ends_at=int(ends) if ends else None,
            ),
            resources=tuple(json.loads(resources)),
        )

    async def enter(self, user_code: str) -> Entered | None:
        """The pending authorization ``user_code`` (in its normal form) names; the code is used up
        whatever is found, so each works once."""
        device_raw = await self._redis.getdel(self._user_key(user_code))
        if device_raw is None:
            return None
        device = device_raw.decode() if isinstance(device_raw, bytes) else device_raw
        shown = await self._show(keys=[self._device_key(device)], args=[])
        if not shown:
            return None
        client_id, scope, resources = (value.decode() for value in shown)
        return Entered(
            device, DeviceAuthorization(client_id, tuple(scope.split()), tuple(json.loads(resources)))
        )

    async def allow(self, device: str, approval: Approval) -> bool:
        """Record the user's approval; False if the authorization is no longer pending (expired)."""
        answered = await self._answer(
            keys=[self._device_key(device)],
            args=[
                "allowed",
                "subject",
                approval.subject,
                "auth_time",
                approval.auth_time,
                "amr",
                " ".join(approval.amr),
                "granted",
                " ".join(approval.scope),
                "ends",
                "" if approval.grant_ends_at is None else approval.grant_ends_at,
            ],
        )
        return bool(answered)

    async def deny(self, device: str) -> bool:
        """Record that the user denied the device; False if it was no longer pending."""
        return bool(await self._answer(keys=[self._device_key(device)], args=["denied"]))

    async def spend_guess(self, address: str, *, per_address: int, in_all: int) -> Guess:
        """Count one user code entered from ``address`` (its bucket, :func:`shared.http.address_bucket`)
        against both budgets of wrong codes, in one round trip; a right code is handed back with
        :meth:`refund_guess`."""
        now = time.time()
        window = int(now // GUESS_WINDOW)
        keys = (
            self._keys("device-guesses-ip", f"{hexdigest(address)}:{window}"),
            self._keys("device-guesses", f"all:{window}"),
        )
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, GUESS_WINDOW * 2)
            counts = await pipe.execute()
        spent = int(counts[0]) > per_address or int(counts[2]) > in_all
        return Guess(keys, max(1, int((window + 1) * GUESS_WINDOW - now) + 1) if spent else None)

    async def refund_guess(self, guess: Guess) -> None:
        """Hand back what a right user code spent (in the window it was counted in)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in guess.keys:
                pipe.decr(key)
            await pipe.execute()
