"""Where the authorization server's tables live: its PostgreSQL schema and its migrations.

Kept apart from the application factory so that ``tessera migrate`` (and anything else that only
needs the schema) does not load the whole application.
"""

from __future__ import annotations

SCHEMA = "tessera_auth"
# the package of numbered .sql files (auth_server/migrations/), applied in order by shared.db.migrate
MIGRATIONS = "auth_server.migrations"
