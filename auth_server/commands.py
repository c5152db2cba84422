"""The authorization server's part of the ``tessera`` command (see :mod:`shared.cli`).

``tessera auth-server``, ``client``, ``user``, ``keys`` and ``purge``, and the auth schema's part of
``tessera migrate``; declared as :data:`COMMANDS`, which ``pyproject.toml`` names in the
``tessera.commands`` entry points.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import json
import logging
import re
import sys
import unicodedata
import uuid
import zoneinfo
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from auth_server import flow, keys, platform, profiles, resources, signing, usernames
from auth_server.clients import AUTH_METHODS, Client
from auth_server.crypto import hash_password
from auth_server.grants import GRANT_TYPES
from auth_server.registration import (
    LOOPBACK_HOSTS,
    ClientMetadata,
    RegistrationError,
    canonical_response_types,
    metadata_from_document,
    register,
    validate,
)
from auth_server.registry import Registry
from auth_server.schema import MIGRATIONS, SCHEMA
from auth_server.settings import Settings
from auth_server.stores.users import (
    PROFILE_FIELDS,
    Profile,
    SameCanonicalName,
    User,
    UsernameTaken,
    UserStore,
)
from shared import db, embedded, serving
from shared.cli import CommandError, Commands, Migrated, Subcommands
from shared.redis import create_redis

log = logging.getLogger("tessera.cli")


def auth_settings() -> Settings:
    return with_services(Settings.from_env())


def with_services(settings: Settings) -> Settings:
    """Fill in the embedded development servers where no URL is configured (localhost issuers only)."""
    database_url, redis_url = settings.database_url, settings.redis_url
    if database_url is None or redis_url is None:
        missing = embedded.available()
        if missing is not None:
            raise CommandError(f"TESSERA_DATABASE_URL / TESSERA_REDIS_URL are not set and {missing}")
    if database_url is None:
        database_url = embedded.postgres_url(settings.dev_data_dir)
        log.warning("TESSERA_DATABASE_URL not set: using the embedded development PostgreSQL")
    if redis_url is None:
        redis_url = embedded.redis_url(settings.dev_data_dir)
        log.warning("TESSERA_REDIS_URL not set: using the embedded development Redis")
    return dataclasses.replace(settings, database_url=database_url, redis_url=redis_url)


@contextlib.asynccontextmanager
async def open_registry(settings: Settings) -> AsyncIterator[Registry]:
    assert settings.database_url is not None and settings.redis_url is not None
    pool = await db.create_pool(settings.database_url, SCHEMA, min_size=1, max_size=2)
    redis = create_redis(settings.redis_url)
    try:
        yield Registry.build(settings, pool, redis)
    finally:
        await redis.aclose()
        await pool.close()


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))  # 小美, not "\u5c0f\u7f8e"


CANONICAL_USERNAME_INDEX = "users_username_canonical"  # built by migration 005


@dataclasses.dataclass(frozen=True, slots=True)
class AuthMigration:
    applied: list[str]
    recanonicalized: int  # usernames whose stored canonical form was corrected


async def migrate_auth(database_url: str) -> AuthMigration:
    """The auth schema's migrations, then the exact canonical form of every username.

    The second step runs every time (``tessera migrate``, ``tessera dev``), not only when migration
    005 is applied: that migration's SQL only approximates the form, and a run stopped by usernames
    that became equal must finish once they are renamed. Such usernames raise :class:`CommandError`
    naming them (every other username is corrected first), as do usernames that keep migration
    005's unique index from being built (then nothing of 005 is applied).
    """
    try:
        applied = await db.migrate(database_url, SCHEMA, MIGRATIONS)
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != CANONICAL_USERNAME_INDEX:
            raise
        async with _user_store(database_url) as users:
            collisions = await users.collisions_under_backfill()
        if not collisions:
            raise
        raise CommandError(
            _same_names_report(collisions, "Nothing of migration 005, or of those after it, was applied.")
        ) from None
    async with _user_store(database_url) as users:
        result = await users.recanonicalize()
    if result.collisions:
        done = (
            f"The migrations are applied and {result.changed} other username(s) corrected; until renamed,"
            " the users to rename cannot sign in (their name leads to the user who keeps it)."
        )
        raise CommandError(_same_names_report(result.collisions, done))
    return AuthMigration(applied, result.changed)


@contextlib.asynccontextmanager
async def _user_store(database_url: str) -> AsyncIterator[UserStore]:
    pool = await db.create_pool(database_url, SCHEMA, min_size=1, max_size=1)
    try:
        yield UserStore(pool)
    finally:
        await pool.close()


def _same_names_report(collisions: tuple[SameCanonicalName, ...], outcome: str) -> str:
    """What an operator needs to settle usernames that compare equal (NFKC + case folding)."""
    lines = [
        "these usernames are one name as Tessera compares names (NFKC, case-folded), which one user can have:"
    ]
    for collision in collisions:
        others = ", ".join(f"{u.username!r} (user {u.user_id})" for u in collision.rename)
        lines.append(
            f"  {collision.keeps.username!r} (user {collision.keeps.user_id}) keeps {collision.canonical!r};"
            f" rename {others}"
        )
    lines.append(outcome)
    lines.append("Give each user to rename a name of your choosing, for example in psql:")
    lines.extend(
        # printed for the operator, never run here; only the schema constant and a UUID are filled in
        f"  UPDATE {SCHEMA}.users SET username = '<new username>' WHERE user_id = '{user.user_id}';"  # noqa: S608
        for collision in collisions
        for user in collision.rename
    )
    lines.append("then run `tessera migrate` again.")
    return "\n".join(lines)


async def migrate_schema() -> Migrated:
    """``tessera migrate``'s part for the auth schema."""
    settings = auth_settings()
    assert settings.database_url is not None
    migrated = await migrate_auth(settings.database_url)
    notes: tuple[str, ...] = ()
    if migrated.recanonicalized:
        notes = (f"corrected the canonical form of {migrated.recanonicalized} username(s)",)
    return Migrated(migrated.applied, notes)


def _jwks_file(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read a JWKS from {path}: {error}") from None
    if not isinstance(value, dict):
        raise CommandError(f"{path} must hold a JSON object with a keys array")
    return value


def _metadata_document(path: str) -> dict[str, Any]:
    """The JSON object in the file at ``path`` (``-``: standard input)."""
    source = "standard input" if path == "-" else path
    try:
        if path == "-":
            value = json.load(sys.stdin)
        else:
            with open(path, encoding="utf-8") as file:
                value = json.load(file)
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read client metadata from {source}: {error}") from None
    if not isinstance(value, dict):
        raise CommandError(f"{source} must hold a JSON object of RFC 7591 client metadata")
    return value


def _client_metadata(args: argparse.Namespace) -> ClientMetadata:
    """The registration ``tessera client create`` asks for: the ``--metadata-file`` document (RFC 7591
    names, RFC 7591 defaults), or the flags' defaults without one; a flag given overrides its field."""
    if args.metadata_file is None:
        missing = [flag for flag, value in (("--name", args.name), ("--scope", args.scope)) if value is None]
        if missing:
            raise CommandError(f"{' and '.join(missing)} required (or give --metadata-file)")
        base = ClientMetadata(
            client_name="", redirect_uris=(), grant_types=("authorization_code", "refresh_token"), scope=()
        )
        method_given = False
    else:
        document = _metadata_document(args.metadata_file)
        try:
            base = metadata_from_document(document)
        except RegistrationError as error:
            source = "standard input" if args.metadata_file == "-" else args.metadata_file
            raise CommandError(f"{source}: {error}") from None
        method_given = document.get("token_endpoint_auth_method") is not None
    metadata = dataclasses.replace(base, **_flag_overrides(args, method_given=method_given))
    if not metadata.scope:
        raise CommandError('a scope is required: "scope" in the metadata file, or --scope')
    if args.public and metadata.token_endpoint_auth_method != "none":  # noqa: S105 - the method named none
        raise CommandError("a public client authenticates with 'none'")
    return metadata


def _flag_overrides(args: argparse.Namespace, *, method_given: bool) -> dict[str, Any]:
    """The fields ``tessera client create``'s flags set, by RFC 7591 name (only the flags given).

    Without an auth method given (flag or document), ``--public`` means ``none`` and a key flag means
    ``private_key_jwt``."""
    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("client_name", args.name),
            ("redirect_uris", args.redirect_uri),
            ("grant_types", args.grant_type),
            ("scope", None if args.scope is None else args.scope.split()),
            ("jwks", _jwks_file(args.jwks_file)),
            ("jwks_uri", args.jwks_uri),
            ("require_pkce", False if args.pkce_optional else None),
            ("allow_introspection", True if args.allow_introspection else None),
            ("first_party", True if args.first_party else None),
            ("require_pushed_authorization_requests", True if args.require_par else None),
            ("dpop_bound_access_tokens", True if args.dpop_bound_access_tokens else None),
            ("tessera_profile", args.profile),
        )
        if value is not None
    }
    keyed = args.jwks_file is not None or args.jwks_uri is not None
    default = "none" if args.public else "private_key_jwt" if keyed and not method_given else None
    method = args.auth_method or default
    if method is not None:
        overrides["token_endpoint_auth_method"] = method
    return overrides


async def cmd_client_create(args: argparse.Namespace) -> None:
    settings = auth_settings()
    metadata = _client_metadata(args)
    async with open_registry(settings) as registry:
        try:
            client, secret, notices = await register(registry, metadata)
        except RegistrationError as error:
            raise CommandError(str(error)) from None
    for notice in notices:
        print(f"warning: {notice}", file=sys.stderr)
    registration = client.registration(secret)
    if args.json:
        _print(registration)
        return
    print(f"client_id:     {client.client_id}")
    if secret is not None:
        print(f"client_secret: {secret}")
        print("Store the secret now: Tessera keeps only its hash and cannot show it again.", file=sys.stderr)


async def cmd_client_list(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        _print([c.registration() for c in await registry.clients.list()])


async def cmd_client_show(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        client = await registry.clients.get(args.client_id)
    if client is None:
        raise CommandError(f"no client {args.client_id!r}")
    shown = client.registration()
    if client.sector_identifier is not None:
        shown["sector_identifier"] = client.sector_identifier  # the host pairwise subjects are computed for
    _print(shown)


async def cmd_client_delete(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        if not await registry.clients.delete(args.client_id):
            raise CommandError(f"no client {args.client_id!r}")
    print(f"deleted client {args.client_id}")


async def cmd_client_rotate_secret(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        secret = await registry.clients.rotate_secret(args.client_id)
    if secret is None:
        raise CommandError(f"no confidential client {args.client_id!r}")
    _print({"client_id": args.client_id, "client_secret": secret})


def _yes(value: str | None, yes: str = "yes") -> bool | None:
    """A ``yes|no`` (or ``required|optional``) option as a bool; ``None`` when not given."""
    return None if value is None else value == yes


async def cmd_client_update(args: argparse.Namespace) -> None:
    settings = auth_settings()
    require_pkce = _yes(args.pkce, "required")
    first_party = _yes(args.first_party)
    changes = {
        name: value
        for name, value in (
            ("require_pkce", require_pkce),
            ("require_pushed_authorization_requests", _yes(args.require_par)),
            ("dpop_bound_access_tokens", _yes(args.dpop_bound_access_tokens)),
        )
        if value is not None
    }
    async with open_registry(settings) as registry:
        client = await registry.clients.load(args.client_id)
        if client is None:
            raise CommandError(f"no client {args.client_id!r}")
        if require_pkce is False and client.is_public:
            raise CommandError("a public client must use PKCE (RFC 9700 §2.1.1)")
        profile = client.tessera_profile if args.profile is None else _profile_named(args.profile)
        updated: Client | None = client
        if profile != client.tessera_profile:
            if client.from_metadata_document:  # its document could break the profile's rules next fetch
                raise CommandError("a client its metadata document describes cannot be held to a profile")
            implied = {} if profile is None else _put_under(settings, client, profile, changes)
            updated = await registry.clients.set_profile(args.client_id, profile, implied)
        elif profile is not None:
            _keeps_profile(profile, changes)
        if changes or first_party is not None:
            updated = await registry.clients.update(
                args.client_id,
                require_pkce=require_pkce,
                first_party=first_party,
                require_pushed_authorization_requests=changes.get("require_pushed_authorization_requests"),
                dpop_bound_access_tokens=changes.get("dpop_bound_access_tokens"),
            )
    if updated is None:
        raise CommandError(f"no client {args.client_id!r}")
    _print(updated.registration())


def _profile_named(name: str) -> str | None:
    return None if name == "none" else name


def _keeps_profile(profile: str, changes: dict[str, bool]) -> None:
    """Refuse turning off what the client's security profile requires (``--profile none`` first)."""
    relaxed = [name for name, value in changes.items() if value is False]
    if relaxed:
        title = profiles.PROFILES[profile].title
        raise CommandError(
            f"the {title} profile requires {', '.join(relaxed)}; take the client out of it first"
            " (--profile none)"
        )


def _put_under(settings: Settings, client: Client, profile: str, changes: dict[str, bool]) -> dict[str, Any]:
    """What putting ``client`` under ``profile`` sets besides the profile (by
    ``stores.clients.PROFILE_IMPLIED`` name), with the operator's ``changes`` made: the client as
    it is registered must pass every rule a registration under that profile meets
    (:func:`auth_server.registration.validate`), else :class:`CommandError` names the first it breaks."""
    _keeps_profile(profile, changes)
    current = metadata_from_document(client.registration(), ignore_unknown=True)
    metadata = profiles.applied(
        dataclasses.replace(
            current,
            # the response types it registered, not those its grant types give it by default
            response_types=client.registered_response_types,
            registered_via=client.registered_via,
            tessera_profile=profile,
            # PKCE required in the same command (the rest the profile turns on itself)
            require_pkce=changes.get("require_pkce", current.require_pkce),
        )
    )
    try:
        validate(settings, metadata)
    except RegistrationError as error:
        raise CommandError(f"the client cannot be put under the {profile} profile: {error}") from None
    return {
        "require_pushed_authorization_requests": metadata.require_pushed_authorization_requests,
        "dpop_bound_access_tokens": metadata.dpop_bound_access_tokens,
        "registered_response_types": None
        if metadata.response_types is None
        else list(canonical_response_types(metadata.response_types)),
        "id_token_signed_response_alg": metadata.id_token_signed_response_alg,
    }


async def cmd_client_review(args: argparse.Namespace) -> None:
    """``tessera client approve|reject|suspend|reinstate ID``: a review decision, through
    :mod:`auth_server.platform` (audited, seen by every replica at once)."""
    settings = auth_settings()
    reason = str(getattr(args, "reason", None) or "")
    if args.decision in ("reject", "suspend") and not reason.strip():
        raise CommandError("--reason must not be empty: the developer reads it")
    async with open_registry(settings) as registry:
        try:
            if args.decision == "approve":
                client = await platform.approve(registry, args.client_id, reviewer="cli")
            elif args.decision == "reject":
                client = await platform.reject(registry, args.client_id, reason, reviewer="cli")
            elif args.decision == "suspend":
                client = await platform.suspend(registry, args.client_id, reason, reviewer="cli")
            else:
                client = await platform.reinstate(registry, args.client_id, reviewer="cli")
        except platform.ReviewError as error:
            raise CommandError(str(error)) from None
    _print({"client_id": client.client_id, "status": client.status, "review_note": client.review_note})


def _new_password(args: argparse.Namespace, prompt: str) -> str:
    """A password from stdin (``--password-stdin``) or typed twice; at least 8 characters."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"{prompt}: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("passwords differ")
    if len(password) < 8:
        raise CommandError("password must be at least 8 characters")
    return password


# A user's profile as the CLI sets it (OpenID Connect Core §5.1): the text claims, each checked.
PROFILE_TEXT = ("email", "name", "nickname", "picture", "locale", "zoneinfo")
MAX_EMAIL = 254  # RFC 5321 §4.5.3.1.3, a path's limit
MAX_NAME = 200
# the picture travels inside ID tokens and userinfo answers: a small avatar, not a photo
MAX_PICTURE = 8192
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")  # BCP 47, as Core §5.1 asks: zh-CN, en
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}")


def _check_email(email: str) -> None:
    """Core §5.1 ``email``: an RFC 5322 addr-spec, checked only for its shape (one @, no spaces)."""
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email):
        raise CommandError(f"--email {email!r} is not an email address")


def _check_display_name(flag: str, value: str) -> None:
    """Core §5.1 ``name``, ``nickname``: printable text of at most :data:`MAX_NAME` characters."""
    if not value.strip() or len(value) > MAX_NAME:
        raise CommandError(f"{flag} must be 1 to {MAX_NAME} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise CommandError(f"{flag} must not contain control or format characters")


def _check_picture(picture: str) -> None:
    """Core §5.1 ``picture``: an https URL (http on a loopback host) or a base64 ``data:image/``
    URL, at most :data:`MAX_PICTURE` characters; never ``javascript:`` or another scheme a page
    would run."""
    if len(picture) > MAX_PICTURE:
        raise CommandError(f"--picture is over {MAX_PICTURE} characters: link to the image instead")
    if _DATA_IMAGE.fullmatch(picture):
        return
    parts = urlsplit(picture)
    web = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
    if not web or not parts.hostname or any(c.isspace() for c in picture):
        raise CommandError("--picture must be an https URL or a data:image/...;base64, URL")


def _check_locale(locale: str) -> None:
    """Core §5.1 ``locale``: a BCP 47 language tag, such as ``zh-CN``."""
    if not _LOCALE.fullmatch(locale):
        raise CommandError(f"--locale {locale!r} is not a BCP 47 language tag, such as zh-CN or en")


def _check_zoneinfo(zone: str) -> None:
    """Core §5.1 ``zoneinfo``: a time zone of the IANA database, such as ``Asia/Shanghai``."""
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CommandError(f"--zoneinfo {zone!r} is not an IANA time zone, such as Asia/Shanghai") from None


_PROFILE_CHECKS = {
    "email": _check_email,
    "name": lambda value: _check_display_name("--name", value),
    "nickname": lambda value: _check_display_name("--nickname", value),
    "picture": _check_picture,
    "locale": _check_locale,
    "zoneinfo": _check_zoneinfo,
}


def _profile_changes(args: argparse.Namespace, *, clearing: bool) -> dict[str, Any]:
    """The profile fields the flags set, each checked; with ``clearing`` (``user update``), an empty
    value clears a field. ``email_verified``: ``--email-verified`` (create) or ``yes``/``no`` (update);
    a new email without it is unverified (:meth:`UserStore.set_profile`)."""
    changes: dict[str, Any] = {}
    for field in PROFILE_TEXT:
        value = getattr(args, field)
        if value is None:
            continue
        if value == "" and clearing:
            changes[field] = None
            continue
        _PROFILE_CHECKS[field](value)
        changes[field] = value
    verified = args.email_verified
    if isinstance(verified, str):
        changes["email_verified"] = verified == "yes"
    elif verified:
        changes["email_verified"] = True
    if changes.get("email_verified") and "email" in changes and changes["email"] is None:
        raise CommandError("--email-verified needs an email address")
    return changes


def _profile(profile: Profile) -> dict[str, Any]:
    """A user's profile as the CLI prints it, under the OpenID Connect claim names (Core §5.1)."""
    return {**{field: getattr(profile, field) for field in PROFILE_FIELDS}, "updated_at": profile.updated_at}


async def cmd_user_create(args: argparse.Namespace) -> None:
    settings = auth_settings()
    problem = usernames.problem(args.username)
    if problem is not None:
        raise CommandError(problem)
    changes = _profile_changes(args, clearing=False)
    if args.email_verified and "email" not in changes:
        raise CommandError("--email-verified needs --email")
    password = _new_password(args, "Password")
    async with open_registry(settings) as registry:
        try:
            user = await registry.users.create(
                args.username, await asyncio.to_thread(hash_password, password)
            )
        except UsernameTaken as error:
            raise CommandError(str(error)) from None
        profile = await registry.users.set_profile(user.user_id, changes)
        if args.admin:
            await _set_admin(registry, user, True)
    assert profile is not None
    _print({"user_id": user.subject, "username": user.username, **_profile(profile), "admin": args.admin})


async def _set_admin(registry: Registry, user: User, admin: bool) -> None:
    """Give or take the admin role (reviews applications at /admin, uses the admin API); audited."""
    await registry.users.set_admin(user.user_id, admin)
    await registry.audit.record("user.admin_changed", subject=user.subject, admin=admin)


async def _find_user(registry: Registry, who: str) -> User:
    """A user by id, or by username (compared as :mod:`auth_server.usernames` compares names)."""
    try:
        user = await registry.users.get(uuid.UUID(who))
    except ValueError:
        user = await registry.users.by_username(who)
    if user is None:
        raise CommandError(f"no user {who!r}")
    return user


async def _revoke_tokens(registry: Registry, subject: str, reason: str, client_id: str | None = None) -> int:
    """Revoke a user's refresh-token families (of one client, if given) and deny-list their live
    access tokens; how many families."""
    return await platform.revoke_grants(registry, reason, subject=subject, client_id=client_id)


async def cmd_user_list(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        users = await registry.users.list()
    _print([{"user_id": str(u.user_id), "username": u.username, "created_at": u.created_at} for u in users])


async def cmd_user_show(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        user = await _find_user(registry, args.user)
        summary = await registry.users.summary(user.user_id)
        profile = await registry.users.profile(user.user_id)
        consents = await registry.consents.list(user_id=user.user_id)
    assert summary is not None and profile is not None
    _print(
        {
            "user_id": user.subject,
            "username": user.username,
            "created_at": summary.created_at,
            **_profile(profile),
            "consents": [
                {"client_id": c.client_id, "scope": list(c.scope), "granted_at": c.granted_at}
                for c in consents
            ],
        }
    )


async def cmd_user_update(args: argparse.Namespace) -> None:
    settings = auth_settings()
    changes = _profile_changes(args, clearing=True)
    nothing = args.username is None and not args.password and not args.password_stdin and not changes
    if nothing and args.admin is None:
        raise CommandError(
            "nothing to change: give --username, --password, --password-stdin, --admin or a profile option"
            " (--email, --email-verified, --name, --nickname, --picture, --locale, --zoneinfo)"
        )
    if args.username is not None and (problem := usernames.problem(args.username)) is not None:
        raise CommandError(problem)
    password_hash = None
    if args.password or args.password_stdin:
        password_hash = await asyncio.to_thread(hash_password, _new_password(args, "New password"))
    async with open_registry(settings) as registry:
        user = await _find_user(registry, args.user)
        if changes.get("email_verified") and "email" not in changes:
            current = await registry.users.profile(user.user_id)
            if current is None or current.email is None:
                raise CommandError(f"user {user.username!r} has no email address to mark verified")
        try:
            updated = await registry.users.update(
                user.user_id, username=args.username, password_hash=password_hash
            )
        except UsernameTaken as error:
            raise CommandError(str(error)) from None
        profile = await registry.users.set_profile(user.user_id, changes) if changes else None
        if updated is None or (changes and profile is None):
            raise CommandError(f"no user {args.user!r}")
        profile = profile or await registry.users.profile(user.user_id)
        assert profile is not None
        if args.admin is not None:
            await _set_admin(registry, user, args.admin == "yes")
        changed = [
            name for name, value in (("username", args.username), ("password", password_hash)) if value
        ] + sorted(changes)
        families = 0
        if password_hash is not None:
            # a new password ends every grant made under the old one
            families = await _revoke_tokens(registry, user.subject, "password changed")
        await registry.audit.record(
            "user.updated", subject=user.subject, changed=changed, refresh_token_families_revoked=families
        )
    _print(
        {
            "user_id": updated.subject,
            "username": updated.username,
            **_profile(profile),
            "refresh_token_families_revoked": families,
            **({} if args.admin is None else {"admin": args.admin == "yes"}),
        }
    )


async def cmd_user_delete(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        user = await _find_user(registry, args.user)
        families = await _revoke_tokens(registry, user.subject, "user deleted")
        if not await registry.users.delete(user.user_id):
            raise CommandError(f"no user {args.user!r}")
        await registry.audit.record(
            "user.deleted", subject=user.subject, refresh_token_families_revoked=families
        )
    _print(
        {"deleted_user": user.subject, "username": user.username, "refresh_token_families_revoked": families}
    )


async def cmd_consent_list(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        user_id = None if args.user is None else (await _find_user(registry, args.user)).user_id
        consents = await registry.consents.list(user_id=user_id, client_id=args.client)
    _print([{**dataclasses.asdict(c), "user_id": str(c.user_id), "scope": list(c.scope)} for c in consents])


async def cmd_consent_revoke(args: argparse.Namespace) -> None:
    """Forget a user's consent to a client and end that client's grants from the user."""
    settings = auth_settings()
    async with open_registry(settings) as registry:
        user = await _find_user(registry, args.user)
        forgotten = await registry.consents.revoke(user.user_id, args.client)
        families = await _revoke_tokens(registry, user.subject, "consent revoked", client_id=args.client)
        if not forgotten and not families:
            raise CommandError(
                f"user {user.username!r} has no consent to, or tokens of, client {args.client!r}"
            )
        await registry.audit.record(
            "consent.revoked",
            client_id=args.client,
            subject=user.subject,
            refresh_token_families_revoked=families,
        )
    _print(
        {
            "user_id": user.subject,
            "client_id": args.client,
            "consent_revoked": forgotten,
            "refresh_token_families_revoked": families,
        }
    )


async def cmd_flow(args: argparse.Namespace) -> None:
    issuer = args.issuer or Settings.from_env().issuer
    request = flow.FlowRequest(
        issuer=issuer.rstrip("/"),
        client_id=args.client_id,
        client_secret=args.client_secret,
        scope=args.scope,
        port=args.port,
        open_browser=not args.no_browser,
        timeout=args.timeout,
    )
    tokens = await flow.perform(request)
    print(json.dumps(tokens, indent=2, ensure_ascii=False))


async def cmd_keys_rotate(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        record = await keys.rotate(registry, prepublication=args.prepublication, alg=args.alg)
    _print({"kid": record.kid, "alg": record.alg, "activates_at": record.activates_at.isoformat()})


async def cmd_keys_list(args: argparse.Namespace) -> None:
    """Each key's state, and the id of the key-encryption key that wraps it (null: unrecorded)."""
    settings = auth_settings()
    async with open_registry(settings) as registry:
        records = await registry.keys.all()
        try:
            registry.keyring.load(records)
        except signing.SigningKeyUnavailable as error:
            raise CommandError(str(error)) from None
        statuses = registry.keyring.statuses(datetime.now(UTC))
    kek_ids = {r.kid: r.kek_id for r in records}
    _print([{**dataclasses.asdict(s), "kek_id": kek_ids[s.kid]} for s in statuses])


async def cmd_keys_rewrap(args: argparse.Namespace) -> None:
    """Re-encrypt every private signing key under the current key-encryption key."""
    settings = auth_settings()
    async with open_registry(settings) as registry:
        try:
            report = await keys.rewrap(registry)
        except signing.SigningKeyUnavailable as error:
            raise CommandError(f"{error}. Nothing was changed.") from None
    _print(dataclasses.asdict(report))
    print(
        f"rewrapped {len(report.rewrapped)} signing key(s) under key-encryption key {report.kek_id};"
        f" {len(report.unchanged)} already under it. TESSERA_KEY_ENCRYPTION_KEYS_PREVIOUS is no longer"
        " needed by this database (backups taken before now still need the old key).",
        file=sys.stderr,
    )


async def cmd_purge(args: argparse.Namespace) -> None:
    settings = auth_settings()
    async with open_registry(settings) as registry:
        families = await registry.refresh_tokens.purge_expired(batch=args.batch)
    _print({"families_deleted": families})


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_auth_server(args: argparse.Namespace) -> None:
    # imported here, by the one command that serves: the others need no application
    from auth_server.app import create_app

    settings = auth_settings()
    listening = serving.listener(args, settings)
    # the admin API (issue 15): --admin-port wins over TESSERA_ADMIN_PORT; its workers share it too
    settings = dataclasses.replace(
        settings, admin_port=args.admin_port or settings.admin_port, workers=listening.workers
    )
    serving.serve(
        lambda: create_app(settings),
        serving.listener(args, settings),
        f"Tessera auth server: issuer {settings.issuer}",
    )


async def cmd_registration_token_create(args: argparse.Namespace) -> None:
    """An initial access token for dynamic registration (RFC 7591 §3), printed once."""
    settings = auth_settings()
    async with open_registry(settings) as registry:
        token, record = await registry.registration_tokens.create(
            expires_in=args.expires_in, max_uses=args.max_uses, auto_approve=args.auto_approve
        )
        await registry.audit.record(
            "registration_token.created",
            expires_at=None if record.expires_at is None else record.expires_at.isoformat(),
            max_uses=record.max_uses,
            auto_approve=record.auto_approve,
        )
    _print(
        {
            "initial_access_token": token,
            "expires_at": None if record.expires_at is None else record.expires_at.isoformat(),
            "max_uses": record.max_uses,
            "auto_approve": record.auto_approve,
        }
    )
    print("Store the token now: Tessera keeps only its hash and cannot show it again.", file=sys.stderr)


def _add_registration_token_commands(sub: Subcommands) -> None:
    tokens = sub.add_parser(
        "registration-token", help="initial access tokens for dynamic client registration (RFC 7591)"
    ).add_subparsers(dest="action", required=True)
    create = tokens.add_parser("create", help="print a new initial access token once (stored hashed)")
    create.add_argument("--expires-in", type=_positive, metavar="S", help="seconds until it expires")
    create.add_argument("--max-uses", type=_positive, metavar="N", help="how many registrations it allows")
    create.add_argument(
        "--auto-approve", action="store_true", help="clients it registers are approved, not pending review"
    )
    create.set_defaults(run=cmd_registration_token_create)


async def cmd_resource_create(args: argparse.Namespace) -> None:
    """Register an API tokens are issued for (RFC 8707): its identifier is their ``aud``."""
    async with open_registry(auth_settings()) as registry:
        try:
            resource = await resources.register(
                registry,
                identifier=args.identifier,
                name=args.name,
                scopes=args.scope,
                service_client_id=args.service_client,
            )
        except resources.ResourceRefused as refused:
            raise CommandError(str(refused)) from None
    _print(resources.shown(resource))


async def cmd_resource_list(args: argparse.Namespace) -> None:
    async with open_registry(auth_settings()) as registry:
        _print([resources.shown(resource) for resource in await registry.resources.list()])


async def cmd_resource_show(args: argparse.Namespace) -> None:
    async with open_registry(auth_settings()) as registry:
        resource = await registry.resources.get(args.identifier)
    if resource is None:
        raise CommandError(f"no resource {args.identifier!r}")
    _print(resources.shown(resource))


async def cmd_resource_delete(args: argparse.Namespace) -> None:
    async with open_registry(auth_settings()) as registry:
        if not await registry.resources.delete(args.identifier):
            raise CommandError(f"no resource {args.identifier!r}")
        await registry.audit.record("resource.deleted", resource=args.identifier)
    print(f"deleted resource {args.identifier} (tokens already issued for it stay valid until they expire)")


def _add_resource_commands(sub: Subcommands) -> None:
    resource = sub.add_parser(
        "resource", help="the APIs tokens are issued for (RFC 8707 resource indicators)"
    ).add_subparsers(dest="action", required=True)
    create = resource.add_parser("create", help="register an API: its tokens' aud is its identifier")
    create.add_argument("--identifier", required=True, metavar="URI", help="absolute URI, no fragment")
    create.add_argument("--name", required=True, metavar="N", help="shown to people")
    create.add_argument(
        "--scope", required=True, action="append", metavar="S", help="a scope that belongs to it (repeatable)"
    )
    create.add_argument(
        "--service-client",
        metavar="CLIENT_ID",
        help="the API's own client: it may exchange tokens addressed to the API (RFC 8693)",
    )
    create.set_defaults(run=cmd_resource_create)
    list_ = resource.add_parser("list", help="every registered API")
    list_.set_defaults(run=cmd_resource_list)
    for action, run, what in (
        ("show", cmd_resource_show, "one API"),
        ("delete", cmd_resource_delete, "forget one"),
    ):
        parser = resource.add_parser(action, help=what)
        parser.add_argument("identifier", metavar="URI")
        parser.set_defaults(run=run)


def add_subcommands(sub: Subcommands) -> None:
    """The auth server's subcommands."""
    server = sub.add_parser("auth-server", help="run the authorization server")
    serving.add_listener_arguments(server)
    server.add_argument(
        "--admin-port",
        type=int,
        help="serve the admin HTTP API on this port (default: TESSERA_ADMIN_PORT, off)",
    )
    server.set_defaults(run=cmd_auth_server)
    _add_registration_token_commands(sub)
    _add_resource_commands(sub)

    client = sub.add_parser("client", help="manage clients").add_subparsers(dest="action", required=True)
    create = client.add_parser("create", help="register a client; prints its secret once")
    create.add_argument(
        "--metadata-file",
        metavar="FILE",
        help="register from an RFC 7591 / OpenID Connect client metadata JSON document ('-': stdin);"
        " the options below override its fields",
    )
    create.add_argument("--name", help="client_name (required without --metadata-file)")
    create.add_argument("--redirect-uri", action="append", help="exact redirect URI (repeatable)")
    create.add_argument("--grant-type", action="append", choices=GRANT_TYPES, help="(repeatable)")
    create.add_argument(
        "--scope", help='space-separated, e.g. "openid photos:read" (required without --metadata-file)'
    )
    create.add_argument(
        "--public", action="store_true", help="a public client (SPA, mobile): no secret, PKCE"
    )
    create.add_argument("--auth-method", choices=AUTH_METHODS)
    create.add_argument(
        "--allow-introspection", action="store_true", help="may call the introspection endpoint"
    )
    create.add_argument("--jwks-file", help="a JSON file with the client's public JWKS (private_key_jwt)")
    create.add_argument("--jwks-uri", help="where the client publishes its JWKS (private_key_jwt)")
    create.add_argument(
        "--pkce-optional",
        action="store_true",
        help="let this confidential client use the code grant without PKCE (discouraged; never public)",
    )
    create.add_argument(
        "--first-party",
        action="store_true",
        help="the provider's own app: a remembered consent answers even for a public client",
    )
    create.add_argument(
        "--require-par",
        action="store_true",
        help="its authorization requests must be pushed to the PAR endpoint first (RFC 9126)",
    )
    create.add_argument(
        "--dpop-bound-access-tokens",
        action="store_true",
        help="every token request must carry a DPoP proof: its tokens are all bound (RFC 9449)",
    )
    create.add_argument(
        "--profile",
        choices=list(profiles.PROFILES),
        help="hold it to a security profile: fapi2 (FAPI 2.0: private_key_jwt, PAR, PKCE, DPoP, 60 s codes)",
    )
    create.add_argument("--json", action="store_true", help="print RFC 7591 client metadata as JSON")
    create.set_defaults(run=cmd_client_create)
    update = client.add_parser("update", help="change an operator setting of a client")
    update.add_argument("client_id")
    update.add_argument("--pkce", choices=["required", "optional"], help="PKCE for the code grant")
    update.add_argument("--first-party", choices=["yes", "no"], help="remembered consent for public clients")
    update.add_argument(
        "--require-par", choices=["yes", "no"], help="authorization requests only through PAR (RFC 9126)"
    )
    update.add_argument(
        "--dpop-bound-access-tokens", choices=["yes", "no"], help="a DPoP proof with every token request"
    )
    update.add_argument(
        "--profile",
        choices=[*profiles.PROFILES, "none"],
        help="put it under a security profile (fapi2), if it meets its rules; none: take it out (what the"
        " profile turned on stays on until turned off)",
    )
    update.set_defaults(run=cmd_client_update)
    client.add_parser("list").set_defaults(run=cmd_client_list)
    for name, run in (
        ("show", cmd_client_show),
        ("delete", cmd_client_delete),
        ("rotate-secret", cmd_client_rotate_secret),
    ):
        action = client.add_parser(name)
        action.add_argument("client_id")
        action.set_defaults(run=run)
    for decision, needs_reason, text in (
        ("approve", False, "approve a pending application (or the change it waits with)"),
        ("reject", True, "reject a pending application (or its change); the developer sees the reason"),
        ("suspend", True, "stop an approved client at once and revoke its refresh tokens"),
        ("reinstate", False, "let a suspended client get tokens again"),
    ):
        review = client.add_parser(decision, help=text)
        review.add_argument("client_id")
        if needs_reason:
            review.add_argument("--reason", required=True, help="why (shown to the developer)")
        review.set_defaults(run=cmd_client_review, decision=decision)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    user_create = user.add_parser("create")
    user_create.add_argument("--username", required=True)
    user_create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    user_create.add_argument(
        "--admin", action="store_true", help="a platform operator: reviews applications at /admin"
    )
    _add_profile_arguments(user_create, update=False)
    user_create.set_defaults(run=cmd_user_create)
    user.add_parser("list", help="every user (never a password hash)").set_defaults(run=cmd_user_list)
    user_show = user.add_parser("show", help="a user, their profile and the consents they gave")
    user_show.add_argument("user", help="username or user id")
    user_show.set_defaults(run=cmd_user_show)
    user_update = user.add_parser(
        "update",
        help="rename a user, change their profile, or set a new password (which revokes their tokens)",
    )
    user_update.add_argument("user", help="username or user id")
    user_update.add_argument("--username", help="the new username")
    password = user_update.add_mutually_exclusive_group()
    password.add_argument("--password", action="store_true", help="prompt for a new password")
    password.add_argument("--password-stdin", action="store_true", help="read the new password from stdin")
    _add_profile_arguments(user_update, update=True)
    user_update.add_argument("--admin", choices=["yes", "no"], help="give or take the admin role")
    user_update.set_defaults(run=cmd_user_update)
    user_delete = user.add_parser("delete", help="delete a user, their consents, and revoke their tokens")
    user_delete.add_argument("user", help="username or user id")
    user_delete.set_defaults(run=cmd_user_delete)

    consent = sub.add_parser("consent", help="consents users gave to clients").add_subparsers(
        dest="action", required=True
    )
    consent_list = consent.add_parser("list", help="remembered consents")
    consent_list.add_argument("--user", help="only this user's (username or user id)")
    consent_list.add_argument("--client", help="only to this client id")
    consent_list.set_defaults(run=cmd_consent_list)
    consent_revoke = consent.add_parser(
        "revoke", help="forget a consent and revoke that client's tokens for the user"
    )
    consent_revoke.add_argument("--user", required=True, help="username or user id")
    consent_revoke.add_argument("--client", required=True, help="client id")
    consent_revoke.set_defaults(run=cmd_consent_revoke)

    run_flow = sub.add_parser(
        "flow", help="run the authorization-code flow with PKCE on a loopback callback; print the tokens"
    )
    run_flow.add_argument("--client-id", required=True)
    run_flow.add_argument("--client-secret", help="a confidential client's secret (omit for a public client)")
    run_flow.add_argument("--scope", required=True, help='space-separated, e.g. "photos:read"')
    run_flow.add_argument(
        "--port",
        type=int,
        default=flow.DEFAULT_PORT,
        help=f"callback port: http://127.0.0.1:PORT/callback must be registered ({flow.DEFAULT_PORT})",
    )
    run_flow.add_argument("--issuer", help="the authorization server (default: TESSERA_ISSUER)")
    run_flow.add_argument("--no-browser", action="store_true", help="only print the URL")
    run_flow.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the redirect (300)"
    )
    run_flow.set_defaults(run=cmd_flow)

    purge = sub.add_parser("purge", help="delete refresh-token families no token of which works (run daily)")
    purge.add_argument("--batch", type=_positive, default=10_000, help="families per statement (10000)")
    purge.set_defaults(run=cmd_purge)

    key = sub.add_parser("keys", help="signing keys").add_subparsers(dest="action", required=True)
    rotate = key.add_parser("rotate", help="publish a new key; it signs after the pre-publication period")
    rotate.add_argument(
        "--prepublication", type=int, help="seconds before it signs (TESSERA_KEY_PREPUBLICATION)"
    )
    rotate.add_argument("--alg", choices=signing.ALGORITHMS)
    rotate.set_defaults(run=cmd_keys_rotate)
    key.add_parser("list", help="every key, its state and its key-encryption key id").set_defaults(
        run=cmd_keys_list
    )
    key.add_parser(
        "rewrap", help="re-encrypt every private key under the current TESSERA_KEY_ENCRYPTION_KEY"
    ).set_defaults(run=cmd_keys_rewrap)


def _add_profile_arguments(parser: argparse.ArgumentParser, *, update: bool) -> None:
    """The profile options of ``user create`` and ``user update`` (OpenID Connect Core §5.1 claims)."""
    cleared = " ('' clears it)" if update else ""
    parser.add_argument("--email", help=f"email address; unverified unless --email-verified{cleared}")
    if update:
        parser.add_argument("--email-verified", choices=["yes", "no"], help="whether the email is verified")
    else:
        parser.add_argument("--email-verified", action="store_true", help="the email address is verified")
    parser.add_argument("--name", help=f"full name, e.g. 'Xiaomei Wang'{cleared}")
    parser.add_argument("--nickname", help=f"the name to greet the user by, e.g. 小美{cleared}")
    parser.add_argument("--picture", help=f"avatar: an https URL or a data:image/...;base64, URL{cleared}")
    parser.add_argument("--locale", help=f"BCP 47 language tag, e.g. zh-CN{cleared}")
    parser.add_argument("--zoneinfo", help=f"IANA time zone, e.g. Asia/Shanghai{cleared}")


COMMANDS = Commands("auth", add_subcommands, migrate=migrate_schema)
