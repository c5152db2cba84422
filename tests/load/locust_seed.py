"""Seed users and clients for ``tests/load/locustfile.py`` and write its seed JSON.

It registers everything through the ``tessera`` command, so it reads the same ``TESSERA_*``
variables as the servers (``TESSERA_DATABASE_URL``, ``TESSERA_REDIS_URL``, …) and needs the
migrations applied. Names carry a random prefix, so seeding twice into one database is harmless.

    python -m tests.load.locust_seed --users 20 --partners 3 --out /tmp/seed.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REDIRECT_URI = "http://127.0.0.1:9999/callback"  # nothing listens there: the locustfile never follows it


def tessera_command() -> str:
    """The ``tessera`` next to this interpreter (the project's virtualenv), else the one on PATH."""
    beside = Path(sys.executable).with_name("tessera")
    if beside.exists():
        return str(beside)
    found = shutil.which("tessera")
    if found is None:
        raise SystemExit("locust_seed: no tessera command; install the project (pip install -e .)")
    return found


def tessera(*args: str, stdin: str | None = None) -> Any:
    result = subprocess.run(
        [tessera_command(), *args], input=stdin, capture_output=True, text=True, check=False, env=os.environ
    )
    if result.returncode != 0:
        raise SystemExit(f"locust_seed: tessera {' '.join(args[:2])} failed:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def create_user(username: str, password: str) -> dict[str, str]:
    tessera("user", "create", "--username", username, "--password-stdin", stdin=password + "\n")
    return {"username": username, "password": password}


def seed(users: int, partners: int, prefix: str, redirect_uri: str, jobs: int) -> dict[str, Any]:
    web = tessera(
        "client",
        "create",
        "--name",
        f"{prefix}web",
        "--redirect-uri",
        redirect_uri,
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        "photos:read photos:write",
        "--json",
    )
    names = [f"{prefix}user-{i:04d}" for i in range(users)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each user costs a process and an argon2 hash
        seeded_users = list(pool.map(lambda name: create_user(name, secrets.token_urlsafe(18)), names))
    seeded_partners = []
    for i in range(partners):
        partner = tessera(
            "client",
            "create",
            "--name",
            f"{prefix}partner-{i}",
            "--grant-type",
            "client_credentials",
            "--scope",
            "warehouse:stats",
            "--json",
        )
        seeded_partners.append({"client_id": partner["client_id"], "client_secret": partner["client_secret"]})
    return {
        "users": seeded_users,
        "web_client": {
            "client_id": web["client_id"],
            "client_secret": web["client_secret"],
            "redirect_uri": redirect_uri,
            "scope": "photos:read photos:write",
        },
        "partners": seeded_partners,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=20, help="how many users (20)")
    parser.add_argument("--partners", type=int, default=3, help="how many partner clients (3)")
    parser.add_argument("--prefix", default=f"bench-{secrets.token_hex(3)}-", help="prefix of every name")
    parser.add_argument("--redirect-uri", default=REDIRECT_URI, help=f"the web client's ({REDIRECT_URI})")
    parser.add_argument("--jobs", type=int, default=8, help="users created in parallel (8)")
    parser.add_argument("--out", required=True, help="where to write the seed JSON")
    args = parser.parse_args(argv)
    if args.users < 1 or args.partners < 0 or args.jobs < 1:
        parser.error("--users and --jobs must be at least 1, --partners at least 0")
    data = seed(args.users, args.partners, args.prefix, args.redirect_uri, args.jobs)
    # it holds passwords and client secrets: readable by its owner only
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(json.dumps(data, indent=2) + "\n")
    print(f"seeded {args.users} users and {args.partners} partners into {args.out}")


if __name__ == "__main__":
    main()
