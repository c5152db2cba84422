"""What a failure to reach PostgreSQL or Redis means, in one line that names the variable to fix.

The ``tessera`` command (:mod:`shared.cli`) prints :func:`explain`'s line instead of a traceback
for the mistakes a user can make: a wrong host, port, user, password or database name in
``TESSERA_DATABASE_URL`` (or ``TESSERA_RESOURCE_DATABASE_URL``), a Redis that cannot be reached
at ``TESSERA_REDIS_URL``, and a database that ``tessera migrate`` has not prepared yet. A failure
is attributed to PostgreSQL or Redis by the library it was raised in, so an unrelated ``OSError``
(a busy port, an unreadable file) is never blamed on a database. The line never holds a password.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import asyncpg
import redis.exceptions

from shared.config import Env
from shared.db import NotMigrated

MIGRATE = "run `tessera migrate`"


def explain(error: BaseException, env: Env) -> str | None:
    """One or two lines for a connection or configuration failure; None for anything else.

    ``env`` holds the ``TESSERA_*`` variables, to name the one to fix and the address it gives.
    """
    for cause in _chain(error):
        if isinstance(cause, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return _redis(cause, env)
        line = _postgres(cause, env)
        if line is not None:
            return line
    return None


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes and contexts (a pool's failure can arrive wrapped)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _database_variable(env: Env) -> tuple[str, str | None]:
    """The variable that holds the failing database URL, and its value (None: embedded server)."""
    resource = env.optional("RESOURCE_DATABASE_URL")
    if resource is not None:
        return f"{env.name('RESOURCE_DATABASE_URL')} (or {env.name('DATABASE_URL')})", resource
    return env.name("DATABASE_URL"), env.optional("DATABASE_URL")


def _where(url: str | None, default_port: int) -> str:
    """``host:port`` of a URL, never its user or password."""
    if url is None:
        return "the embedded development server"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "the configured address"
    if not host:
        return "the local socket"
    return f"{host}:{port or default_port}"


def _user(url: str | None) -> str:
    try:
        return (urlsplit(url).username if url else None) or "the configured user"
    except ValueError:
        return "the configured user"


def _raised_in(error: BaseException, package: str) -> bool:
    """Whether a frame of ``error``'s traceback belongs to ``package`` (its modules' ``__name__``)."""
    trace = error.__traceback__
    while trace is not None:
        module = trace.tb_frame.f_globals.get("__name__", "")
        if module == package or module.startswith(f"{package}."):
            return True
        trace = trace.tb_next
    return False


def _postgres(error: BaseException, env: Env) -> str | None:
    variable, url = _database_variable(env)
    where = _where(url, 5432)
    if isinstance(error, NotMigrated):
        return f"{error} (with the same {variable})"
    if isinstance(error, asyncpg.UndefinedTableError | asyncpg.InvalidSchemaNameError):
        return f"the database has no Tessera tables: {MIGRATE} (with the same {variable})"
    if isinstance(error, asyncpg.UndefinedColumnError | asyncpg.UndefinedFunctionError):
        return f"the database's Tessera tables are out of date: {MIGRATE}"
    if isinstance(error, asyncpg.InvalidPasswordError):
        return f"PostgreSQL at {where} refused the password of {_user(url)}: fix the password in {variable}"
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return f"PostgreSQL at {where} refused the connection ({error}): fix the user in {variable}"
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return f"PostgreSQL at {where}: {error}: fix the database name in {variable}, or create it (createdb)"
    if isinstance(error, asyncpg.TooManyConnectionsError | asyncpg.CannotConnectNowError):
        return f"PostgreSQL at {where} cannot take a connection now ({error}): try again, or check {variable}"
    if isinstance(error, asyncpg.PostgresConnectionError | asyncpg.ClientConfigurationError):
        return f"cannot connect to PostgreSQL at {where} ({error}): check {variable}"
    if isinstance(error, ValueError) and _raised_in(error, "asyncpg"):
        return f"{variable} is not a valid PostgreSQL URL ({error})"
    if isinstance(error, socket.gaierror) and _raised_in(error, "asyncpg"):
        return f"the host of {variable} ({where}) does not resolve: fix the host name"
    if isinstance(error, OSError | TimeoutError) and _raised_in(error, "asyncpg"):
        reason = os.strerror(error.errno) if isinstance(error, OSError) and error.errno else "no answer"
        return (
            f"cannot connect to PostgreSQL at {where} ({reason}): is it running?"
            f" Check the host and port in {variable}"
        )
    return None


def _redis(error: BaseException, env: Env) -> str:
    url = env.optional("REDIS_URL")
    where = _where(url, 6379)
    if isinstance(error, redis.exceptions.AuthenticationError):
        return f"Redis at {where} refused the credentials: fix the password in TESSERA_REDIS_URL"
    message = str(error).split("\n")[0]
    return f"cannot connect to Redis at {where} ({message}): is it running? Check TESSERA_REDIS_URL"
