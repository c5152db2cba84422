"""Redis: one client per process, and key naming.

Keys are ``{prefix}{kind}:{{id}}``: the id sits in a hash tag, so every key of one flow (a code
and its tombstone, say) lands in the same Redis Cluster slot and can share a transaction.
"""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=False, health_check_interval=15, socket_timeout=5)


class Keys:
    """Builds the Redis key names of one deployment (``prefix`` isolates tenants and test runs)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, kind: str, ident: str) -> str:
        return f"{self.prefix}{kind}:{{{ident}}}"
