"""The Photo Warehouse API: a user's photos, and aggregate statistics for partners.

Every route requires a valid Tessera access token with the right scope (see
:mod:`shared.jwt_validation`). Photos belong to the token's subject; another user's photo is
answered exactly like a missing one (404, not 403), so ids reveal nothing.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from resource_server.store import Photo, PhotoStore
from shared.errors import InsufficientScope, InvalidRequest, OAuthError, PayloadTooLarge
from shared.http import body_deadline, has_control_characters
from shared.jwt_validation import claims, require_scope

STORE = web.AppKey("photo_store", PhotoStore)
MAX_BYTES = web.AppKey("max_photo_bytes", int)
PAGE_SIZE, MAX_PAGE_SIZE = 20, 100

# magic numbers of the image types accepted, so a declared content type cannot lie
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8, checked below
}


class NotFound(OAuthError):
    error = "not_found"
    status = 404


class UnsupportedMediaType(OAuthError):
    error = "invalid_request"
    status = 415


def _json(photo: Photo) -> dict[str, Any]:
    return {
        "id": str(photo.photo_id),
        "title": photo.title,
        "content_type": photo.content_type,
        "size": photo.size,
        "created_at": photo.created_at.isoformat(),
        "links": {
            "self": f"/api/photos/{photo.photo_id}",
            "content": f"/api/photos/{photo.photo_id}/content",
        },
    }


def _user(request: web.Request) -> str:
    """The photo owner: the token's subject, which must be a user, not a client acting for itself."""
    token = claims(request)
    if token["sub"] == token["client_id"]:
        raise InsufficientScope("This request needs a token issued for a user.", scope="photos:read")
    subject: str = token["sub"]
    return subject


def _photo_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["photo_id"])
    except ValueError:
        raise NotFound("No such photo.") from None


def _encode_cursor(created_at: datetime, photo_id: uuid.UUID) -> str:
    """Where the next page starts: opaque to clients, and valid even if that photo is deleted."""
    raw = f"{created_at.isoformat()}|{photo_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(value: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        when, _, ident = raw.partition("|")
        created_at = datetime.fromisoformat(when)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("after must be the cursor from the previous page's next link.") from None


@require_scope("photos:read")
async def list_photos(request: web.Request) -> web.Response:
    owner, store = _user(request), request.app[STORE]
    try:
        limit = min(int(request.query.get("limit", PAGE_SIZE)), MAX_PAGE_SIZE)
    except ValueError:
        raise InvalidRequest("limit must be a whole number.") from None
    if limit < 1:
        raise InvalidRequest("limit must be at least 1.")
    before = _cursor(request.query["after"]) if "after" in request.query else None
    photos = await store.page(owner, limit=limit + 1, before=before)
    body: dict[str, Any] = {"photos": [_json(p) for p in photos[:limit]]}
    if len(photos) > limit:
        last = photos[limit - 1]
        body["next"] = f"/api/photos?limit={limit}&after={_encode_cursor(last.created_at, last.photo_id)}"
    return web.json_response(body, headers={"Cache-Control": "no-store"})


@require_scope("photos:read")
async def get_photo(request: web.Request) -> web.Response:
    photo = await request.app[STORE].get(_user(request), _photo_id(request))
    if photo is None:
        raise NotFound("No such photo.")
    return web.json_response(_json(photo), headers={"Cache-Control": "no-store"})


@require_scope("photos:read")
async def photo_content(request: web.Request) -> web.Response:
    found = await request.app[STORE].content(_user(request), _photo_id(request))
    if found is None:
        raise NotFound("No such photo.")
    content_type, content = found
    return web.Response(
        body=content,
        content_type=content_type,
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


@require_scope("photos:write")
async def upload_photo(request: web.Request) -> web.Response:
    owner, limit = _user(request), request.app[MAX_BYTES]
    if not request.content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaType("Upload a photo as multipart/form-data with a 'file' field.")
    try:
        async with body_deadline(request):
            title, declared, content = await _read_upload(request, limit)
    except (ValueError, LookupError, UnicodeDecodeError):
        raise InvalidRequest("The multipart body is malformed.") from None
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"A photo may be at most {limit} bytes.") from None
    if has_control_characters(title):
        raise InvalidRequest("The title must not contain control characters.")
    if not content:
        raise InvalidRequest("The 'file' field with the photo is required.")
    if declared not in SIGNATURES or not any(content.startswith(m) for m in SIGNATURES[declared]):
        raise UnsupportedMediaType(
            f"Photos must be one of {', '.join(SIGNATURES)}, and the bytes must match."
        )
    if declared == "image/webp" and content[8:12] != b"WEBP":
        raise UnsupportedMediaType("The bytes are not a WebP image.")
    photo = await request.app[STORE].add(owner, title, declared, content)
    return web.json_response(_json(photo), status=201, headers={"Location": f"/api/photos/{photo.photo_id}"})


async def _read_upload(request: web.Request, limit: int) -> tuple[str, str, bytes]:
    """(title, declared content type, bytes) from the multipart body, the photo bounded by ``limit``."""
    title, declared, content = "", "", b""
    async for part in await request.multipart():
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "title":
            title = (await part.text())[:200]
        elif part.name == "file":
            declared = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            data = bytearray()
            while chunk := await part.read_chunk(65536):
                data.extend(chunk)
                if len(data) > limit:
                    raise PayloadTooLarge(f"A photo may be at most {limit} bytes.")
            content = bytes(data)
    return title, declared, content


@require_scope("photos:write")
async def delete_photo(request: web.Request) -> web.Response:
    if not await request.app[STORE].delete(_user(request), _photo_id(request)):
        raise NotFound("No such photo.")
    return web.Response(status=204)


@require_scope("photos:read")
async def me(request: web.Request) -> web.Response:
    """Whom the token speaks for: validated locally, no database (the cheapest protected call)."""
    token = claims(request)
    body = {"sub": token["sub"], "client_id": token["client_id"], "scope": token.get("scope", "")}
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "private, no-store"},
    )


@require_scope("warehouse:stats")
async def stats(request: web.Request) -> web.Response:
    """For B2B partners: only a client acting for itself (client_credentials) may ask."""
    token = claims(request)
    if token["sub"] != token["client_id"]:
        raise InsufficientScope(
            "Statistics are for partner clients (client_credentials tokens), not users.",
            scope="warehouse:stats",
        )
    numbers = await request.app[STORE].stats()
    return web.json_response(
        {"users": numbers.owners, "photos": numbers.photos, "bytes": numbers.bytes},
        headers={"Cache-Control": "no-store"},
    )
