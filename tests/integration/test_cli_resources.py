"""``tessera resource create|list|show|delete``: the operator registers the APIs tokens are for."""

from __future__ import annotations

import os

from tests.support.cli import json_of, tessera
from tests.support.servers import TEST_KEK
from tests.support.services import Services


async def test_resource_commands(empty_database: str, backing: Services, redis_prefix: str) -> None:
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": empty_database,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": redis_prefix,
    }
    assert tessera(env, "migrate").returncode == 0
    api = "https://photos.example/api"
    created = json_of(
        tessera(env, "resource", "create", "--identifier", api, "--name", "Photos", "--scope", "photos:read")
    )
    assert (created["identifier"], created["scopes"], created["service_client_id"]) == (
        api,
        ["photos:read"],
        None,
    )
    assert [r["identifier"] for r in json_of(tessera(env, "resource", "list"))] == [api]
    assert json_of(tessera(env, "resource", "show", api))["name"] == "Photos"

    again = tessera(
        env, "resource", "create", "--identifier", api, "--name", "Photos", "--scope", "photos:read"
    )
    assert again.returncode == 2 and "registered already" in again.stderr
    for bad, says in (
        (["--identifier", "photos", "--scope", "photos:read"], "absolute URI"),
        (["--identifier", "https://x.example/#f", "--scope", "photos:read"], "absolute URI"),
        (["--identifier", "https://x.example/", "--scope", "nope"], "not one of TESSERA_SCOPES"),
        (
            ["--identifier", "https://x.example/", "--scope", "photos:read", "--service-client", "ghost"],
            "no client",
        ),
    ):
        refused = tessera(env, "resource", "create", "--name", "X", *bad)
        assert refused.returncode == 2, refused.stderr
        assert says in refused.stderr and "Traceback" not in refused.stderr, refused.stderr

    # a service client must be registered for token exchange
    plain = json_of(
        tessera(
            env,
            "client",
            "create",
            "--name",
            "Svc",
            "--grant-type",
            "client_credentials",
            "--scope",
            "photos:read",
            "--json",
        )
    )
    refused = tessera(
        env, "resource", "create", "--identifier", "https://mcp.example/mcp", "--name", "MCP",
        "--scope", "photos:read", "--service-client", plain["client_id"],
    )  # fmt: skip
    assert refused.returncode == 2 and "not registered for token exchange" in refused.stderr
    exchange = "urn:ietf:params:oauth:grant-type:token-exchange"
    service = json_of(
        tessera(
            env,
            "client",
            "create",
            "--name",
            "MCP",
            "--grant-type",
            exchange,
            "--scope",
            "photos:read",
            "--json",
        )
    )
    made = json_of(
        tessera(
            env,
            "resource",
            "create",
            "--identifier",
            "https://mcp.example/mcp",
            "--name",
            "MCP",
            "--scope",
            "photos:read",
            "--service-client",
            service["client_id"],
        )
    )
    assert made["service_client_id"] == service["client_id"]

    assert tessera(env, "resource", "delete", api).returncode == 0
    assert tessera(env, "resource", "show", api).returncode == 2
