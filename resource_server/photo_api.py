"""A client of the Photo Warehouse's HTTP API (the routes of :mod:`resource_server.routes`), for a
service that acts for a user with a token of its own, as the MCP server does: it reads photos
through the API, as any third party would, never from the warehouse's tables.

Photo ids are checked to be UUIDs before they go into a URL, so no argument can walk to another
route; cursors travel as query parameters, encoded.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_PAGE_SIZE = 100  # the warehouse's own bound


class ApiError(Exception):
    """The warehouse answered with an error, or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TokenRefused(ApiError):
    """401: the warehouse did not accept the token (expired, revoked, meant for another API)."""


class Forbidden(ApiError):
    """403: the token lacks a scope, or speaks for no user."""


class PhotoNotFound(ApiError):
    """404: no such photo for this user (another user's photo is answered the same)."""


@dataclass(frozen=True, slots=True)
class Photo:
    """One photo's metadata, as the warehouse describes it."""

    id: str
    title: str
    content_type: str
    size: int
    created_at: str


@dataclass(frozen=True, slots=True)
class Page:
    photos: tuple[Photo, ...]
    after: str | None  # the cursor of the next page; None: this is the last


def photo_id(value: str) -> uuid.UUID:
    """``value`` as a photo id, or :class:`PhotoNotFound` (as the warehouse answers a bad id)."""
    try:
        return uuid.UUID(value.strip())
    except (ValueError, AttributeError):
        raise PhotoNotFound(404, "No such photo: photo ids are UUIDs, as list_photos gives them.") from None


class PhotoApi:
    """The warehouse at ``base_url`` (its resource identifier: the API's routes are under it)."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 10.0,
        max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_bytes = max_bytes

    async def page(self, token: str, *, limit: int = 20, after: str | None = None) -> Page:
        """The user's photos, newest first, ``limit`` of them from the cursor ``after``."""
        query = {"limit": str(max(1, min(limit, MAX_PAGE_SIZE)))}
        if after is not None:
            query["after"] = after
        body = await self._json(token, "/api/photos", query)
        photos = body.get("photos")
        if not isinstance(photos, list):
            raise ApiError(502, "The warehouse answered a page without photos.")
        following = body.get("next")
        return Page(
            tuple(_photo(entry) for entry in photos),
            _cursor(following) if isinstance(following, str) else None,
        )

    async def photo(self, token: str, photo: uuid.UUID) -> Photo:
        """One photo's metadata."""
        return _photo(await self._json(token, f"/api/photos/{photo}", {}))

    async def content(self, token: str, photo: uuid.UUID) -> tuple[str, bytes]:
        """(content type, bytes) of one photo."""
        async with self._get(token, f"/api/photos/{photo}/content", {}) as response:
            await _raise_for(response)
            content_type = response.content_type
            if content_type not in IMAGE_TYPES:
                raise ApiError(502, f"The warehouse answered {content_type!r}, not an image.")
            declared = response.content_length
            if declared is not None and declared > self._max_bytes:
                raise ApiError(502, "The photo is larger than this server relays.")
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data.extend(chunk)
                if len(data) > self._max_bytes:
                    raise ApiError(502, "The photo is larger than this server relays.")
            return content_type, bytes(data)

    async def _json(self, token: str, path: str, query: dict[str, str]) -> dict[str, Any]:
        async with self._get(token, path, query) as response:
            await _raise_for(response)
            try:
                body = await response.json()
            except (ValueError, aiohttp.ContentTypeError):
                raise ApiError(502, "The warehouse answered something other than JSON.") from None
        if not isinstance(body, dict):
            raise ApiError(502, "The warehouse answered something other than a JSON object.")
        return body

    @contextlib.asynccontextmanager
    async def _get(
        self, token: str, path: str, query: dict[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One GET with ``token``; a connection that fails, before or during the body, is an
        :class:`ApiError` with status 0."""
        try:
            async with self._session.get(
                f"{self.base_url}{path}",
                params=query,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json, image/*"},
                allow_redirects=False,  # a redirect would carry the token elsewhere
                timeout=self._timeout,
            ) as response:
                yield response
        except (aiohttp.ClientError, TimeoutError):
            raise ApiError(0, "The Photo Warehouse could not be reached.") from None


async def _raise_for(response: aiohttp.ClientResponse) -> None:
    if response.status < 300:
        return
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        body = None
    described = body.get("error_description") if isinstance(body, dict) else None
    message = described if isinstance(described, str) else f"The warehouse answered {response.status}."
    kinds: dict[int, type[ApiError]] = {401: TokenRefused, 403: Forbidden, 404: PhotoNotFound}
    raise kinds.get(response.status, ApiError)(response.status, message)


def _photo(entry: Any) -> Photo:
    try:
        return Photo(
            id=str(entry["id"]),
            title=str(entry["title"]),
            content_type=str(entry["content_type"]),
            size=int(entry["size"]),
            created_at=str(entry["created_at"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ApiError(502, "The warehouse described a photo without its fields.") from None


def _cursor(link: str) -> str | None:
    """The ``after`` cursor of a ``next`` link (``/api/photos?limit=20&after=…``)."""
    values = parse_qs(urlsplit(link).query).get("after")
    return values[0] if values else None
