"""The rules of back-channel logout that need no server: the retry schedule, and what a logout
token says (Back-Channel Logout 1.0 §2.4)."""

from __future__ import annotations

from auth_server.endpoints.end_session import hint_client, with_state
from auth_server.oidc.logout import BACKCHANNEL_EVENT, logout_token_claims
from auth_server.stores.logout_deliveries import Backoff, Delivery


def test_retries_double_from_five_seconds_and_end() -> None:
    backoff = Backoff()
    delays = [backoff.delay(failed) for failed in range(1, 12)]
    assert delays[:5] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert delays[8] == 900.0  # capped
    assert delays[9:] == [None, None]  # ten attempts in all, then given up
    assert 30 * 60 < sum(d for d in delays if d is not None) < 60 * 60


def test_a_logout_token_says_who_and_which_session_and_nothing_more() -> None:
    delivery = Delivery(client_id="client-1", sub="pairwise-sub", sid="sid-1")
    claims = logout_token_claims("https://auth.example", delivery, now=1_700_000_000)
    jti = claims.pop("jti")
    assert len(jti) >= 32
    assert claims == {
        "iss": "https://auth.example",
        "aud": "client-1",
        "iat": 1_700_000_000,
        "exp": 1_700_000_120,
        "events": {BACKCHANNEL_EVENT: {}},
        "sub": "pairwise-sub",
        "sid": "sid-1",
    }
    again = logout_token_claims("https://auth.example", delivery, now=1_700_000_000)
    assert again["jti"] != jti  # a fresh token at every attempt


def test_a_session_without_a_sid_is_named_by_sub_alone() -> None:
    claims = logout_token_claims("https://auth.example", Delivery("c", "s", None), now=1)
    assert "sid" not in claims and claims["sub"] == "s" and "nonce" not in claims


def test_state_is_added_to_the_registered_query() -> None:
    assert with_state("https://rp.example/bye", None) == "https://rp.example/bye"
    assert with_state("https://rp.example/bye", "a b") == "https://rp.example/bye?state=a+b"
    assert with_state("https://rp.example/bye?x=1", "s") == "https://rp.example/bye?x=1&state=s"


def test_the_hints_client_is_its_azp_or_only_audience() -> None:
    assert hint_client({"aud": "a"}) == "a"
    assert hint_client({"aud": ["a"]}) == "a"
    assert hint_client({"aud": ["a", "b"]}) is None
    assert hint_client({"aud": ["a", "b"], "azp": "b"}) == "b"
    assert hint_client({"aud": ["a"], "azp": "z"}) is None
