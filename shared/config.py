"""Reading ``TESSERA_*`` environment variables: one way, failing fast with the variable's name.

Each process builds its own frozen settings object from these helpers exactly once, at start.
A settings class is a :func:`settings_class` whose every field is one :func:`setting`: its
variable, how it is read (a :class:`Reader`, with its bounds or choices), its default and one line
of documentation. :func:`read_settings` builds it from the environment, and
:mod:`shared.settings_docs` writes the documentation (module docstrings, the README's table) from
the same declarations, so a default is written once.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, dataclass_transform, overload
from urllib.parse import urlsplit

PREFIX = "TESSERA_"

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


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

    def choice(self, key: str, default: str, choices: tuple[str, ...], *, any_case: bool = False) -> str:
        """One of ``choices`` (as spelled there, when ``any_case`` lets the value differ in case)."""
        value = self.string(key, default)
        for choice in choices:
            if value == choice or (any_case and value.lower() == choice.lower()):
                return choice
        raise ConfigError(f"{self.name(key)} must be one of {', '.join(choices)}, got {value!r}")

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


# --- declared settings ----------------------------------------------------------------------------


class Reader(ABC, Generic[T_co]):
    """How one variable is read and checked, and how its accepted values are described."""

    __slots__ = ()

    @abstractmethod
    def read(self, env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> T_co:
        """The value of ``key``: ``default`` when it is unset (``dataclasses.MISSING`` when the
        declaration has none); ``earlier`` holds the settings declared above this one, by field name."""

    @abstractmethod
    def describe(self) -> str:
        """The values accepted, in a few words (documentation)."""

    def show(self, value: Any) -> str:
        """A default as the documentation prints it."""
        return show_value(value)


@dataclass(frozen=True, slots=True)
class Integer(Reader[int]):
    """A whole number within bounds; ``unit`` (seconds, milliseconds, bytes) is documentation."""

    minimum: int = 0
    maximum: int | None = None
    unit: str = ""

    def read(self, env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> int:
        # an int even when the field's type is float and its default 5.0
        return env.integer(key, int(default), minimum=self.minimum, maximum=self.maximum)

    def describe(self) -> str:
        if self.maximum is not None:
            bounds = f"{self.minimum} to {self.maximum}"
        else:
            bounds = f"≥ {self.minimum}" if self.minimum else ""
        return ", ".join(part for part in (self.unit or "whole number", bounds) if part)

    def show(self, value: Any) -> str:
        number = int(value)
        readable = _readable(number, self.unit)
        return f"{number} ({readable})" if readable else str(number)


@dataclass(frozen=True, slots=True)
class Text(Reader[str]):
    """Any non-blank text."""

    description: str = "text"

    def read(self, env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str:
        return env.string(key, default)

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True, slots=True)
class Directory(Reader[Path]):
    """A filesystem path."""

    def read(self, env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> Path:
        return Path(env.string(key, str(default)))

    def describe(self) -> str:
        return "a directory"


@dataclass(frozen=True, slots=True)
class Choice(Reader[str]):
    """One of a few words (in any case, when ``any_case``; the value is then spelled as declared)."""

    choices: tuple[str, ...]
    any_case: bool = False

    def read(self, env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str:
        return env.choice(key, default, self.choices, any_case=self.any_case)

    def describe(self) -> str:
        return ", ".join(f"`{c}`" for c in self.choices) + (" (any case)" if self.any_case else "")


@dataclass(frozen=True, slots=True)
class Switch(Reader[bool]):
    """``on`` or ``off``."""

    any_case: bool = False

    def read(self, env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> bool:
        return env.choice(key, "on" if default else "off", ("on", "off"), any_case=self.any_case) == "on"

    def describe(self) -> str:
        return "`on`, `off`" + (" (any case)" if self.any_case else "")

    def show(self, value: Any) -> str:
        return "on" if value else "off"


@dataclass(frozen=True, slots=True)
class OptionalUrl(Reader["str | None"]):
    """A URL of one of ``schemes``, or ``None`` when unset."""

    schemes: tuple[str, ...]

    def read(self, env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> str | None:
        return None if env.optional(key) is None else env.url(key, self.schemes)

    def describe(self) -> str:
        return ", ".join(f"`{s}://`" for s in self.schemes) + " URL"


@dataclass(frozen=True, slots=True)
class Parsed(Reader[T]):
    """A rule of its own: ``parse(env, key, default, earlier)``, for values with structure or
    rules that involve settings declared above (the issuer, for instance)."""

    parse: Callable[[Env, str, Any, Mapping[str, Any]], T]
    description: str

    def read(self, env: Env, key: str, default: Any, earlier: Mapping[str, Any]) -> T:
        return self.parse(env, key, default, earlier)

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True, slots=True)
class Setting:
    """One declared option (see :func:`setting`)."""

    key: str
    reader: Reader[Any]
    doc: str
    default: Any  # the value when the variable is unset; MISSING when the reader decides
    shown: str | None = None  # how the documentation states the default, when not ``default`` itself

    @property
    def variable(self) -> str:
        return f"{PREFIX}{self.key}"

    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        return "none" if self.default is dataclasses.MISSING else self.reader.show(self.default)


_SETTING = "tessera.setting"


@overload
def setting(key: str, reader: Reader[T], doc: str, *, default: T, shown: str | None = None) -> T: ...
@overload
def setting(
    key: str, reader: Reader[T], doc: str, *, default_factory: Callable[[], T], shown: str | None = None
) -> T: ...
@overload
def setting(key: str, reader: Reader[T], doc: str, *, unset: T = ..., shown: str | None = None) -> T: ...
def setting(
    key: str,
    reader: Reader[Any],
    doc: str,
    *,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    unset: Any = dataclasses.MISSING,
    shown: str | None = None,
) -> Any:
    """A field of a :func:`settings_class`, read from ``TESSERA_`` + ``key`` by ``reader``.

    ``default`` (or ``default_factory``) is the constructor's default and the value when the
    variable is unset. ``unset`` is only the latter: the constructor then requires the field. With
    neither, the reader decides (a value computed from an earlier setting, or an error). ``doc`` is
    one line for the tables; ``shown`` replaces the default there when it is computed.
    """
    if unset is not dataclasses.MISSING:
        fallback = unset
    elif default_factory is not dataclasses.MISSING:
        fallback = default_factory()
    else:
        fallback = default
    declared = Setting(key, reader, doc, fallback, shown)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_SETTING: declared})


@dataclass_transform(frozen_default=True, field_specifiers=(setting,))
def settings_class(read_by: str) -> Callable[[type[T]], type[T]]:
    """A frozen, slotted dataclass whose every field is a :func:`setting`; ``read_by`` names the
    processes that read it, for the documentation."""

    def declare(cls: type[T]) -> type[T]:
        made = dataclass(frozen=True, slots=True)(cls)
        missing = [f.name for f in _fields(made) if _SETTING not in f.metadata]
        if missing:
            raise TypeError(f"{made.__name__}: fields {', '.join(missing)} are not declared with setting()")
        made.__settings_read_by__ = read_by  # type: ignore[attr-defined]
        return made

    return declare


def declarations(cls: type) -> list[tuple[str, Setting]]:
    """(field name, declaration) of a :func:`settings_class`, in the order they are read."""
    return [(f.name, f.metadata[_SETTING]) for f in _fields(cls)]


def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


def read_by(cls: type) -> str:
    label: str = cls.__settings_read_by__  # type: ignore[attr-defined]
    return label


def read_settings(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Every declared setting of ``cls``, read from ``environ`` (the process environment by
    default) in declaration order, so a rule may use the settings above it."""
    env = Env(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for name, declared in declarations(cls):
        values[name] = declared.reader.read(env, declared.key, declared.default, values)
    return cls(**values)


def show_value(value: Any) -> str:
    """A value as the documentation prints it."""
    if value is None or value == () or value == "":
        return "none"
    if isinstance(value, Mapping):
        return ", ".join(value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _readable(value: int, unit: str) -> str:
    """600 seconds: "10 min"; 65536 bytes: "64 KiB"; "" when nothing shorter is exact."""
    sizes = {
        "seconds": ((86400, "days"), (3600, "h"), (60, "min")),
        "bytes": ((1 << 20, "MiB"), (1 << 10, "KiB")),
    }.get(unit, ())
    for size, name in sizes:
        if value > size and value % size == 0:
            return f"{value // size} {name}"
    return ""


def default_dev_dir(environ: Mapping[str, str] | None = None) -> Path:
    """One development data folder per user, wherever a command runs: ``$XDG_DATA_HOME/tessera``,
    else ``~/.local/share/tessera``."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "tessera"
