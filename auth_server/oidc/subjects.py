"""Subject identifiers (OpenID Connect Core §8): the ``sub`` a client sees for a user.

``public``: the user's own id, the same for every client. ``pairwise``: a different, stable value
for each *sector* (the host of the client's redirect URIs, or of its registered
``sector_identifier_uri``), so that two unrelated apps cannot correlate their users, as WeChat gives
each app its own openid. It is computed, never stored (§8.1):
``BASE64URL(SHA-256(sector || 0x00 || local id || 0x00 || salt))``, with a random salt made once
per installation (``instance_secrets``) that must never change.

Access tokens keep the user's own id as ``sub``: they are read by resource servers, which must
find the user's data by it (RFC 9068 §2.2 leaves ``sub`` to the authorization server), and a client
must treat them as opaque (RFC 9068 §6). What a pairwise client is told about the user, in ID
tokens, userinfo and logout tokens, is always the pairwise value.
"""

from __future__ import annotations

import base64
import hashlib

from auth_server.clients import Client
from auth_server.stores.instance_secrets import InstanceSecrets

SALT = "pairwise-subject-salt"


class Subjects:
    def __init__(self, secrets: InstanceSecrets) -> None:
        self._secrets = secrets
        self._salt: bytes | None = None

    async def for_client(self, client: Client, subject: str) -> str:
        """The ``sub`` that ``client`` sees for the user whose own id is ``subject``."""
        if client.subject_type != "pairwise":
            return subject
        assert client.sector_identifier is not None, "registration sets a pairwise client's sector"
        if self._salt is None:
            self._salt = await self._secrets.get_or_create(SALT)
        return pairwise(client.sector_identifier, subject, self._salt)


def pairwise(sector: str, subject: str, salt: bytes) -> str:
    material = b"\x00".join((sector.encode(), subject.encode(), salt))
    return base64.urlsafe_b64encode(hashlib.sha256(material).digest()).rstrip(b"=").decode()
