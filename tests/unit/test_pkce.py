"""RFC 7636: S256 only, challenge and verifier syntax, and who must use PKCE (RFC 9700 §2.1.1).

The /token side (the verifier matched against the code's challenge, the downgrade rule) runs as the
code is redeemed: ``tests/integration/test_authorization_code_refusals.py``."""

from __future__ import annotations

import pytest

from auth_server import pkce
from auth_server.clients import Client
from shared.errors import InvalidRequest

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


def test_a_verifier_answers_its_challenge() -> None:
    assert pkce.challenge_of(VERIFIER) == CHALLENGE
    assert pkce.challenge_of("a" * 43) == pkce.s256("a" * 43)  # the shortest, and the longest
    assert pkce.challenge_of("~" * 128) == pkce.s256("~" * 128)
    assert pkce.challenge_of(VERIFIER[:-1] + "l") != CHALLENGE


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, VERIFIER + "!", "é" * 50, ""])
def test_a_malformed_verifier_answers_no_challenge(verifier: str) -> None:
    """RFC 7636 §4.1: 43 to 128 unreserved characters; anything else matches no code."""
    assert pkce.challenge_of(verifier) is None


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
