"""The grants this server implements: one module each, every one declared once (``grants/base.py``).

``GRANTS`` lists the declarations; the token endpoint dispatches through it in exactly one place,
and client registration, /authorize, metadata and the CLI read it too. To add a grant, write
``grants/<name>.py`` with its handler(s) and its ``GRANT = Grant(...)``, and list it here.
"""

from __future__ import annotations

from auth_server.grants import (
    authorization_code,
    client_credentials,
    device_code,
    implicit,
    password,
    refresh_token,
    token_exchange,
)
from auth_server.grants.base import Grant, Grants

GRANTS = Grants(
    authorization_code.GRANT,
    refresh_token.GRANT,
    implicit.GRANT,
    password.GRANT,
    client_credentials.GRANT,
    token_exchange.GRANT,
    device_code.GRANT,
)
# every grant_type a client may be registered for (the CLI's --grant-type choices)
GRANT_TYPES = tuple(GRANTS)

__all__ = ["GRANTS", "GRANT_TYPES", "Grant", "Grants"]
