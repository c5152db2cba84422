"""The pure rules of two-step sign-in and the sessions list (issue 18): TOTP's window (RFC 6238),
recovery codes as typed, the passkeys' relying party, and browsers named in plain words."""

from __future__ import annotations

import pyotp
import pytest

from auth_server.devices import describe
from auth_server.two_step import recovery, totp
from auth_server.two_step.passkeys import RelyingParty


@pytest.mark.parametrize(
    ("agent", "named"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
            ("Edge", "Windows"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
            " Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI Language/zh_CN",
            ("WeChat", "iPhone"),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
            " Version/18.0 Safari/605.1.15",
            ("Safari", "macOS"),
        ),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0", ("Firefox", "Linux")),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/130.0 Mobile Safari/537.36",
            ("Chrome", "Android"),
        ),
        ("Python/3.11 aiohttp/3.14", ("Python", None)),
        ("something else", (None, None)),
        (None, (None, None)),
    ],
)
def test_browsers_and_systems_in_plain_words(agent: str | None, named: tuple[str | None, str | None]) -> None:
    assert describe(agent) == named


@pytest.mark.parametrize(
    ("issuer", "rp_id", "origin"),
    [
        ("https://id.example.com", "id.example.com", "https://id.example.com"),
        ("https://id.example.com:443/auth", "id.example.com", "https://id.example.com"),
        ("https://id.example.com:8443", "id.example.com", "https://id.example.com:8443"),
        ("http://localhost:8000", "localhost", "http://localhost:8000"),
    ],
)
def test_the_relying_party_is_the_issuers_host_and_origin(issuer: str, rp_id: str, origin: str) -> None:
    """Passkeys (auth_server/two_step/passkeys.py): RP ID = the issuer's host, origin = its origin."""
    party = RelyingParty.of(issuer, "Tessera")
    assert (party.rp_id, party.origin) == (rp_id, origin)


def test_a_code_matches_its_own_step_within_one_step_either_side() -> None:
    secret = totp.new_secret()
    now = 1_800_000_015.0  # 15 s into a step
    step = int(now) // totp.STEP
    for offset in (-2, -1, 0, 1, 2):
        code = pyotp.TOTP(secret).at(now + offset * totp.STEP)
        expected = step + offset if abs(offset) <= 1 else None
        assert totp.matching_step(secret, code, now=now) == expected, offset
    code = pyotp.TOTP(secret).at(now)
    assert totp.matching_step(secret, f"{code[:3]} {code[3:]}", now=now) == step  # typed with a space
    assert totp.matching_step(secret, "12345", now=now) is None
    assert totp.matching_step(secret, "abcdef", now=now) is None


def test_recovery_codes_are_random_and_read_loosely() -> None:
    codes = recovery.new_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(c) == 19 and c.count("-") == 3 for c in codes)
    assert recovery.normal("ABCD-EFGH-JKMN-PQRS") == "abcdefghjkmnpqrs"
    assert recovery.normal(" abcd efgh jkmn pqrs ") == "abcdefghjkmnpqrs"
    assert recovery.normal("oooo-iiii-llll-0000") == "0000111111110000"  # look-alikes
    assert recovery.normal("abcd-efgh-jkmn-pqr") is None  # one short
    assert recovery.normal("abcd-efgh-jkmn-pqru") is None  # U is not in the alphabet
    assert recovery.code_hash(codes[0]) == recovery.code_hash(codes[0].upper().replace("-", " "))
