"""RFC 7636: S256 only, verifier syntax, and the downgrade rule of RFC 9700 §2.1.1."""

from __future__ import annotations

import pytest

from auth_server import pkce
from auth_server.clients import Client
from shared.errors import InvalidGrant, InvalidRequest

# RFC 7636 Appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def _client(auth_method: str = "client_secret_basic", *, require_pkce: bool = True) -> Client:
    return Client(
        client_id="c",
        client_name="c",
        secret_hash=None,
        redirect_uris=(),
        grant_types=("authorization_code",),
        scope=(),
        token_endpoint_auth_method=auth_method,
        require_pkce=require_pkce,
    )


def test_s256_matches_the_rfc_example() -> None:
    assert pkce.s256(VERIFIER) == CHALLENGE


def test_matching_verifier_passes() -> None:
    pkce.verify(VERIFIER, CHALLENGE)


@pytest.mark.parametrize("verifier", [None, VERIFIER[:-1] + "l", "a" * 42, "a" * 129, VERIFIER + "!"])
def test_bad_verifiers_fail(verifier: str | None) -> None:
    with pytest.raises(InvalidGrant):
        pkce.verify(verifier, CHALLENGE)


def test_verifier_without_challenge_is_a_downgrade() -> None:
    with pytest.raises(InvalidGrant):
        pkce.verify(VERIFIER, None)
    pkce.verify(None, None)


@pytest.mark.parametrize(
    ("challenge", "method"),
    [(CHALLENGE, "plain"), (CHALLENGE, None), (CHALLENGE, "s256"), ("short", "S256"), (None, "S256")],
)
def test_only_well_formed_s256_challenges_are_accepted(challenge: str | None, method: str | None) -> None:
    with pytest.raises(InvalidRequest):
        pkce.check_challenge(_client(), challenge, method)


def test_s256_challenge_is_accepted() -> None:
    pkce.check_challenge(_client(), CHALLENGE, "S256")


def test_pkce_is_required_unless_relaxed_for_a_confidential_client() -> None:
    """Issue 11 defect 9: PKCE by default for every client; relaxed only for a confidential one."""
    for client in (_client(), _client("none"), _client("none", require_pkce=False)):
        with pytest.raises(InvalidRequest, match="PKCE"):
            pkce.check_challenge(client, None, None)
    pkce.check_challenge(_client(require_pkce=False), None, None)
