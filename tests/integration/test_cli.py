"""The ``tessera`` command as the README uses it, in real subprocesses against the test services."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.support.cli import json_of, tessera
from tests.support.servers import TEST_KEK
from tests.support.services import Services


async def test_cli_end_to_end(empty_database: str, backing: Services, redis_prefix: str) -> None:
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": empty_database,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": redis_prefix,
    }
    migrate = tessera(env, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert "001_initial.sql" in migrate.stdout
    assert "applied 0 migration" in tessera(env, "migrate").stdout
    assert json_of(tessera(env, "purge")) == {"families_deleted": 0}

    created = json_of(
        tessera(
            env,
            *("client", "create", "--name", "Photo Printer", "--redirect-uri", "https://printer.example/cb"),
            *(
                "--redirect-uri",
                "https://printer.example/cb2",
                "--scope",
                "photos:read photos:write",
                "--json",
            ),
        )
    )
    assert set(created) >= {"client_id", "client_secret", "redirect_uris", "grant_types", "scope"}
    assert created["token_endpoint_auth_method"] == "client_secret_basic"
    assert created["redirect_uris"] == ["https://printer.example/cb", "https://printer.example/cb2"]
    assert created["grant_types"] == ["authorization_code", "refresh_token"]
    assert len(created["client_secret"]) >= 43  # 256 bits, base64url

    public = json_of(
        tessera(
            env,
            *("client", "create", "--name", "Phone", "--public", "--redirect-uri", "com.example.app:/cb"),
            *("--scope", "photos:read", "--json"),
        )
    )
    assert public["token_endpoint_auth_method"] == "none" and "client_secret" not in public

    bad = tessera(
        env,
        "client",
        "create",
        "--name",
        "X",
        "--redirect-uri",
        "http://evil.example/cb",
        "--scope",
        "photos:read",
    )
    assert bad.returncode == 2 and "loopback" in bad.stderr

    listed = json_of(tessera(env, "client", "list"))
    assert {c["client_id"] for c in listed} == {created["client_id"], public["client_id"]}
    assert all("client_secret" not in c for c in listed)
    shown = json_of(tessera(env, "client", "show", created["client_id"]))
    assert shown["client_name"] == "Photo Printer"
    rotated = json_of(tessera(env, "client", "rotate-secret", created["client_id"]))
    assert rotated["client_secret"] != created["client_secret"]

    user = json_of(
        tessera(env, "user", "create", "--username", "xiaomei", "--password-stdin", stdin="a long password\n")
    )
    assert user["username"] == "xiaomei"
    again = tessera(
        env, "user", "create", "--username", "XiaoMei", "--password-stdin", stdin="a long password\n"
    )
    assert again.returncode == 2 and "taken" in again.stderr

    rotated_key = json_of(tessera(env, "keys", "rotate", "--prepublication", "600"))
    states = {k["kid"]: k["state"] for k in json_of(tessera(env, "keys", "list"))}
    assert states[rotated_key["kid"]] == "next"

    assert tessera(env, "client", "delete", public["client_id"]).returncode == 0
    assert tessera(env, "client", "show", public["client_id"]).returncode == 2

    # config errors name the variable and exit 2, without a traceback
    broken = tessera({**env, "TESSERA_ISSUER": "http://auth.example.com"}, "client", "list")
    assert broken.returncode == 2
    assert "TESSERA_ISSUER" in broken.stderr and "Traceback" not in broken.stderr


async def test_client_create_from_a_metadata_file(
    empty_database: str, backing: Services, redis_prefix: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": empty_database,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": redis_prefix,
    }
    assert tessera(env, "migrate").returncode == 0
    document: dict[str, Any] = {
        "client_name": "Photo Printer",
        "redirect_uris": ["https://printer.example/callback"],
        "grant_types": ["authorization_code", "implicit", "refresh_token"],
        "response_types": ["code", "id_token code"],
        "scope": "openid profile email offline_access photos:read",
        "post_logout_redirect_uris": ["https://printer.example/"],
        "subject_type": "pairwise",
        "id_token_signed_response_alg": "ES256",
        "backchannel_logout_uri": "https://printer.example/backchannel-logout",
        "backchannel_logout_session_required": True,
        "default_max_age": 3600,
        "require_auth_time": True,
        "client_uri": "https://printer.example/",
        "tos_uri": "https://printer.example/terms",
        "first_party": False,
    }
    path = tmp_path / "printer.json"
    path.write_text(json.dumps(document))
    created = json_of(tessera(env, "client", "create", "--metadata-file", str(path), "--json"))
    for name, value in document.items():
        expected = value
        if name == "response_types":
            expected = ["code", "code id_token"]  # stored in canonical form
        assert created[name] == expected, name
    assert created["token_endpoint_auth_method"] == "client_secret_basic" and created["client_secret"]
    shown = json_of(tessera(env, "client", "show", created["client_id"]))
    assert shown["sector_identifier"] == "printer.example"
    assert shown["backchannel_logout_uri"] == document["backchannel_logout_uri"]
    assert "client_secret" not in shown

    # from standard input, a flag given overriding its field
    public = json_of(
        tessera(
            env,
            *("client", "create", "--metadata-file", "-", "--public", "--name", "Phone"),
            *("--redirect-uri", "com.example.phone:/cb", "--json"),
            stdin=json.dumps({**document, "subject_type": "public", "post_logout_redirect_uris": []}),
        )
    )
    assert public["client_name"] == "Phone" and public["token_endpoint_auth_method"] == "none"
    assert public["redirect_uris"] == ["com.example.phone:/cb"] and "client_secret" not in public
    assert public["id_token_signed_response_alg"] == "ES256"

    # one line saying what is wrong, exit 2, nothing registered
    for stdin, error in (
        (
            json.dumps({**document, "redirect_uri": "https://printer.example/x"}),
            "unknown client metadata: redirect_uri",
        ),
        (json.dumps({**document, "scope": ["openid"]}), "scope must be a string"),
        (
            json.dumps({**document, "response_types": ["id_token"], "grant_types": ["authorization_code"]}),
            "implicit",
        ),
        (json.dumps({**document, "id_token_signed_response_alg": "none"}), "alg none"),
        (
            json.dumps({**document, "redirect_uris": [*document["redirect_uris"], "https://a.example/cb"]}),
            "sector",
        ),
        ("[1, 2]", "JSON object"),
        ("{not json", "cannot read client metadata from standard input"),
    ):
        refused = tessera(env, "client", "create", "--metadata-file", "-", stdin=stdin)
        assert refused.returncode == 2, refused.stderr
        assert error in refused.stderr and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    missing = tessera(env, "client", "create", "--metadata-file", str(tmp_path / "absent.json"))
    assert missing.returncode == 2 and "absent.json" in missing.stderr
    no_name = tessera(env, "client", "create", "--scope", "openid")
    assert no_name.returncode == 2 and "--name" in no_name.stderr and "--metadata-file" in no_name.stderr
    listed = json_of(tessera(env, "client", "list"))
    assert {c["client_id"] for c in listed} == {created["client_id"], public["client_id"]}
