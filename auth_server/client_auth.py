"""Client authentication at the token endpoint (RFC 6749 §2.3, §3.2.1).

The method a client uses must be the one it registered: a confidential client cannot fall back to
sending only its id, and a ``client_secret_basic`` client cannot post its secret in the body. Every
failure is the same ``invalid_client`` (401) so that a caller learns nothing about which part failed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from urllib.parse import unquote_plus

from auth_server.clients import Client
from auth_server.crypto import digest, digest_matches
from auth_server.stores.clients import ClientStore
from shared.errors import InvalidClient, InvalidRequest

_BAD_CREDENTIALS = "Client authentication failed: unknown client or wrong credentials."
_NOTHING = digest("")


def parse_basic(header: str) -> tuple[str, str]:
    """``Authorization: Basic`` with RFC 6749 §2.3.1's form-encoding of id and secret."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise InvalidClient("The Authorization header must use the Basic scheme.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidClient("The Basic credentials are not valid base64 of UTF-8 text.") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise InvalidClient("The Basic credentials must be client_id:client_secret.")
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate_client(
    headers: Mapping[str, str], form: Mapping[str, str], clients: ClientStore
) -> Client:
    authorization = headers.get("Authorization")
    posted_id, posted_secret = form.get("client_id"), form.get("client_secret")
    secret: str | None
    if authorization is not None:
        client_id, secret = parse_basic(authorization)
        if posted_secret is not None:
            raise InvalidRequest("Use exactly one client authentication method.")
        if posted_id is not None and posted_id != client_id:
            raise InvalidRequest("client_id in the body differs from the authenticated client.")
        method = "client_secret_basic"
    elif posted_id is not None:
        client_id, secret = posted_id, posted_secret
        method = "none" if secret is None else "client_secret_post"
    else:
        raise InvalidClient("Client authentication is required.")

    client = await clients.get(client_id)
    if client is None:
        digest_matches(secret or "", _NOTHING)  # same work as a real check
        raise InvalidClient(_BAD_CREDENTIALS)
    if method != client.token_endpoint_auth_method:
        raise InvalidClient(
            f"This client must authenticate with {client.token_endpoint_auth_method}, not {method}."
        )
    if method != "none" and (
        secret is None or client.secret_hash is None or not digest_matches(secret, client.secret_hash)
    ):
        raise InvalidClient(_BAD_CREDENTIALS)
    return client
