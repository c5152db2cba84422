"""The rules a new password must meet, at sign-up and at a password reset (NIST SP 800-63B §3.1.1.2).

Long enough; not too long to check at the login page (:data:`auth_server.passwords.MAX_PASSWORD_LENGTH`);
not on the list of common and breached passwords shipped with the package (``common_passwords.txt``,
no network call), nor one of them with digits or symbols around it or with letters swapped for
look-alikes (``P@ssw0rd!``, ``Monkey2024``); not containing the username or the email address; not
one character, or a few, repeated; not a run of neighbouring keys or of the alphabet
(``qwertyui``, ``abcd1234``). No rules of composition (NIST: they make passwords worse, not better).

:func:`problems` returns *codes*; the pages say what each means (``templates/account_fields.html``),
so the words live in templates, where they are translated.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources

from auth_server.passwords import MAX_PASSWORD_LENGTH
from auth_server.usernames import canonical

TOO_SHORT = "too_short"
TOO_LONG = "too_long"
COMMON = "common"
CONTAINS_USERNAME = "contains_username"
CONTAINS_EMAIL = "contains_email"
REPEATED = "repeated"
KEYBOARD_RUN = "keyboard_run"

# Look-alikes people swap letters for; each password is checked as typed and with these undone.
_LOOK_ALIKES = str.maketrans({"@": "a", "4": "a", "3": "e", "1": "i", "!": "i", "0": "o", "$": "s", "5": "s"})
_AROUND = "0123456789!@#$%^&*()-_=+[]{};:'\",.<>/?\\|`~ "  # what people put before or after a word
# keyboard rows (US layout, the usual one for passwords), the alphabet and the digits
_RUNS = ("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./", "abcdefghijklmnopqrstuvwxyz")
_SHORTEST_WORD = 4  # a shorter word found inside a password is no weakness by itself
_SHORTEST_NAME = 3  # a username or email name shorter than this is not looked for


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower case (its header lines start with ``#``)."""
    text = resources.files("auth_server").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().casefold() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def problems(password: str, *, username: str = "", email: str = "", min_length: int = 8) -> list[str]:
    """What is wrong with ``password`` as a new password for this username and email (codes, in the
    order the page shows them); empty when it is good."""
    if len(password) < min_length:
        return [TOO_SHORT]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [TOO_LONG]
    folded = unicodedata.normalize("NFKC", password).casefold()
    found = []
    if _is_common(folded):
        found.append(COMMON)
    name = canonical(username).strip() if username else ""
    if len(name) >= _SHORTEST_NAME and name in folded:
        found.append(CONTAINS_USERNAME)
    local = email.rpartition("@")[0].casefold()
    if len(local) >= _SHORTEST_NAME and local in folded:
        found.append(CONTAINS_EMAIL)
    if _is_repeated(folded):
        found.append(REPEATED)
    elif _is_keyboard_run(folded):
        found.append(KEYBOARD_RUN)
    return found


def _is_common(folded: str) -> bool:
    common = common_passwords()
    for variant in {folded, folded.translate(_LOOK_ALIKES)}:
        if variant in common:
            return True
        word = variant.strip(_AROUND)
        if len(word) >= _SHORTEST_WORD and word in common:
            return True
    # the look-alikes undone only after digits around the word are taken off: "monkey1!" -> "monkey"
    word = folded.strip(_AROUND).translate(_LOOK_ALIKES)
    return len(word) >= _SHORTEST_WORD and word in common


def _is_repeated(folded: str) -> bool:
    """One character, or a unit of up to four, over and over (``aaaaaaaa``, ``abcabcabc``)."""
    for size in range(1, 5):
        unit = folded[:size]
        if len(folded) >= 2 * size and (unit * (len(folded) // size + 1))[: len(folded)] == folded:
            return True
    return False


def _is_keyboard_run(folded: str) -> bool:
    """Made only of runs of at least three neighbouring keys or letters, each one way
    (``qwertyui``, ``abcd1234``, ``987654321``, ``zxcvasdf``)."""
    covered, start = 0, 0
    while start < len(folded):
        end = start + 1
        while end < len(folded) and _neighbours(folded[start : end + 1]):
            end += 1
        if end - start >= 3:
            covered += end - start
        start = end
    return covered == len(folded)


def _neighbours(chunk: str) -> bool:
    """Whether ``chunk`` is a run along one row or the alphabet, forwards or backwards."""
    return any(chunk in row or chunk in row[::-1] for row in _RUNS)
