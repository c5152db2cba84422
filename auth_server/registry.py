"""The one place the authorization server's parts are wired together (after Hydra's registry)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from redis.asyncio import Redis

from auth_server.authorization.request import AuthorizationRequest
from auth_server.client_keys import ClientKeys
from auth_server.crypto import KeyEncryption
from auth_server.oidc.subjects import Subjects
from auth_server.refresh_rotation import RotationPolicy
from auth_server.settings import Settings
from auth_server.signing import KeyRing
from auth_server.stores.audit import AuditLog
from auth_server.stores.authorization_requests import AuthorizationRequestStore
from auth_server.stores.clients import ClientStore
from auth_server.stores.codes import CodeStore
from auth_server.stores.consents import ConsentStore
from auth_server.stores.instance_secrets import InstanceSecrets
from auth_server.stores.keys import KeyStore
from auth_server.stores.login_attempts import LoginAttemptStore
from auth_server.stores.logout_deliveries import LogoutDeliveryStore
from auth_server.stores.rate_limits import RateLimitStore
from auth_server.stores.refresh_tokens import RefreshTokenStore
from auth_server.stores.registration_tokens import RegistrationTokenStore
from auth_server.stores.revoked_tokens import RevokedTokenStore
from auth_server.stores.sessions import SessionStore
from auth_server.stores.token_counts import TokenCounts
from auth_server.stores.used_jtis import UsedJtiStore
from auth_server.stores.users import UserStore
from auth_server.tokens import AccessTokenIssuer
from shared import db
from shared import redis as shared_redis
from shared.redis import Keys

# Failures of the backing services wired here that mean "not reachable now": the error middleware
# and the authorization endpoint answer them with temporarily_unavailable (503), not server_error.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = tuple(
    dict.fromkeys(db.UNAVAILABLE_ERRORS + shared_redis.UNAVAILABLE_ERRORS)
)


@dataclass(frozen=True, slots=True)
class Registry:
    settings: Settings
    clients: ClientStore
    users: UserStore
    consents: ConsentStore
    refresh_tokens: RefreshTokenStore
    keys: KeyStore
    codes: CodeStore
    sessions: SessionStore
    authorization_requests: AuthorizationRequestStore[AuthorizationRequest]
    revoked_tokens: RevokedTokenStore
    login_attempts: LoginAttemptStore
    logout_deliveries: LogoutDeliveryStore
    rate_limits: RateLimitStore
    audit: AuditLog
    assertion_jtis: UsedJtiStore
    client_keys: ClientKeys
    keyring: KeyRing
    kek: KeyEncryption
    access_tokens: AccessTokenIssuer
    subjects: Subjects
    token_counts: TokenCounts
    # initial and registration access tokens of dynamic registration (RFC 7591/7592)
    registration_tokens: RegistrationTokenStore

    @classmethod
    def build(cls, settings: Settings, pool: asyncpg.Pool, redis: Redis) -> Registry:
        keys = Keys(settings.redis_prefix)
        audit = AuditLog(pool)
        kek = KeyEncryption(settings.key_encryption_key, settings.key_encryption_keys_previous)
        # a retired key stays published as long as a token it signed may still be checked
        keyring = KeyRing(kek, max(settings.access_token_ttl, settings.id_token_ttl))
        return cls(
            settings=settings,
            clients=ClientStore(pool, redis, f"{settings.redis_prefix}client-changed", audit),
            users=UserStore(pool),
            consents=ConsentStore(pool),
            refresh_tokens=RefreshTokenStore(
                pool,
                ttl=settings.refresh_token_ttl,
                policy=RotationPolicy(grace_period=timedelta(seconds=settings.refresh_grace_period)),
                family_lifetime=settings.refresh_family_lifetime,
            ),
            keys=KeyStore(pool),
            codes=CodeStore(
                redis,
                keys,
                ttl=settings.code_ttl,
                tombstone_ttl=settings.code_ttl + settings.access_token_ttl,
            ),
            sessions=SessionStore(redis, keys, ttl=settings.session_ttl),
            authorization_requests=AuthorizationRequestStore(
                redis, keys, ttl=settings.code_ttl, kind=AuthorizationRequest
            ),
            revoked_tokens=RevokedTokenStore(redis, keys),
            login_attempts=LoginAttemptStore(
                redis,
                keys,
                per_username=settings.login_max_failures,
                per_ip=settings.login_max_failures_per_ip,
                window=settings.login_lockout_window,
                known_ttl=settings.login_known_address_ttl,
            ),
            logout_deliveries=LogoutDeliveryStore(redis, keys),
            assertion_jtis=UsedJtiStore(redis, keys),
            rate_limits=RateLimitStore(redis, keys, sync_interval=settings.rate_sync_ms / 1000),
            audit=audit,
            client_keys=ClientKeys(allow_private=settings.development),
            keyring=keyring,
            kek=kek,
            access_tokens=AccessTokenIssuer(
                issuer=settings.issuer,
                audience=settings.access_token_audience,
                ttl=settings.access_token_ttl,
                keyring=keyring,
                alg=settings.signing_alg,
            ),
            subjects=Subjects(InstanceSecrets(pool)),
            token_counts=TokenCounts(redis, keys),
            registration_tokens=RegistrationTokenStore(pool),
        )
