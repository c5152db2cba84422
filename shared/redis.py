"""Redis: one client per process, in any of the three deployments, and key naming.

``TESSERA_REDIS_URL`` chooses the deployment by scheme:

* ``redis://`` / ``rediss://`` / ``unix://`` — a single server;
* ``redis+cluster://host:port`` (``rediss+cluster://`` with TLS) — Redis Cluster, discovered from
  any node;
* ``redis+sentinel://host:port[,host:port…]/service`` — the master of ``service`` as the Sentinels
  report it, followed through failovers.

Keys are ``{prefix}{kind}:{{id}}``: the id sits in a hash tag, so every key of one flow (a code
and its tombstone, say) lands in the same Cluster slot and can share a script or transaction.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

# Failures that mean Redis cannot be reached now (the request may succeed in a moment): an app's
# error middleware answers them with 503 temporarily_unavailable rather than 500.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,  # the server's host name does not resolve
    FileNotFoundError,  # its Unix socket is gone (a local server stopped)
)


def _options() -> dict[str, Any]:
    """Connection options of every deployment shape.

    A pooled connection that Redis closed (a restart, a failover) fails its next command with a
    ConnectionError however long it sat idle; that command is retried once on a new connection, so
    one restart does not cost a 503 per pooled connection for minutes afterwards. Only connection
    errors are retried, not timeouts (a timed-out command may have run), except by redis-py's
    cluster client, which retries its own list of errors, timeouts included. A retried command ran
    at most once in all but a server dying mid-reply; Tessera's commands are idempotent there,
    except the code redemption, which then reads as a replay and fails safe (invalid_grant).
    """
    return {
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        "retry": Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    }


def create_redis(url: str) -> Any:
    """A client for the deployment ``url`` names (see the module docstring)."""
    parts = urlsplit(url)
    if parts.scheme in ("redis+cluster", "rediss+cluster"):
        plain = url.replace("+cluster", "", 1)
        return RedisCluster.from_url(plain, decode_responses=False, **_options())
    if parts.scheme in ("redis+sentinel", "rediss+sentinel"):
        hosts = []
        for host in (parts.netloc.rpartition("@")[2]).split(","):
            name, _, port = host.partition(":")
            hosts.append((name, int(port or 26379)))
        service = parts.path.strip("/") or "mymaster"
        options = dict(parse_qsl(parts.query))
        sentinel = Sentinel(hosts, sentinel_kwargs={"socket_timeout": 5}, **_options())  # type: ignore[no-untyped-call]
        master = sentinel.master_for(
            service,
            password=parts.password,
            db=int(options.get("db", 0)),
            ssl=parts.scheme.startswith("rediss"),
        )
        close_master = master.aclose

        async def aclose(*args: Any, **kwargs: Any) -> None:
            """Close the master's pool and the connections to the Sentinels themselves."""
            await close_master(*args, **kwargs)
            for node in sentinel.sentinels:
                await node.aclose()

        master.aclose = aclose
        return master
    return Redis.from_url(url, decode_responses=False, health_check_interval=15, **_options())


class Keys:
    """Builds the Redis key names of one deployment (``prefix`` isolates tenants and test runs)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, kind: str, ident: str) -> str:
        return f"{self.prefix}{kind}:{{{ident}}}"
