"""The one place the authorization server's parts are wired together (after Hydra's registry)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from redis.asyncio import Redis

from auth_server.authorization.request import AuthorizationRequest
from auth_server.client_keys import ClientKeys
from auth_server.crypto import KeyEncryption
from auth_server.dpop import DPoP
from auth_server.oidc.subjects import Subjects
from auth_server.refresh_rotation import RotationPolicy
from auth_server.settings import Settings
from auth_server.signing import KeyRing
from auth_server.stores.account_tokens import AccountTokenStore
from auth_server.stores.audit import AuditLog
from auth_server.stores.authorization_requests import AuthorizationRequestStore
from auth_server.stores.clients import ClientStore
from auth_server.stores.codes import CodeStore
from auth_server.stores.consents import ConsentStore
from auth_server.stores.device_codes import DeviceCodeStore, DeviceRequest
from auth_server.stores.instance_secrets import InstanceSecrets
from auth_server.stores.keys import KeyStore
from auth_server.stores.login_attempts import LoginAttemptStore
from auth_server.stores.logout_deliveries import LogoutDeliveryStore
from auth_server.stores.outbox import OutboxStore
from auth_server.stores.pushed_requests import PushedRequestStore
from auth_server.stores.rate_limits import RateLimitStore
from auth_server.stores.refresh_tokens import RefreshTokenStore
from auth_server.stores.registration_tokens import RegistrationTokenStore
from auth_server.stores.resources import ResourceStore
from auth_server.stores.revoked_tokens import RevokedTokenStore
from auth_server.stores.sessions import SessionStore
from auth_server.stores.sign_in_steps import SignInSteps
from auth_server.stores.token_counts import TokenCounts
from auth_server.stores.two_step import TwoStepStore
from auth_server.stores.used_jtis import UsedJtiStore
from auth_server.stores.users import UserStore
from auth_server.tokens import AccessTokenIssuer
from auth_server.two_step.passkeys import CHALLENGE_TTL
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
    # the APIs tokens are issued for (RFC 8707, RFC 8693)
    resources: ResourceStore
    # device authorizations (RFC 8628), and those waiting for a user's answer on the consent page
    device_codes: DeviceCodeStore
    device_requests: AuthorizationRequestStore[DeviceRequest]
    # DPoP proofs (RFC 9449): their jti once in Redis, and the server's nonces
    dpop: DPoP
    # pushed authorization requests (RFC 9126), each until its request_uri is used or expires
    pushed_requests: PushedRequestStore
    # accounts people make themselves (issue 18): the mail queue, and the tokens of the links mailed
    outbox: OutboxStore
    account_tokens: AccountTokenStore
    # two-step sign-in (issue 18): authenticator apps, recovery codes, passkeys; and the sign-ins
    # waiting for their second step, and WebAuthn challenges, in Redis
    two_step: TwoStepStore
    sign_in_steps: SignInSteps

    @classmethod
    def build(cls, settings: Settings, pool: asyncpg.Pool, redis: Redis) -> Registry:
        keys = Keys(settings.redis_prefix)
        audit = AuditLog(pool)
        kek = KeyEncryption(settings.key_encryption_key, settings.key_encryption_keys_previous)
        # a retired key stays published as long as a token it signed may still be checked
        keyring = KeyRing(kek, max(settings.access_token_ttl, settings.id_token_ttl))
        return cls(
            settings=settings,
            clients=ClientStore(
                pool,
                redis,
                f"{settings.redis_prefix}client-changed",
                audit,
                url_ids=settings.client_id_metadata_documents,  # client ID metadata documents' URLs
            ),
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
            resources=ResourceStore(pool),
            device_codes=DeviceCodeStore(
                redis, keys, ttl=settings.device_code_ttl, interval=settings.device_poll_interval
            ),
            # keys of their own (a "device:" namespace): an id is never taken as the other kind
            device_requests=AuthorizationRequestStore(
                redis,
                Keys(f"{settings.redis_prefix}device:"),
                ttl=settings.device_code_ttl,
                kind=DeviceRequest,
            ),
            dpop=DPoP(settings, UsedJtiStore(redis, keys), InstanceSecrets(pool)),
            pushed_requests=PushedRequestStore(redis, keys, ttl=settings.par_ttl),
            outbox=OutboxStore(redis, keys),
            account_tokens=AccountTokenStore(redis, keys),
            two_step=TwoStepStore(pool, redis, keys, kek),
            sign_in_steps=SignInSteps(redis, keys, challenge_ttl=CHALLENGE_TTL),
        )
