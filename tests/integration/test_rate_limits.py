"""Per-client and per-IP rate limits in Redis: 429 with Retry-After and an OAuth error body."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from auth_server.stores.rate_limits import Limit, RateLimitStore
from shared.redis import Keys
from tests.support.flow import authorize_params, basic
from tests.support.servers import ClientFactory, free_port
from tests.support.services import Services

Factory = Callable[..., Awaitable[TestClient]]


async def test_token_requests_per_client(
    app_with: Callable[..., Awaitable[TestClient]], new_client: ClientFactory
) -> None:
    http = await app_with(rate_token_per_client=3, rate_token_per_ip=0)
    client, secret = await new_client(grant_types=["client_credentials"], scope="warehouse:stats")
    other, other_secret = await new_client(grant_types=["client_credentials"], scope="warehouse:stats")
    assert secret and other_secret
    form = {"grant_type": "client_credentials"}
    statuses = [
        (await http.post("/oauth2/token", data=form, headers=basic(client.client_id, secret))).status
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    refused = await http.post("/oauth2/token", data=form, headers=basic(client.client_id, secret))
    body = await refused.json()
    assert body["error"] == "temporarily_unavailable" and 0 < int(refused.headers["Retry-After"]) <= 61
    # another client has its own budget
    assert (
        await http.post("/oauth2/token", data=form, headers=basic(other.client_id, other_secret))
    ).status == 200


async def test_token_requests_per_ip_before_authentication(
    app_with: Callable[..., Awaitable[TestClient]],
) -> None:
    http = await app_with(rate_token_per_ip=2)
    statuses = [(await http.post("/oauth2/token", data={"grant_type": "x"})).status for _ in range(3)]
    assert statuses == [401, 401, 429]


async def test_authorize_and_login_per_ip(
    app_with: Callable[..., Awaitable[TestClient]], new_client: ClientFactory
) -> None:
    http = await app_with(rate_authorize_per_ip=2, rate_login_per_ip=1)
    client, _ = await new_client()
    url = f"/oauth2/authorize?{urlencode(authorize_params(client.client_id))}"
    statuses = [(await http.get(url, allow_redirects=False)).status for _ in range(3)]
    assert statuses == [302, 302, 429]
    page = await http.get(url, allow_redirects=False)
    assert "Retry-After" in page.headers and "temporarily_unavailable" in await page.text()
    first = await http.post("/login", data={"username": "a", "password": "b"}, allow_redirects=False)
    second = await http.post("/login", data={"username": "a", "password": "b"}, allow_redirects=False)
    assert first.status == 400 and second.status == 429


async def _clear_of_a_window_boundary() -> None:
    """Counts live in one-minute windows: start well inside one, so a test never straddles two."""
    into = time.time() % RateLimitStore.WINDOW
    if into > RateLimitStore.WINDOW - 3:
        await asyncio.sleep(RateLimitStore.WINDOW - into + 0.1)


async def test_replicas_share_one_budget(backing: Services) -> None:
    """Each replica batches its counts; what one has sent, another sees at its first check."""
    prefix = f"tessera-test-rate-{uuid.uuid4().hex[:8]}:"
    redis = Redis.from_url(backing.redis_url)
    first = RateLimitStore(redis, Keys(prefix), sync_interval=0.05)
    second = RateLimitStore(redis, Keys(prefix), sync_interval=0.05)
    budget = Limit("token-client", "client-1", 5)
    try:
        await _clear_of_a_window_boundary()
        assert [await first.exceeded(budget) for _ in range(5)] == [None] * 5
        assert await first.exceeded(budget) is not None  # its own count decides at once
        await asyncio.sleep(0.3)  # the first replica has sent its counts
        wait = await second.exceeded(budget)
        assert wait is not None and 0 < wait <= 61
    finally:
        await first.close()
        await second.close()
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()


async def test_limits_fail_open_to_local_counts_while_redis_is_away() -> None:
    """No Redis: requests are not refused for it; each replica still enforces the limit alone."""
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    store = RateLimitStore(unreachable, Keys("tessera-test-away:"), sync_interval=0.05)
    budget = Limit("token-ip", "192.0.2.1", 2)
    try:
        await _clear_of_a_window_boundary()
        assert [await store.exceeded(budget) for _ in range(2)] == [None, None]
        assert await store.exceeded(budget) is not None
    finally:
        await store.close()
        await unreachable.aclose()


async def test_security_limits_are_exact_across_replicas(backing: Services) -> None:
    """A login-sized limit is never batched: four replicas bursting at once admit exactly the limit."""
    prefix = f"tessera-test-rate-{uuid.uuid4().hex[:8]}:"
    redis = Redis.from_url(backing.redis_url)
    stores = [RateLimitStore(redis, Keys(prefix), sync_interval=0.1) for _ in range(4)]
    budget = Limit("login-ip", "198.51.100.7", 120)
    try:
        await _clear_of_a_window_boundary()
        answers = [await store.exceeded(budget) for _ in range(200) for store in stores]
        assert sum(answer is None for answer in answers) == 120
    finally:
        for store in stores:
            await store.close()
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()


async def test_high_limits_are_batched_far_from_them_and_exact_near_them(backing: Services) -> None:
    """A token-sized limit is counted locally while far below it, then exactly: two replicas
    together admit the limit and not one request more."""
    prefix = f"tessera-test-rate-{uuid.uuid4().hex[:8]}:"
    redis = Redis.from_url(backing.redis_url)
    first = RateLimitStore(redis, Keys(prefix), sync_interval=0.05)
    second = RateLimitStore(redis, Keys(prefix), sync_interval=0.05)
    budget = Limit("token-client", "client-1", 6000)
    try:
        await _clear_of_a_window_boundary()
        admitted = 0
        for _ in range(4000):
            admitted += await first.exceeded(budget) is None
        await asyncio.sleep(0.3)  # the batch reaches Redis
        key = Keys(prefix)("rate-token-client", f"client-1:{int(time.time() // RateLimitStore.WINDOW)}")
        assert int(await redis.get(key) or 0) == 4000  # 4,000 counted, in a handful of round trips
        for _ in range(2500):
            for store in (first, second):
                admitted += await store.exceeded(budget) is None
        assert admitted == 6000
    finally:
        await first.close()
        await second.close()
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()
