"""Canonical usernames (migration 005) on a database that already held users: ``tessera migrate``
and ``tessera dev`` recompute every canonical name exactly, report names that become equal instead
of crashing, and fix every other name, on every run until nothing is left to do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from auth_server import dev
from auth_server.commands import migrate_auth
from auth_server.schema import MIGRATIONS, SCHEMA
from auth_server.stores.users import User, UserStore
from resource_server.settings import ResourceSettings
from shared import db
from shared.cli import CommandError
from tests.support.servers import TEST_KEK, make_settings
from tests.support.services import Services

NOT_A_HASH = "$argon2id$not-used-here"  # these users never sign in: only their names matter


@pytest.fixture
async def at_004(empty_database: str) -> str:
    """A database as the release before migration 005 left it."""
    assert await db.migrate(empty_database, SCHEMA, MIGRATIONS, target=4) == [
        m.name for m in db.load_migrations(MIGRATIONS) if m.version <= 4
    ]
    return empty_database


@pytest.fixture
async def users(at_004: str) -> AsyncIterator[UserStore]:
    pool = await db.create_pool(at_004, SCHEMA, max_size=2)
    try:
        yield UserStore(pool)
    finally:
        await pool.close()


async def insert_users(url: str, *names: str) -> dict[str, uuid.UUID]:
    """Users inserted as the old release did it (no canonical column yet): name -> user id."""
    ids = {name: uuid.uuid4() for name in names}
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            f"INSERT INTO {SCHEMA}.users (user_id, username, password_hash) VALUES ($1, $2, $3)",
            [(user_id, name, NOT_A_HASH) for name, user_id in ids.items()],
        )
    finally:
        await conn.close()
    return ids


async def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def canonical_names(url: str) -> dict[str, str]:
    rows = await query(url, f"SELECT username, username_canonical FROM {SCHEMA}.users")
    return {r["username"]: r["username_canonical"] for r in rows}


async def applied_versions(url: str) -> list[int]:
    rows = await query(url, f"SELECT version FROM {SCHEMA}.schema_migrations ORDER BY version")
    return [r["version"] for r in rows]


def tessera_migrate(url: str, backing: Services, redis_prefix: str) -> subprocess.CompletedProcess[str]:
    """``tessera migrate``, as an operator runs it."""
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": url,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": redis_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "auth_server.cli", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def suggested_renames(stderr: str) -> list[str]:
    """The ``UPDATE ... SET username = ...`` statements the report tells the operator to run."""
    return re.findall(r"^\s*(UPDATE .*;)\s*$", stderr, flags=re.MULTILINE)


def run_rename(statement: str, new_name: str) -> str:
    """The suggested statement with the operator's choice of a new name in place of the placeholder."""
    assert "'<new username>'" in statement, statement
    return statement.replace("'<new username>'", "'" + new_name.replace("'", "''") + "'")


def found(user: User | None) -> uuid.UUID | None:
    return None if user is None else user.user_id


async def test_a_collision_of_exact_canonical_names_is_reported_and_the_other_names_fixed(
    at_004: str, users: UserStore, backing: Services, redis_prefix: str
) -> None:
    ids = await insert_users(at_004, "Strasse", "Straße", "Groß", "xiaomei")

    first = tessera_migrate(at_004, backing, redis_prefix)
    assert first.returncode == 2, first.stderr
    assert "Traceback" not in first.stderr
    # the migrations themselves are done; what is left is the operator's choice of a new name
    assert await applied_versions(at_004) == [m.version for m in db.load_migrations(MIGRATIONS)]
    assert "'Straße'" in first.stderr and "'Strasse'" in first.stderr
    assert "tessera migrate" in first.stderr
    renames = suggested_renames(first.stderr)
    # the name that would move onto another is the one to rename; the one holding it keeps it
    assert len(renames) == 1 and f"WHERE user_id = '{ids['Straße']}'" in renames[0]
    assert f"{SCHEMA}.users" in renames[0]

    # the names that collide with nothing are exact already
    stored = await canonical_names(at_004)
    assert stored["Groß"] == "gross" and stored["xiaomei"] == "xiaomei"
    assert stored["Strasse"] == "strasse" and stored["Straße"] == "straße"  # untouched until renamed
    assert found(await users.by_username("GROSS")) == ids["Groß"]
    assert found(await users.by_username("Strasse")) == ids["Strasse"]

    # a second run reports the same, rather than finding nothing to apply and succeeding
    again = tessera_migrate(at_004, backing, redis_prefix)
    assert again.returncode == 2 and suggested_renames(again.stderr) == renames

    # the operator runs the suggested statement, then migrate again
    await query(at_004, run_rename(renames[0], "Straße-2"))
    fixed = tessera_migrate(at_004, backing, redis_prefix)
    assert fixed.returncode == 0, fixed.stderr
    assert await canonical_names(at_004) == {
        "Strasse": "strasse",
        "Straße-2": "strasse-2",
        "Groß": "gross",
        "xiaomei": "xiaomei",
    }
    assert found(await users.by_username("STRASSE-2")) == ids["Straße"]
    assert found(await users.by_username("strasse")) == ids["Strasse"]
    assert found(await users.by_username("Straße")) == ids["Strasse"]  # the same name, as compared

    # nothing left to do: a further run changes nothing and says so without complaint
    quiet = tessera_migrate(at_004, backing, redis_prefix)
    assert quiet.returncode == 0, quiet.stderr
    assert "applied 0 migration" in quiet.stdout and "canonical" not in quiet.stdout


async def test_names_equal_under_the_sql_backfill_stop_migration_005_with_a_clear_message(
    at_004: str, users: UserStore, backing: Services, redis_prefix: str
) -> None:
    # "ﬁle" begins with the ligature U+FB01, which NFKC turns into "fi"
    ids = await insert_users(at_004, "file", "\ufb01le")

    failed = tessera_migrate(at_004, backing, redis_prefix)
    assert failed.returncode == 2, failed.stderr
    assert "Traceback" not in failed.stderr
    assert "'file'" in failed.stderr and "'\ufb01le'" in failed.stderr
    assert "tessera migrate" in failed.stderr
    assert await applied_versions(at_004) == [1, 2, 3, 4]  # 005 rolled back whole
    renames = suggested_renames(failed.stderr)
    assert len(renames) == 1 and f"{SCHEMA}.users" in renames[0]
    renamed = next(name for name, user_id in ids.items() if f"'{user_id}'" in renames[0])

    await query(at_004, run_rename(renames[0], "file-2"))
    fixed = tessera_migrate(at_004, backing, redis_prefix)
    assert fixed.returncode == 0, fixed.stderr
    assert "005_hardening.sql" in fixed.stdout
    kept = next(name for name in ids if name != renamed)
    assert found(await users.by_username("FILE")) == ids[kept]
    assert found(await users.by_username("File-2")) == ids[renamed]


async def test_tessera_dev_recomputes_canonical_names_the_same_way(
    at_004: str, users: UserStore, backing: Services, redis_prefix: str, tmp_path: Path
) -> None:
    ids = await insert_users(at_004, "Strasse", "Straße", "Groß")
    auth = make_settings(at_004, backing.redis_url, redis_prefix, dev_data_dir=tmp_path)
    resource = ResourceSettings(
        issuer=auth.issuer, database_url=at_004, audience=f"{auth.issuer}/api", dev_data_dir=tmp_path
    )

    with pytest.raises(CommandError, match="Straße") as report:
        await dev.prepare(auth, resource, printer_port=9000)
    assert found(await users.by_username("gross")) == ids["Groß"]
    (rename,) = suggested_renames(str(report.value))

    await query(at_004, run_rename(rename, "Strasse zwei"))
    await dev.prepare(auth, resource, printer_port=9000)
    assert found(await users.by_username("STRASSE ZWEI")) == ids["Straße"]
    assert await users.by_username(dev.DEMO_USER) is not None  # and the demo went on to be seeded


async def insert_with_forms(url: str, *users: tuple[str, str]) -> dict[str, uuid.UUID]:
    """Users (name, stored canonical form) registered one second apart, oldest first."""
    ids = {name: uuid.uuid4() for name, _ in users}
    conn = await asyncpg.connect(url)
    try:
        for age, (name, form) in enumerate(users):
            await conn.execute(
                f"INSERT INTO {SCHEMA}.users"
                " (user_id, username, username_canonical, password_hash, created_at)"
                " VALUES ($1, $2, $3, $4, now() - make_interval(secs => $5))",
                ids[name],
                name,
                form,
                NOT_A_HASH,
                float(len(users) - age),
            )
    finally:
        await conn.close()
    return ids


async def test_stale_forms_are_corrected_whatever_order_they_must_move_in(empty_database: str) -> None:
    # forms left stale (as by an older Unicode database): two swapped, and a chain in which each
    # name wants the form the next one is leaving; one statement moving them would hit the index
    await db.migrate(empty_database, SCHEMA, MIGRATIONS)
    await insert_with_forms(
        empty_database, ("Ab", "cd"), ("Cd", "ab"), ("Ef", "gh"), ("Gh", "ij"), ("Ij", "stale")
    )
    migrated = await migrate_auth(empty_database)
    assert migrated.applied == [] and migrated.recanonicalized == 5
    assert await canonical_names(empty_database) == {n: n.lower() for n in ("Ab", "Cd", "Ef", "Gh", "Ij")}
    assert (await migrate_auth(empty_database)).recanonicalized == 0


async def test_of_two_names_moving_onto_one_form_the_older_gets_it(empty_database: str) -> None:
    await db.migrate(empty_database, SCHEMA, MIGRATIONS)
    ids = await insert_with_forms(
        empty_database,
        ("Straße", "stale-1"),  # the oldest: it gets "strasse"
        ("STRASSE", "a2"),  # wants "strasse" too, so it stays at "a2" ...
        ("A2", "stale-3"),  # ... which "A2" wants: it cannot move either
        ("Groß", "stale-4"),  # collides with no one
    )
    with pytest.raises(CommandError) as report:
        await migrate_auth(empty_database)
    message = str(report.value)
    assert "'Straße'" in message and "'STRASSE'" in message and "'A2'" in message
    renames = suggested_renames(message)
    assert len(renames) == 2
    assert {ids["STRASSE"], ids["A2"]} == {
        user_id for user_id in ids.values() if any(f"'{user_id}'" in r for r in renames)
    }
    assert await canonical_names(empty_database) == {
        "Straße": "strasse",
        "STRASSE": "a2",
        "A2": "stale-3",
        "Groß": "gross",
    }
