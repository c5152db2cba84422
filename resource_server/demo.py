"""The Photo Warehouse's part of the demo (``tessera dev``): a few sample photos for its user."""

from __future__ import annotations

import struct
import zlib

from resource_server.schema import SCHEMA
from resource_server.store import PhotoStore
from shared import db

SAMPLE_PHOTOS = (
    ("West Lake at dawn", (244, 162, 97)),
    ("Xiamen harbour", (42, 157, 143)),
    ("Grandma's garden", (138, 177, 125)),
    ("Lantern festival", (231, 111, 81)),
)


def sample_png(rgb: tuple[int, int, int], size: int = 96) -> bytes:
    """A small real PNG: a diagonal gradient of one colour (no imaging library needed)."""
    rows = bytearray()
    for y in range(size):
        rows.append(0)
        for x in range(size):
            shade = 0.55 + 0.45 * (x + y) / (2 * size)
            rows.extend(min(255, int(c * shade)) for c in rgb)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


async def seed_photos(database_url: str, owner: str) -> None:
    """Give ``owner`` the sample photos, unless they already have photos (the schema is migrated)."""
    pool = await db.create_pool(database_url, SCHEMA, max_size=2)
    try:
        photos = PhotoStore(pool)
        if not await photos.page(owner, limit=1):
            for title, colour in SAMPLE_PHOTOS:
                await photos.add(owner, title, "image/png", sample_png(colour))
    finally:
        await pool.close()
