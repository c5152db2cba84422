"""One-time recovery codes: for a user who lost her authenticator app or her passkey.

Ten codes are made when two-step sign-in is turned on (and afresh when she asks), shown to her
once, and stored as their SHA-256 only (:mod:`auth_server.stores.two_step`). Each has 80 random
bits, in Crockford's base32 (no I, L, O or U: nothing to misread), written ``xxxx-xxxx-xxxx-xxxx``:
a fast hash is enough for that much entropy (as for Tessera's other random secrets), and a stolen
table of hashes gives nothing back. Typed back, case, spaces, hyphens and the look-alike letters
(O for 0, I and L for 1) do not matter. Each can be used once.
"""

from __future__ import annotations

import secrets

from auth_server.crypto import digest

COUNT = 10
LENGTH = 16  # characters of 5 bits: 80 bits
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case
_LOOKALIKES = str.maketrans({"o": "0", "i": "1", "l": "1"})


def new_codes(count: int = COUNT) -> list[str]:
    """Fresh codes, as the user is shown them."""
    return [_shown("".join(secrets.choice(ALPHABET) for _ in range(LENGTH))) for _ in range(count)]


def _shown(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, LENGTH, 4))


def normal(code: str) -> str | None:
    """A code as typed, in the one form its hash is of; ``None`` if it cannot be a code."""
    plain = "".join(code.split()).replace("-", "").lower().translate(_LOOKALIKES)
    if len(plain) != LENGTH or any(c not in ALPHABET for c in plain):
        return None
    return plain


def code_hash(code: str) -> bytes | None:
    """What is stored for ``code`` (and looked up when it is typed back); ``None`` if not a code."""
    plain = normal(code)
    return None if plain is None else digest(plain)
