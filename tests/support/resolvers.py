"""DNS answers a test chooses: for the outbound-fetch guard, which must judge the address a name
resolves to, not the name."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class OneAddress(AbstractResolver):
    """Every name resolves to one address, as a DNS server under someone else's control might answer."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": self.address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
        ]

    async def close(self) -> None:
        pass
