"""OpenID Connect client metadata rules, one test (or a few) per rule: Dynamic Registration 1.0 §2,
Core §8.1 (pairwise sectors), RP-Initiated Logout 1.0 §3.1, Back-Channel Logout 1.0 §2.2, and the
RFC 7591 §2 document reader behind ``tessera client create --metadata-file``."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from auth_server.registration import (
    ClientMetadata,
    RegistrationError,
    canonical_response_types,
    check_sector_document,
    metadata_from_document,
    redirect_uri_sector,
    sector_identifier,
    validate_openid_metadata,
)
from tests.support.resolvers import OneAddress

RP = ClientMetadata(
    client_name="Photo Printer",
    redirect_uris=["https://printer.example/callback"],
    grant_types=["authorization_code", "implicit", "refresh_token"],
    scope=["openid", "profile", "photos:read"],
)


def _check(*, development: bool = False, **changes: Any) -> None:
    validate_openid_metadata(dataclasses.replace(RP, **changes), development=development)


def _refused(match: str, *, development: bool = False, **changes: Any) -> RegistrationError:
    with pytest.raises(RegistrationError, match=match) as refused:
        _check(development=development, **changes)
    return refused.value


def test_the_defaults_pass() -> None:
    _check()
    assert RP.subject_type == "public" and RP.id_token_signed_response_alg == "RS256"
    assert RP.response_types is None and RP.userinfo_signed_response_alg is None


# response_types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response_types", [["code"], ["token"], ["id_token"], ["token id_token"], ["id_token code", "code"]]
)
def test_supported_response_types_in_any_order(response_types: list[str]) -> None:
    _check(response_types=response_types)


def test_response_types_are_stored_in_canonical_form_once() -> None:
    assert canonical_response_types(["id_token code", "code", "code id_token", "token id_token"]) == (
        "code id_token",
        "code",
        "id_token token",
    )


@pytest.mark.parametrize("value", ["code token", "code id_token token", "none", "code code", ""])
def test_unsupported_response_types_are_refused(value: str) -> None:
    _refused("unsupported response type", response_types=[value])


def test_an_empty_response_types_list_is_refused() -> None:
    _refused("must not be empty", response_types=[])


@pytest.mark.parametrize(
    ("response_type", "grant_types", "missing"),
    [
        ("code", ["implicit"], "authorization_code"),
        ("id_token", ["authorization_code"], "implicit"),
        ("id_token token", ["authorization_code"], "implicit"),
        ("code id_token", ["authorization_code"], "implicit"),
        ("code id_token", ["implicit"], "authorization_code"),
    ],
)
def test_a_response_type_needs_its_grant_types(
    response_type: str, grant_types: list[str], missing: str
) -> None:
    error = _refused(
        f"needs the grant type.*{missing}", response_types=[response_type], grant_types=grant_types
    )
    assert error.error == "invalid_client_metadata"


@pytest.mark.parametrize("response_type", ["id_token", "id_token token", "code id_token"])
def test_an_id_token_needs_the_openid_scope(response_type: str) -> None:
    _refused("openid", response_types=[response_type], scope=["photos:read"])


def test_code_and_token_need_no_openid_scope() -> None:
    _check(response_types=["code", "token"], scope=["photos:read"])


# post_logout_redirect_uris ----------------------------------------------------------------------


def test_post_logout_redirect_uris_follow_the_redirect_uri_rules() -> None:
    _check(post_logout_redirect_uris=["https://printer.example/", "http://localhost:9000/?bye=1"])
    for uri in ("https://printer.example/#top", "http://printer.example/", "/home", "https://*.example/"):
        error = _refused("post_logout_redirect_uri", post_logout_redirect_uris=[uri])
        assert error.error == "invalid_client_metadata"


def test_private_use_post_logout_schemes_only_for_public_clients() -> None:
    _refused("post_logout_redirect_uri", post_logout_redirect_uris=["com.example.app:/bye"])
    _check(post_logout_redirect_uris=["com.example.app:/bye"], token_endpoint_auth_method="none")


# subject_type and the sector --------------------------------------------------------------------


def test_subject_type_is_public_or_pairwise() -> None:
    _check(subject_type="pairwise")
    _refused("subject_type", subject_type="private")


def test_a_pairwise_sector_is_the_one_host_of_the_redirect_uris() -> None:
    uris = ["https://Printer.Example/callback", "https://printer.example:8443/other"]
    assert redirect_uri_sector(uris) == "printer.example"
    _check(subject_type="pairwise", redirect_uris=uris)


@pytest.mark.parametrize(
    "redirect_uris",
    [
        ["https://printer.example/cb", "https://print.example/cb"],
        ["com.example.printer:/cb"],
        [],
    ],
)
def test_pairwise_without_one_host_needs_a_sector_identifier_uri(redirect_uris: list[str]) -> None:
    public = ["none"] if redirect_uris == ["com.example.printer:/cb"] else []
    changes: dict[str, Any] = {"token_endpoint_auth_method": public[0]} if public else {}
    _refused("sector_identifier_uri", subject_type="pairwise", redirect_uris=redirect_uris, **changes)
    _check(
        subject_type="pairwise",
        redirect_uris=redirect_uris,
        sector_identifier_uri="https://sectors.printer.example/uris.json",
        **changes,
    )


@pytest.mark.parametrize(
    "uri",
    [
        "http://sectors.printer.example/uris.json",
        "https://127.0.0.1/uris.json",
        "https://10.0.0.7/uris.json",
        "https://localhost/uris.json",
        "https://169.254.169.254/latest",
    ],
)
def test_a_sector_identifier_uri_is_public_https_for_a_production_issuer(uri: str) -> None:
    for subject_type in ("pairwise", "public"):
        _refused("sector_identifier_uri", subject_type=subject_type, sector_identifier_uri=uri)


def test_a_development_issuer_may_fetch_sector_documents_from_loopback_http() -> None:
    _check(subject_type="pairwise", sector_identifier_uri="http://127.0.0.1:9000/uris.json", development=True)
    _refused(
        "sector_identifier_uri",
        subject_type="pairwise",
        sector_identifier_uri="http://169.254.169.254/uris.json",
        development=True,
    )


def test_a_sector_document_lists_every_redirect_uri() -> None:
    uri = "https://sectors.printer.example/uris.json"
    redirects = ["https://printer.example/cb", "https://print.example/cb"]
    check_sector_document(uri, [*redirects, "https://elsewhere.example/cb"], redirects)
    with pytest.raises(RegistrationError, match=re.escape("https://print.example/cb")) as missing:
        check_sector_document(uri, redirects[:1], redirects)
    assert missing.value.error == "invalid_redirect_uri"
    for document in ({"redirect_uris": redirects}, [1, 2], "https://printer.example/cb", None):
        with pytest.raises(RegistrationError, match="JSON array"):
            check_sector_document(uri, document, redirects)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254"])
async def test_a_sector_document_is_fetched_through_the_guard(address: str) -> None:
    metadata = dataclasses.replace(
        RP, subject_type="pairwise", sector_identifier_uri="https://sectors.printer.example/uris.json"
    )
    with pytest.raises(RegistrationError, match=f"sector_identifier_uri: refused to fetch .*{address}"):
        await sector_identifier(metadata, development=False, resolver=OneAddress(address))


async def test_no_sector_for_a_public_client_without_a_sector_identifier_uri() -> None:
    assert await sector_identifier(RP, development=False) is None
    pairwise = dataclasses.replace(RP, subject_type="pairwise")
    assert await sector_identifier(pairwise, development=False) == "printer.example"


# signing algorithms -----------------------------------------------------------------------------


def test_signing_algorithms_are_those_tessera_signs_with() -> None:
    _check(id_token_signed_response_alg="ES256", userinfo_signed_response_alg="RS256")
    _check(userinfo_signed_response_alg="ES256")
    _refused("id_token_signed_response_alg must be one of RS256, ES256", id_token_signed_response_alg="HS256")
    _refused("userinfo_signed_response_alg", userinfo_signed_response_alg="PS256")


def test_unsigned_tokens_are_refused() -> None:
    _refused("alg none", id_token_signed_response_alg="none")
    _refused("alg none", userinfo_signed_response_alg="none")


# backchannel_logout_uri -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://printer.example/backchannel-logout",
        "https://printer.example/logout?tenant=7",
        "http://localhost:9000/backchannel-logout",
        "http://127.0.0.1:9000/backchannel-logout",
    ],
)
def test_acceptable_backchannel_logout_uris(uri: str) -> None:
    _check(backchannel_logout_uri=uri, backchannel_logout_session_required=True)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("https://printer.example/logout#frag", "fragment"),
        ("https://printer.example/logout#", "fragment"),
        ("http://printer.example/logout", "https"),
        ("/logout", "https"),
        ("printer.example/logout", "https"),
        ("https:///logout", "https"),
        ("https://user:pw@printer.example/logout", "user information"),
        ("https://printer.example/log out", "whitespace"),
    ],
)
def test_unacceptable_backchannel_logout_uris(uri: str, why: str) -> None:
    _refused(f"backchannel_logout_uri.*{why}", backchannel_logout_uri=uri)


# default_max_age --------------------------------------------------------------------------------


def test_default_max_age_is_a_whole_number_of_seconds() -> None:
    _check(default_max_age=0)
    _check(default_max_age=3600, require_auth_time=True)
    for value in (-1, 2**31, True, 1.5, "3600"):
        _refused("default_max_age", default_max_age=value)


# logo_uri, client_uri, policy_uri, tos_uri ------------------------------------------------------


@pytest.mark.parametrize("field", ["logo_uri", "client_uri", "policy_uri", "tos_uri"])
def test_information_uris_are_https(field: str) -> None:
    def at(uri: str) -> dict[str, Any]:
        return {field: uri}

    _check(**at("https://printer.example/about?lang=zh"))
    _refused(f"{field}.*https", **at("http://printer.example/"))
    _refused(f"{field}.*https", **at("javascript:alert(1)"))
    _refused(f"{field}.*fragment", **at("https://printer.example/#about"))
    _refused(f"{field}.*https", **at("http://localhost:9000/"))
    _check(development=True, **at("http://localhost:9000/"))


# the RFC 7591 document ----------------------------------------------------------------------------


def test_a_document_in_rfc_7591_names() -> None:
    metadata = metadata_from_document(
        {
            "client_name": "Photo Printer",
            "redirect_uris": ["https://printer.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "openid  profile photos:read",
            "subject_type": "pairwise",
            "backchannel_logout_uri": "https://printer.example/bcl",
            "backchannel_logout_session_required": True,
            "default_max_age": 600,
            "require_pkce": True,
            "logo_uri": None,  # null is the same as left out
        }
    )
    assert metadata.scope == ("openid", "profile", "photos:read")
    assert metadata.subject_type == "pairwise" and metadata.default_max_age == 600
    assert metadata.backchannel_logout_session_required is True and metadata.logo_uri is None
    assert metadata.token_endpoint_auth_method == "client_secret_basic"


def test_a_document_takes_rfc_7591_defaults() -> None:
    metadata = metadata_from_document({"client_name": "Minimal", "scope": "openid"})
    assert metadata.grant_types == ("authorization_code",) and metadata.redirect_uris == ()
    assert metadata.response_types is None and metadata.id_token_signed_response_alg == "RS256"


def test_unknown_fields_are_refused_unless_ignored() -> None:
    with pytest.raises(RegistrationError, match="unknown client metadata: redirect_uri, client_id"):
        metadata_from_document({"client_name": "X", "redirect_uri": "https://a.example/", "client_id": "x"})
    ignored = metadata_from_document({"client_name": "X", "software_id": "abc"}, ignore_unknown=True)
    assert ignored.client_name == "X"


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("redirect_uris", "https://printer.example/cb", "array of strings"),
        ("grant_types", ["authorization_code", 3], "array of strings"),
        ("scope", ["openid"], "string"),
        ("client_name", 7, "string"),
        ("require_auth_time", "yes", "true or false"),
        ("default_max_age", "600", "whole number"),
        ("default_max_age", 1.0, "whole number"),
        ("jwks", [], "JSON object"),
    ],
)
def test_fields_of_the_wrong_json_type_are_refused(field: str, value: Any, match: str) -> None:
    with pytest.raises(RegistrationError, match=f"{field} must be .*{match}"):
        metadata_from_document({"client_name": "X", field: value})
