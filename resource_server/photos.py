"""The Photo Warehouse API: a user's photos, and aggregate statistics for partners.

Every route requires a valid Tessera access token with the right scope (see
:mod:`shared.jwt_validation`). Photos belong to the token's subject; another user's photo is
answered exactly like a missing one (404, not 403), so ids reveal nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import BodyPartReader, web

from resource_server.store import Photo, PhotoStore
from shared.errors import InvalidRequest, OAuthError, PayloadTooLarge
from shared.jwt_validation import claims, require_scope

STORE = web.AppKey("photo_store", PhotoStore)
MAX_BYTES = web.AppKey("max_photo_bytes", int)
PAGE_SIZE, MAX_PAGE_SIZE = 20, 100

# magic numbers of the image types accepted, so a declared content type cannot lie
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


class NotFound(OAuthError):
    error = "not_found"
    status = 404


class UnsupportedMediaType(OAuthError):
    error = "invalid_request"
    status = 415


class UserTokenRequired(OAuthError):
    error = "insufficient_scope"
    status = 403


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
        raise UserTokenRequired("This request needs a token issued for a user.")
    subject: str = token["sub"]
    return subject


def _photo_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["photo_id"])
    except ValueError:
        raise NotFound("No such photo.") from None


@require_scope("photos:read")
async def list_photos(request: web.Request) -> web.Response:
    owner, store = _user(request), request.app[STORE]
    try:
        limit = min(int(request.query.get("limit", PAGE_SIZE)), MAX_PAGE_SIZE)
    except ValueError:
        raise InvalidRequest("limit must be a whole number.") from None
    if limit < 1:
        raise InvalidRequest("limit must be at least 1.")
    before = None
    if "after" in request.query:
        try:
            before = await store.get(owner, uuid.UUID(request.query["after"]))
        except ValueError:
            before = None
        if before is None:
            raise InvalidRequest("after must be the id of a photo from the previous page.")
    photos = await store.page(owner, limit=limit + 1, before=before)
    body: dict[str, Any] = {"photos": [_json(p) for p in photos[:limit]]}
    if len(photos) > limit:
        body["next"] = f"/api/photos?limit={limit}&after={photos[limit - 1].photo_id}"
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
    title, content, declared = "", b"", ""
    reader = await request.multipart()
    async for part in reader:
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
    if not content:
        raise InvalidRequest("The 'file' field with the photo is required.")
    if declared not in SIGNATURES or not content.startswith(SIGNATURES[declared]):
        raise UnsupportedMediaType(
            f"Photos must be one of {', '.join(SIGNATURES)}, and the bytes must match."
        )
    photo = await request.app[STORE].add(owner, title, declared, content)
    return web.json_response(_json(photo), status=201, headers={"Location": f"/api/photos/{photo.photo_id}"})


@require_scope("photos:write")
async def delete_photo(request: web.Request) -> web.Response:
    if not await request.app[STORE].delete(_user(request), _photo_id(request)):
        raise NotFound("No such photo.")
    return web.Response(status=204)


@require_scope("warehouse:stats")
async def stats(request: web.Request) -> web.Response:
    """For B2B partners: only a client acting for itself (client_credentials) may ask."""
    token = claims(request)
    if token["sub"] != token["client_id"]:
        raise UserTokenRequired("Statistics are for partner clients (client_credentials tokens), not users.")
    numbers = await request.app[STORE].stats()
    return web.json_response(
        {"users": numbers.owners, "photos": numbers.photos, "bytes": numbers.bytes},
        headers={"Cache-Control": "no-store"},
    )
