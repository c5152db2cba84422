"""The key-encryption keyring: AES-256-GCM under the current KEK, older KEKs for decryption only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auth_server.crypto import KeyEncryption, UnwrapError, kek_id_of
from auth_server.settings import Settings
from shared.config import ConfigError

A, B, C = b"A" * 32, b"B" * 32, b"C" * 32
SECRET = b"a private key, in DER"


def test_kek_id_is_a_keyed_domain_separated_fingerprint() -> None:
    ids = {kek_id_of(k) for k in (A, B, C)}
    assert len(ids) == 3
    assert all(len(i) == 16 and set(i) <= set("0123456789abcdef") for i in ids)
    assert kek_id_of(A) == kek_id_of(bytes(A)) == hmac.new(A, b"tessera-kek-id", "sha256").hexdigest()[:16]
    assert kek_id_of(A) != hashlib.sha256(A).hexdigest()[:16]  # not a bare hash of the key


def test_round_trip_under_the_current_key() -> None:
    ring = KeyEncryption(A)
    blob, used = ring.encrypt(SECRET, "kid-1")
    assert used == ring.current_id == kek_id_of(A)
    assert SECRET not in blob
    assert ring.decrypt(blob, "kid-1", used) == SECRET
    assert ring.unwrap(blob, "kid-1") == (SECRET, used)  # no recorded id: tried, and found
    # a fresh nonce each time
    assert ring.encrypt(SECRET, "kid-1").blob != blob


def test_the_kid_is_bound_as_associated_data() -> None:
    ring = KeyEncryption(A)
    blob, used = ring.encrypt(SECRET, "kid-1")
    with pytest.raises(UnwrapError, match="does not authenticate"):
        ring.decrypt(blob, "kid-2", used)
    with pytest.raises(UnwrapError, match="none of the configured"):
        ring.decrypt(blob, "kid-2")


def test_previous_keys_decrypt_but_never_encrypt() -> None:
    old_blob, old_id = KeyEncryption(A).encrypt(SECRET, "kid")
    ring = KeyEncryption(B, [A])
    assert ring.ids == (kek_id_of(B), kek_id_of(A))
    assert ring.unwrap(old_blob, "kid", old_id) == (SECRET, kek_id_of(A))
    assert ring.unwrap(old_blob, "kid") == (SECRET, kek_id_of(A))  # unrecorded: each key in turn
    new_blob, new_id = ring.encrypt(SECRET, "kid")
    assert new_id == kek_id_of(B)
    assert KeyEncryption(B).decrypt(new_blob, "kid", new_id) == SECRET
    with pytest.raises(InvalidTag):  # A alone cannot read what the ring wrote
        KeyEncryption(A).decrypt(new_blob, "kid")


def test_a_recorded_id_is_authoritative() -> None:
    blob, _ = KeyEncryption(A).encrypt(SECRET, "kid")
    ring = KeyEncryption(B, [A])
    # labelled with B although A wrapped it: not silently opened with another key
    with pytest.raises(UnwrapError, match=f"under its key-encryption key {kek_id_of(B)}"):
        ring.decrypt(blob, "kid", kek_id_of(B))
    # labelled with a KEK that is not configured: named, with the configured ones
    with pytest.raises(UnwrapError) as raised:
        KeyEncryption(B).decrypt(blob, "kid", kek_id_of(A))
    assert raised.value.reason == (
        f"it is wrapped under key-encryption key {kek_id_of(A)}, which is not configured"
        f" (configured: {kek_id_of(B)} (current))"
    )


def test_blobs_from_before_key_versions_still_open() -> None:
    """The format written before the keyring: nonce + AES-GCM(kek, der, aad=kid), no id recorded."""
    nonce = os.urandom(12)
    legacy = nonce + AESGCM(A).encrypt(nonce, SECRET, b"kid")
    assert KeyEncryption(A).unwrap(legacy, "kid") == (SECRET, kek_id_of(A))
    assert KeyEncryption(B, [C, A]).unwrap(legacy, "kid") == (SECRET, kek_id_of(A))
    with pytest.raises(UnwrapError, match=f"{kek_id_of(B)} \\(current\\), {kek_id_of(C)}"):
        KeyEncryption(B, [C]).decrypt(legacy, "kid")


def test_errors_hold_no_key_material() -> None:
    blob, _ = KeyEncryption(A).encrypt(SECRET, "kid")
    with pytest.raises(UnwrapError) as raised:
        KeyEncryption(B, [C]).decrypt(blob, "kid")
    text = str(raised.value)
    for secret in (A, B, C, SECRET):
        assert secret.decode() not in text and base64.b64encode(secret).decode() not in text


def test_the_current_key_listed_as_previous_too_is_harmless() -> None:
    ring = KeyEncryption(A, [A, B, B])
    assert ring.ids == (kek_id_of(A), kek_id_of(B))


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


PROD = {
    "TESSERA_ISSUER": "https://auth.example.com",
    "TESSERA_DATABASE_URL": "postgresql://tessera@db/tessera",
    "TESSERA_REDIS_URL": "redis://cache:6379/0",
    "TESSERA_KEY_ENCRYPTION_KEY": _b64(B),
}


def test_previous_keys_setting() -> None:
    assert Settings.from_env(PROD).key_encryption_keys_previous == ()
    both = Settings.from_env(
        {**PROD, "TESSERA_KEY_ENCRYPTION_KEYS_PREVIOUS": f" {_b64(A)} ,{_b64(C).rstrip('=')},"}
    )
    assert both.key_encryption_keys_previous == (A, C)
    assert both.key_encryption_key == B


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("%%%", "must be base64 (entry 1)"),
        (f"{_b64(A)},{_b64(b'short')}", "must decode to 32 bytes, got 5 (entry 2)"),
    ],
)
def test_bad_previous_keys_name_the_variable(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**PROD, "TESSERA_KEY_ENCRYPTION_KEYS_PREVIOUS": value})
    assert str(raised.value) == f"TESSERA_KEY_ENCRYPTION_KEYS_PREVIOUS {problem}"
