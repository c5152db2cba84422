"""Where the Photo Warehouse's tables live: its PostgreSQL schema and its migrations.

Kept apart from the application factory so that ``tessera migrate`` (and anything else that only
needs the schema) does not load the whole application.
"""

from __future__ import annotations

SCHEMA = "tessera_photos"
# the package of numbered .sql files (resource_server/migrations/), applied in order by shared.db.migrate
MIGRATIONS = "resource_server.migrations"
