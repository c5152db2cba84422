"""The verified-token cache (issue 19): compact, and what comes out is what went in."""

from __future__ import annotations

import time

from shared.token_cache import MAX_SHAPES, VerifiedTokens, fingerprint


def test_claims_come_back_equal_and_apart_from_the_cache() -> None:
    cache = VerifiedTokens(10)
    claims = {
        "iss": "https://i",
        "sub": "u",
        "aud": ["a", "b"],
        "cnf": {"jkt": "k"},
        "exp": 9,
        "scope": "x y",
    }
    cache.put(fingerprint("t"), claims, until=time.time() + 60)
    got = cache.get(fingerprint("t"))
    assert got == claims and list(got) == list(claims)
    assert got is not claims
    got["sub"] = "someone else"
    assert cache.get(fingerprint("t")) == claims
    assert cache.get(fingerprint("other")) is None


def test_what_tokens_repeat_is_kept_once_and_the_tables_are_bounded() -> None:
    cache = VerifiedTokens(1000)
    until = time.time() + 60
    for i in range(300):
        # the issuer's strings are new objects each time, as JSON decoding makes them
        cache.put(
            fingerprint(str(i)), {"iss": "".join(["https://", "i"]), "jti": str(i), f"c{i}": 1}, until=until
        )
    first, last = cache.get(fingerprint("0")), cache.get(fingerprint("299"))
    assert first is not None and last is not None
    assert first["iss"] is last["iss"]  # one string for every token
    assert len(cache._shapes) <= MAX_SHAPES  # 300 shapes were offered: bounded, the newest kept
    assert ("iss", "jti", "c299") in cache._shapes
    assert last == {"iss": "https://i", "jti": "299", "c299": 1}
