"""Applying the Redis rate limits at the endpoints: 429 with ``Retry-After`` when one is exceeded."""

from __future__ import annotations

from auth_server.registry import Registry
from auth_server.stores.rate_limits import Limit
from shared.errors import TooManyRequests


async def limit(registry: Registry, *limits: Limit) -> None:
    wait = await registry.rate_limits.exceeded(*limits)
    if wait is not None:
        raise TooManyRequests("Too many requests; retry later.", retry_after=wait)
