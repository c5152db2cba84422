"""The Photo Warehouse's part of the ``tessera`` command (see :mod:`shared.cli`).

``tessera resource-server``, and the photo schema's part of ``tessera migrate``; declared as
:data:`COMMANDS`, which ``pyproject.toml`` names in the ``tessera.commands`` entry points.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from resource_server.schema import MIGRATIONS, SCHEMA
from resource_server.settings import ResourceSettings
from shared import db, embedded, serving
from shared.cli import Commands, Migrated, Subcommands

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


def add_subcommands(sub: Subcommands) -> None:
    """The Photo Warehouse's subcommands."""
    server = sub.add_parser("resource-server", help="run the Photo Warehouse resource server")
    serving.add_listener_arguments(server)
    server.set_defaults(run=cmd_resource_server)


COMMANDS = Commands("resource", add_subcommands, migrate=migrate_schema)
