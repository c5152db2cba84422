"""RFC 6749 §5.2 / RFC 6750 §3 error rendering."""

from __future__ import annotations

import json

from shared.error_middleware import json_error
from shared.errors import InsufficientScope, InvalidClient, InvalidGrant, InvalidToken


def test_oauth_error_body_and_headers() -> None:
    response = json_error(InvalidGrant("The code has expired."))
    assert response.status == 400
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert isinstance(response.body, bytes)
    assert json.loads(response.body) == {
        "error": "invalid_grant",
        "error_description": "The code has expired.",
    }


def test_invalid_client_challenges_basic() -> None:
    response = json_error(InvalidClient("nope"))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_bearer_errors_follow_rfc6750() -> None:
    token = json_error(InvalidToken("The token expired"))
    assert token.status == 401
    assert token.headers["WWW-Authenticate"] == (
        'Bearer realm="tessera", error="invalid_token", error_description="The token expired"'
    )
    scope = json_error(InsufficientScope("Needs photos:read", scope="photos:read"))
    assert scope.status == 403
    assert 'error="insufficient_scope"' in scope.headers["WWW-Authenticate"]
    assert 'scope="photos:read"' in scope.headers["WWW-Authenticate"]


def test_descriptions_keep_to_the_rfc_6749_character_set() -> None:
    error = InvalidGrant("response_type 'x\"\\\u00e9' and\r\nSet-Cookie: a=b" + "z" * 500)
    assert all(c == " " or ("!" <= c <= "~" and c not in '"\\') for c in error.description)
    assert len(error.description) <= 300
