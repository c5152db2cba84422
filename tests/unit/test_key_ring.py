"""Signing-key states derived from activation times alone (next -> active -> retired -> expired)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from auth_server import signing
from auth_server.crypto import KeyEncryption
from auth_server.signing import KeyRing

KEK = KeyEncryption(b"\x01" * 32)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_states_follow_activation_times() -> None:
    first = signing.generate("ES256", KEK, T0)
    second = signing.generate("ES256", KEK, T0 + timedelta(hours=1))
    ring = KeyRing(KEK, access_token_ttl=600)
    ring.load([second, first])

    before = T0 + timedelta(minutes=30)
    assert ring.active(before).kid == first.kid
    assert {s.kid: s.state for s in ring.statuses(before)} == {first.kid: "active", second.kid: "next"}
    assert len(ring.jwks(before)["keys"]) == 2

    after = T0 + timedelta(hours=1, minutes=5)
    assert ring.active(after).kid == second.kid
    assert {s.kid: s.state for s in ring.statuses(after)} == {first.kid: "retired", second.kid: "active"}
    assert len(ring.jwks(after)["keys"]) == 2  # tokens signed by the first key may still be live

    later = T0 + timedelta(hours=1, minutes=12)  # past supersession + token lifetime + leeway
    assert {s.kid: s.state for s in ring.statuses(later)}[first.kid] == "expired"
    assert [k["kid"] for k in ring.jwks(later)["keys"]] == [second.kid]


def test_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 7638 §3.1 example key
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert signing.thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
