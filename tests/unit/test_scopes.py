"""RFC 6749 §3.3 scope parsing and narrowing."""

from __future__ import annotations

import pytest

from auth_server import scopes
from shared.errors import InvalidScope

KNOWN = {"photos:read", "photos:write", "warehouse:stats"}


def test_parse_keeps_order_and_drops_duplicates() -> None:
    assert scopes.parse("photos:read  photos:write photos:read") == ("photos:read", "photos:write")
    assert scopes.parse(None) is None


@pytest.mark.parametrize("value", ['photos"read', "photos\\read", " ", "caf\u00e9"])
def test_parse_rejects_bad_characters(value: str) -> None:
    with pytest.raises(InvalidScope):
        scopes.parse(value)


def test_resolve_is_requested_intersected_with_allowed() -> None:
    allowed = ("photos:read", "photos:write")
    assert scopes.resolve(("photos:read", "warehouse:stats"), allowed, KNOWN) == ("photos:read",)
    assert scopes.resolve(None, allowed, KNOWN) == allowed


def test_resolve_rejects_unknown_and_empty() -> None:
    with pytest.raises(InvalidScope, match="Unknown scope: admin"):
        scopes.resolve(("photos:read", "admin"), ("photos:read",), KNOWN)
    with pytest.raises(InvalidScope):
        scopes.resolve(("warehouse:stats",), ("photos:read",), KNOWN)
