"""Passkeys: WebAuthn Level 3 ceremonies with ``webauthn`` (py_webauthn), Tessera as the relying party.

The relying party is the issuer: its RP ID is the issuer's host, its origin the issuer's origin
(scheme, host and port), so a passkey made here works only here and no other site can get a
signature from it (phishing resistance). Passkeys are discoverable credentials (resident keys), so
a user can sign in with one without typing her username; her user handle is her user id (16
random bytes, not her name). No attestation is asked for (``none``): Tessera trusts any
authenticator, and keeps only the public key, the signature counter, the transports and whether
it is backed up (synced).

* Signing in with a passkey instead of the password requires user verification (a PIN or a
  fingerprint on the device): the passkey is then two factors on its own.
* As the second step after the password, user presence is enough (the password was the other
  factor); verification is preferred.

Every challenge is 32 random bytes, kept server-side in Redis for :data:`CHALLENGE_TTL` seconds and
taken once (:mod:`auth_server.stores.sign_in_steps`). A signature counter that goes backwards
(a cloned authenticator) is refused by the library.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor

# ``webauthn`` (and the cbor2 and pyOpenSSL it brings, some 5 MiB) is imported by the functions
# that use it, when a passkey is first registered or used, not by every server process at start.

CHALLENGE_TTL = 300  # seconds a ceremony may take (the browser's own timeout is shorter)
TIMEOUT_MS = 120_000  # what the browser is told a ceremony may take
MAX_NAME = 60  # characters of a passkey's name
MAX_CREDENTIAL_JSON = 16_384  # bytes of a credential as the page sends it back


class PasskeyRefused(Exception):
    """The browser's answer does not verify (wrong origin or challenge, a bad signature, a
    counter gone backwards, a malformed credential). Its message is for logs, never shown."""


@dataclass(frozen=True, slots=True)
class RelyingParty:
    rp_id: str  # the issuer's host
    origin: str  # the issuer's origin: scheme://host[:port]
    name: str  # what the authenticator shows (the site's name)

    @classmethod
    def of(cls, issuer: str, name: str) -> RelyingParty:
        """The relying party of this issuer: its host, and its origin as a browser writes it (a
        default port left out: ``https://id.example:443`` is ``https://id.example``)."""
        parts = urlsplit(issuer)
        netloc = parts.netloc.rpartition("@")[2]
        if (parts.scheme, parts.port) in (("https", 443), ("http", 80)):
            netloc = netloc.rsplit(":", 1)[0]
        return cls(rp_id=parts.hostname or "", origin=f"{parts.scheme}://{netloc}", name=name)


@dataclass(frozen=True, slots=True)
class NewPasskey:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    backed_up: bool


def new_challenge() -> bytes:
    return secrets.token_bytes(32)


def registration_options(
    rp: RelyingParty,
    challenge: bytes,
    *,
    user_id: uuid.UUID,
    username: str,
    existing: list[tuple[bytes, tuple[str, ...]]],
) -> str:
    """``PublicKeyCredentialCreationOptions`` as JSON (base64url for bytes): a discoverable
    credential for this user, none of her existing ones again."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import (
        AttestationConveyancePreference,
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=user_id.bytes,
        user_name=username,
        user_display_name=username,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[_descriptor(cid, transports) for cid, transports in existing],
    )
    return str(options_to_json(options))


def verify_registration(rp: RelyingParty, credential: str, challenge: bytes) -> NewPasskey:
    """The passkey the browser made, once its answer verifies; else :class:`PasskeyRefused`."""
    from webauthn import verify_registration_response
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.structs import AuthenticatorTransport

    _bounded(credential)
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=False,
        )
        transports = json.loads(credential).get("response", {}).get("transports") or []
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError) as refused:
        raise PasskeyRefused(str(refused)) from None
    known = {t.value for t in AuthenticatorTransport}
    return NewPasskey(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=tuple(t for t in transports if isinstance(t, str) and t in known),
        backed_up=verified.credential_backed_up,
    )


def authentication_options(
    rp: RelyingParty,
    challenge: bytes,
    *,
    allowed: list[tuple[bytes, tuple[str, ...]]] | None,
    user_verification: bool,
) -> str:
    """``PublicKeyCredentialRequestOptions`` as JSON: any passkey of this site (``allowed`` is
    ``None``: the browser offers the discoverable ones), or one of ``allowed``."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=[_descriptor(cid, t) for cid, t in allowed or []],
        user_verification=UserVerificationRequirement.REQUIRED
        if user_verification
        else UserVerificationRequirement.PREFERRED,
    )
    return str(options_to_json(options))


def credential_of(credential: str) -> tuple[bytes, bytes | None]:
    """The credential id an answer names, and the user handle it carries (if any), before it is
    verified (to find the public key to verify it with); :class:`PasskeyRefused` if malformed."""
    from webauthn.helpers import base64url_to_bytes

    _bounded(credential)
    try:
        parsed: Any = json.loads(credential)
        raw_id = base64url_to_bytes(parsed["rawId"])
        handle = parsed.get("response", {}).get("userHandle")
        return raw_id, None if not handle else base64url_to_bytes(handle)
    except (ValueError, TypeError, KeyError, AttributeError) as refused:
        raise PasskeyRefused(f"malformed credential: {refused}") from None


@dataclass(frozen=True, slots=True)
class Assertion:
    """A passkey's verified answer: its new signature counter, and whether it verified its user."""

    sign_count: int
    user_verified: bool


def verify_authentication(
    rp: RelyingParty, credential: str, challenge: bytes, *, public_key: bytes, sign_count: int
) -> Assertion:
    """What the passkey's answer says, once it verifies against the stored public key (user
    presence required; whether the user was verified too is for the caller to require); else
    :class:`PasskeyRefused`."""
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import WebAuthnException

    _bounded(credential)
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=False,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError) as refused:
        raise PasskeyRefused(str(refused)) from None
    return Assertion(int(verified.new_sign_count), bool(verified.user_verified))


def name_of(typed: str) -> str:
    """A passkey's name as the user typed it: trimmed, at most :data:`MAX_NAME` characters, no
    control characters (empty: the page calls it an unnamed passkey)."""
    return " ".join("".join(c for c in typed if c.isprintable()).split())[:MAX_NAME]


def _descriptor(credential_id: bytes, transports: tuple[str, ...]) -> PublicKeyCredentialDescriptor:
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

    known = {t.value: t for t in AuthenticatorTransport}
    return PublicKeyCredentialDescriptor(
        id=credential_id, transports=[known[t] for t in transports if t in known] or None
    )


def _bounded(credential: str) -> None:
    if len(credential.encode("utf-8", "surrogatepass")) > MAX_CREDENTIAL_JSON:
        raise PasskeyRefused("the credential is too large")
