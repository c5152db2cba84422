"""Reading ``TESSERA_*`` environment variables: one way, failing fast with the variable's name.

Each process builds its own frozen settings object from these helpers exactly once, at start.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from urllib.parse import urlsplit

PREFIX = "TESSERA_"


class ConfigError(ValueError):
    """A setting is missing or malformed. The message names the variable."""


class Env:
    """A typed view of the environment, restricted to one prefix."""

    def __init__(self, environ: Mapping[str, str], prefix: str = PREFIX) -> None:
        self._environ = environ
        self._prefix = prefix

    def name(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def raw(self, key: str) -> str | None:
        value = self._environ.get(self.name(key))
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def string(self, key: str, default: str | None = None) -> str:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise ConfigError(f"{self.name(key)} is required but not set")
            return default
        return value

    def optional(self, key: str) -> str | None:
        return self.raw(key)

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{self.name(key)} must be a whole number, got {value!r}") from None
        if number < minimum or (maximum is not None and number > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigError(f"{self.name(key)} must be {bounds}, got {number}")
        return number

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise ConfigError(f"{self.name(key)} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def url(self, key: str, schemes: tuple[str, ...], default: str | None = None) -> str:
        value = self.string(key, default)
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ConfigError(
                f"{self.name(key)} must be a {'/'.join(schemes)} URL, got {redact_url(value)!r}"
            )
        return value

    def key_bytes(self, key: str, length: int) -> bytes | None:
        """A base64 (standard or URL-safe, padding optional) secret of exactly ``length`` bytes."""
        value = self.raw(key)
        if value is None:
            return None
        padded = value + "=" * (-len(value) % 4)
        try:
            decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{self.name(key)} must be base64") from None
        if len(decoded) != length:
            raise ConfigError(f"{self.name(key)} must decode to {length} bytes, got {len(decoded)}")
        return decoded


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to print or log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def is_local_http(url: str) -> bool:
    """True for plain-http URLs on the loopback host: the only place development shortcuts are allowed."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in {"localhost", "127.0.0.1", "::1"}
