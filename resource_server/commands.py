"""The Photo Warehouse's part of the ``tessera`` command (see :mod:`shared.cli`).

``tessera resource-server``, ``tessera mcp-server`` (the warehouse for AI agents, with the ``mcp``
extra), and the photo schema's part of ``tessera migrate``; declared as :data:`COMMANDS`, which
``pyproject.toml`` names in the ``tessera.commands`` entry points.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from resource_server.schema import MIGRATIONS, SCHEMA
from resource_server.settings import McpSettings, ResourceSettings
from shared import db, embedded, serving
from shared import logging as tessera_logging
from shared.cli import CommandError, Commands, Migrated, Subcommands

log = logging.getLogger("tessera.cli")


def resource_settings() -> ResourceSettings:
    settings = ResourceSettings.from_env()
    if settings.database_url is None:
        log.warning(
            "TESSERA_RESOURCE_DATABASE_URL / TESSERA_DATABASE_URL not set: using the embedded dev PostgreSQL"
        )
        return dataclasses.replace(settings, database_url=embedded.postgres_url(settings.dev_data_dir))
    return settings


async def migrate_resource(database_url: str) -> list[str]:
    """The photo schema's migrations; the names of those applied."""
    return await db.migrate(database_url, SCHEMA, MIGRATIONS)


async def migrate_schema() -> Migrated:
    """``tessera migrate``'s part for the photo schema."""
    settings = resource_settings()
    assert settings.database_url is not None
    return Migrated(await migrate_resource(settings.database_url))


def cmd_resource_server(args: argparse.Namespace) -> None:
    # imported here, by the one command that serves: migrations need no application
    from resource_server.app import create_app

    settings = resource_settings()
    serving.serve(
        lambda: create_app(settings),
        serving.listener(args, settings),
        f"Photo Warehouse: trusting {settings.issuer}",
    )


# what the MCP server needs beyond Tessera's own dependencies: the ``mcp`` extra brings them all
MCP_PACKAGES = frozenset({"mcp", "mcp_types", "uvicorn", "starlette", "pydantic"})


def cmd_mcp_server(args: argparse.Namespace) -> None:
    try:
        # imported here: the mcp SDK is an optional extra, needed only by this command
        from resource_server import mcp_server
    except ModuleNotFoundError as missing:
        if (missing.name or "").partition(".")[0] not in MCP_PACKAGES:
            raise
        raise CommandError("the MCP server needs the mcp package: pip install 'tessera[mcp]'") from None
    settings = McpSettings.from_env()
    chosen = {"host": args.host, "port": args.port, "metrics_port": args.metrics_port}
    settings = dataclasses.replace(settings, **{k: v for k, v in chosen.items() if v is not None})
    mcp_server.serve(settings, access_log=tessera_logging.LoggingSettings.from_env().access_log)


def add_subcommands(sub: Subcommands) -> None:
    """The Photo Warehouse's subcommands."""
    server = sub.add_parser("resource-server", help="run the Photo Warehouse resource server")
    serving.add_listener_arguments(server)
    server.set_defaults(run=cmd_resource_server)
    mcp = sub.add_parser(
        "mcp-server", help="run the Photo Warehouse's MCP server for AI agents (needs the mcp extra)"
    )
    mcp.add_argument("--host", help="listen address (TESSERA_MCP_HOST, 127.0.0.1)")
    mcp.add_argument("--port", type=int, help="listen port (TESSERA_MCP_PORT, 8003)")
    mcp.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus /metrics on this port of the same host, never the public one"
        " (TESSERA_MCP_METRICS_PORT, off)",
    )
    mcp.set_defaults(run=cmd_mcp_server)


COMMANDS = Commands("resource", add_subcommands, migrate=migrate_schema)
