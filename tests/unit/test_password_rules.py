"""The rules of a new password (issue 18; NIST SP 800-63B §3.1.1.2): length, the shipped list of
common and breached passwords and their obvious variants, the username or email inside, repeats
and keyboard runs; and no composition rules."""

from __future__ import annotations

import pytest

from auth_server.password_rules import (
    COMMON,
    CONTAINS_EMAIL,
    CONTAINS_USERNAME,
    KEYBOARD_RUN,
    REPEATED,
    TOO_LONG,
    TOO_SHORT,
    common_passwords,
    problems,
)


def check(password: str) -> list[str]:
    return problems(password, username="Xiaomei", email="mei.wang@photos.example", min_length=8)


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "photos-at-site-a",
        "Tr0ub4dor&3",
        "j8#kP2!qLm",
        "我的照片都在仓库里",  # any script counts, character by character
        "alllowercaseletters",  # no composition rules
    ],
)
def test_good_passwords_pass(password: str) -> None:
    assert check(password) == []


@pytest.mark.parametrize(
    ("password", "found"),
    [
        ("short", TOO_SHORT),
        ("x" * 1025, TOO_LONG),
        ("password", COMMON),
        ("PASSWORD1", COMMON),  # in any case
        ("P@ssw0rd!", COMMON),  # look-alikes and a symbol
        ("Monkey2024!", COMMON),  # a common word with digits and symbols around it
        ("sunshine1987", COMMON),
        ("xiaomei-forever", CONTAINS_USERNAME),
        # in fullwidth letters: compared in the canonical form (NFKC, case-folded)
        ("\uff38\uff29\uff21\uff2f\uff2d\uff25\uff29 forever", CONTAINS_USERNAME),
        ("mei.wang rocks", CONTAINS_EMAIL),
        ("zzzzzzzzzz", REPEATED),
        ("abcabcabcabc", REPEATED),
        ("zxcvasdfqwer", KEYBOARD_RUN),
        ("lkjhgfdsa", KEYBOARD_RUN),
        ("tuvwxyz9876", KEYBOARD_RUN),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, found: str) -> None:
    assert found in check(password)


def test_the_minimum_length_is_the_operators() -> None:
    assert problems("bright lantern", min_length=16) == [TOO_SHORT]
    assert problems("bright lantern", min_length=12) == []


def test_a_short_username_is_not_looked_for() -> None:
    """A two-letter name is inside many good passwords: it is no weakness by itself."""
    assert problems("plum tractor violet", username="pl", email="vi@x.example") == []


def test_the_shipped_list() -> None:
    common = common_passwords()
    assert len(common) == 10_000
    assert {"123456", "password", "iloveyou", "qwerty", "monkey"} <= common
    assert all(entry == entry.casefold() and len(entry) >= 4 for entry in common)
