"""A resource server's validator always names its audience; accepting any is explicit (the review
of RFC 8707 found ``audience=None`` silently accepting every API's tokens)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from shared.errors import InvalidToken
from shared.jwt_validation import ANY_AUDIENCE, KeySource, TokenValidator


class _Keys(KeySource):
    def __init__(self, key: Any) -> None:
        self._key = key

    async def key(self, kid: str) -> jwt.PyJWK | None:
        return self._key if kid == "k" else None


@pytest.mark.parametrize("audience", [None, "", ()])
def test_an_unnamed_audience_is_refused(audience: Any) -> None:
    with pytest.raises(ValueError, match="name the audience"):
        TokenValidator(issuer="https://as.example", audience=audience, keys=_Keys(None))


async def test_any_audience_only_when_asked_and_a_tuple_matches_each_name() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    public = jwt.PyJWK.from_dict(
        {**jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True), "alg": "ES256"}
    )

    def token(aud: str) -> str:
        claims = {
            "iss": "https://as.example",
            "sub": "u",
            "client_id": "c",
            "aud": aud,
            "exp": 2**31,
            "iat": 1,
            "jti": aud,
        }
        return jwt.encode(claims, private, algorithm="ES256", headers={"kid": "k", "typ": "at+jwt"})

    keys = _Keys(public)
    named = TokenValidator(issuer="https://as.example", audience=("https://a.example", "general"), keys=keys)
    assert (await named.validate(token("https://a.example")))["aud"] == "https://a.example"
    assert (await named.validate(token("general")))["aud"] == "general"
    with pytest.raises(InvalidToken, match="not meant for this resource server"):
        await named.validate(token("https://b.example"))
    anything = TokenValidator(issuer="https://as.example", audience=ANY_AUDIENCE, keys=keys)
    assert (await anything.validate(token("https://b.example")))["aud"] == "https://b.example"
