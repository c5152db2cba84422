"""The one way usernames are compared: at registration, at lookup and in the brute-force lockout.

A name is compared by its canonical form: NFKC, case-folded, NFKC again (case folding can undo a
normalisation, so it is applied between two). Python's ``casefold`` and PostgreSQL's ``lower``
disagree on letters such as U+0130 (İ), so the database never folds a name itself: it stores and
indexes the form computed here (``users.username_canonical``).
"""

from __future__ import annotations

import unicodedata

from shared.http import has_control_characters

MAX_LENGTH = 200


def canonical(username: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def problem(username: str) -> str | None:
    """Why a name cannot be registered, or ``None``."""
    if not username.strip() or len(username) > MAX_LENGTH:
        return f"username must be 1 to {MAX_LENGTH} characters"
    if has_control_characters(username) or username != username.strip():
        return "username must not contain control characters or surrounding spaces"
    return None
