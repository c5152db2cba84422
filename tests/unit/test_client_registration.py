"""Client registration: exact redirect URIs, grant types, auth methods (RFC 6749 §2, §3.1.2; RFC 8252)."""

from __future__ import annotations

from typing import Any

import pytest

from auth_server.registration import RegistrationError, check_redirect_uri, validate_registration

KNOWN = {"photos:read", "photos:write"}


def _register(**overrides: Any) -> None:
    args: dict[str, Any] = {
        "name": "Printer",
        "redirect_uris": ["https://printer.example/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": ["photos:read"],
        "auth_method": "client_secret_basic",
        "known_scopes": KNOWN,
    }
    args.update(overrides)
    validate_registration(**args)


@pytest.mark.parametrize(
    "uri",
    [
        "https://printer.example/cb",
        "http://localhost:9000/cb",
        "http://127.0.0.1:9000/cb",
        "https://printer.example/cb?tenant=1",
    ],
)
def test_acceptable_redirect_uris(uri: str) -> None:
    check_redirect_uri(uri, public=False)


@pytest.mark.parametrize(
    "uri",
    [
        "https://*.printer.example/cb",
        "https://printer.example/cb#x",
        "http://printer.example/cb",
        "/relative/cb",
        "https://user:pw@printer.example/cb",
        "javascript:alert(1)",
        "com.example.app:/cb",  # private-use schemes only for public clients
        "https://printer.example/c b",
    ],
)
def test_unacceptable_redirect_uris(uri: str) -> None:
    with pytest.raises(RegistrationError):
        check_redirect_uri(uri, public=False)


def test_native_app_scheme_for_public_clients() -> None:
    check_redirect_uri("com.example.app:/oauth2redirect", public=True)


def test_registration_rules() -> None:
    _register()
    with pytest.raises(RegistrationError, match="grant type"):
        _register(grant_types=["magic"])
    with pytest.raises(RegistrationError, match="redirect URI"):
        _register(redirect_uris=[])
    with pytest.raises(RegistrationError, match="unknown scope"):
        _register(scope=["admin"])
    with pytest.raises(RegistrationError, match="auth method"):
        _register(auth_method="private_key_jwt_typo")
    with pytest.raises(RegistrationError, match="refresh_token"):
        _register(grant_types=["refresh_token"])
    with pytest.raises(RegistrationError, match="name"):
        _register(name="  ")


def test_errors_carry_their_rfc_7591_code() -> None:
    with pytest.raises(RegistrationError) as bad_uri:
        check_redirect_uri("https://printer.example/cb#x", public=False)
    assert bad_uri.value.error == "invalid_redirect_uri"
    with pytest.raises(RegistrationError) as no_uri:
        _register(redirect_uris=[])
    assert no_uri.value.error == "invalid_redirect_uri"
    with pytest.raises(RegistrationError) as bad_scope:
        _register(scope=["admin"])
    assert bad_scope.value.error == "invalid_client_metadata"


def test_the_label_names_the_uri_checked() -> None:
    expected = r"^post_logout_redirect_uri 'http://printer\.example/'"
    with pytest.raises(RegistrationError, match=expected) as bad:
        check_redirect_uri(
            "http://printer.example/",
            public=False,
            label="post_logout_redirect_uri",
            error="invalid_client_metadata",
        )
    assert bad.value.error == "invalid_client_metadata"
