"""How a sign-in happened, in ID tokens: ``amr`` (RFC 8176) and ``acr`` (OpenID Connect Core §2).

The ``amr`` values Tessera records in a session (and so in its ID tokens):

* ``pwd``: the password;
* ``otp``: a code from an authenticator app (RFC 6238), or one of the one-time recovery codes;
* ``swk``: a passkey (WebAuthn). RFC 8176 says ``hwk`` when the key is known to be held in
  hardware; Tessera asks authenticators for no attestation, so it never knows, and says ``swk``;
* ``mfa``: two factors: a password and a second step, or a passkey that verified the user itself
  (a PIN or a fingerprint on the device: possession and knowledge or inherence, NIST SP 800-63B's
  multi-factor cryptographic authenticator).

Two ``acr`` values, advertised as ``acr_values_supported``: :data:`ACR_PASSWORD` (``1``, one
factor, as ISO/IEC 29115 level 1) and :data:`ACR_MFA` (two-step sign-in). A request's ``acr_values``
(or a client's registered ``default_acr_values``) that lists :data:`ACR_MFA` and not ``1``
demands two-step sign-in (:func:`demands_mfa`); any other value is voluntary (Core §3.1.2.1), and
the ID token says which was met.
"""

from __future__ import annotations

from collections.abc import Iterable

ACR_PASSWORD = "1"  # noqa: S105 - an acr value
ACR_MFA = "urn:tessera:acr:mfa"
ACR_VALUES = (ACR_PASSWORD, ACR_MFA)

PASSWORD = "pwd"  # noqa: S105 - an amr value (RFC 8176 §2)
ONE_TIME_CODE = "otp"
PASSKEY = "swk"
MULTIPLE_FACTORS = "mfa"


def acr_of(amr: Iterable[str]) -> str:
    """The ``acr`` a sign-in with these ``amr`` values meets."""
    return ACR_MFA if MULTIPLE_FACTORS in amr else ACR_PASSWORD


def demands_mfa(acr_values: Iterable[str]) -> bool:
    """Whether the acr values a request (or its client) asks for accept only two-step sign-in."""
    values = set(acr_values)
    return ACR_MFA in values and ACR_PASSWORD not in values


def with_second_step(first: Iterable[str], second: str) -> tuple[str, ...]:
    """The ``amr`` of a sign-in whose first step was ``first`` and whose second step was ``second``."""
    amr = [value for value in first if value != MULTIPLE_FACTORS]
    if second not in amr:
        amr.append(second)
    return (*amr, MULTIPLE_FACTORS)
