"""The MCP server's token-exchange client never logs its credentials (the security review found
aiohttp's error ``repr`` carrying the request's ``Authorization: Basic`` header into the log)."""

from __future__ import annotations

import asyncio
import base64
import logging

import aiohttp
import pytest

from resource_server.token_exchange import ExchangeFailed, TokenExchange

SECRET = "S3cr3t-of-the-mcp-server"


async def test_a_malformed_answer_is_logged_without_the_client_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        # a header line longer than aiohttp accepts, as a misbehaving proxy may send
        writer.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    caplog.set_level(logging.INFO)
    try:
        async with aiohttp.ClientSession() as session:
            exchange = TokenExchange(
                issuer="http://127.0.0.1",
                client_id="mcp-client",
                client_secret=SECRET,
                resource="http://warehouse.example",
                session=session,
                token_endpoint=f"http://127.0.0.1:{port}/oauth2/token",
            )
            with pytest.raises(ExchangeFailed):
                await exchange.token_for("agent-token")
    finally:
        server.close()
    logged = caplog.text
    assert "token exchange" in logged  # it was logged...
    basic = base64.b64encode(f"mcp-client:{SECRET}".encode()).decode()
    for secret in (basic, SECRET, "agent-token"):
        assert secret not in logged  # ...without a secret
