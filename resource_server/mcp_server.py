"""The Photo Warehouse as an MCP server (``tessera mcp-server``): tools that list, describe and
fetch the signed-in user's photos, for AI agents, over Streamable HTTP, on the official ``mcp`` SDK.

It is a resource server like any other (MCP authorization, 2025-06-18 and later):

* **Tokens.** Every request needs a Tessera access token whose ``aud`` is this server's own
  resource identifier (:meth:`McpSettings.resource_identifier`, its public URL) with the scope
  ``photos:read``: a bearer token, or a DPoP-bound one with a proof of its key (RFC 9449; each
  proof once, in Redis across replicas when ``TESSERA_MCP_REDIS_URL`` or ``TESSERA_REDIS_URL`` is
  set). They are checked locally by :class:`shared.jwt_validation.TokenValidator` (the issuer's
  JWKS, its revocation list), through :mod:`.mcp_auth`, which takes the place of the SDK's
  bearer-only authentication. A token meant for another API, the warehouse's included, is
  refused.
* **Discovery.** The SDK's ``AuthSettings`` publish the RFC 9728 metadata at
  ``/.well-known/oauth-protected-resource`` followed by the URL's path, naming Tessera and the
  scope, and a refused request gets ``401`` (``403 insufficient_scope`` for a missing scope) with
  ``WWW-Authenticate: Bearer ... resource_metadata="<that URL>"``: an agent that knows only the URL
  finds Tessera, registers itself and asks for a token for this server (RFC 8707 ``resource``).
* **Downstream.** The tools read photos through the warehouse's HTTP API (:mod:`.photo_api`),
  never its tables, with a token of their own: the agent's token is exchanged at Tessera (RFC 8693,
  :mod:`.token_exchange`) by this server's confidential client for one addressed to the warehouse,
  which carries ``act: {"sub": <this server's client_id>}``. The agent's token is never forwarded.

Sessions are stateless (each POST is answered on its own, as JSON), so replicas need no sticky
routing. ``/healthz`` and ``/readyz`` (keys held) are served beside the MCP endpoint.

Importing this module needs the ``mcp`` extra (``pip install 'tessera[mcp]'``); the ``tessera``
command imports it only to serve.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ImageContent, TextContent, ToolAnnotations
from prometheus_client import start_http_server
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resource_server import mcp_auth, photo_api
from resource_server.mcp_auth import TesseraTokenVerifier, TokenBackend
from resource_server.photo_api import PhotoApi
from resource_server.settings import MCP_SCOPES, McpSettings
from resource_server.token_exchange import ExchangeFailed, TokenExchange
from shared.cli import CommandError
from shared.config import is_local_http
from shared.dpop import MemoryReplayStore, ProofVerifier, RedisReplayStore, ReplayStore
from shared.jwt_validation import (
    JWKSKeySource,
    KeySource,
    RevocationList,
    TokenValidator,
    refreshing,
)
from shared.observability import PROBES, Metrics

log = logging.getLogger("tessera.mcp")
T = TypeVar("T")

NAME = "Photo Warehouse"
INSTRUCTIONS = (
    "The signed-in user's photos at the Photo Warehouse. list_photos pages through them (newest first),"
    " describe_photo gives one photo's details, fetch_photo returns the image itself."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
DPOP_JTI_PREFIX = "tessera-mcp:dpop-jti:"  # the MCP server's keys in a Redis it may share


class Photo(BaseModel):
    """A photo as the tools describe it."""

    id: str
    title: str
    content_type: str
    size: int
    created_at: str


class PhotoPage(BaseModel):
    photos: list[Photo]
    next_cursor: str | None = None  # pass it to list_photos as cursor for the next page


def _photo(photo: photo_api.Photo) -> Photo:
    return Photo(
        id=photo.id,
        title=photo.title,
        content_type=photo.content_type,
        size=photo.size,
        created_at=photo.created_at,
    )


def _photo_id(value: str) -> uuid.UUID:
    """A tool's ``photo_id`` argument: a UUID, so that it can never walk to another route."""
    try:
        return photo_api.photo_id(value)
    except photo_api.PhotoNotFound as error:
        raise ToolError(error.message) from None


class PhotoTools:
    """The tools, and the two things they need: the token exchange and the warehouse's API, both
    over one HTTP session opened by :meth:`open` for the life of the server."""

    def __init__(self, settings: McpSettings) -> None:
        self.settings = settings
        self._opened: tuple[TokenExchange, PhotoApi] | None = None

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            exchange = TokenExchange(
                issuer=self.settings.issuer,
                client_id=self.settings.client_id,
                client_secret=self.settings.client_secret,
                resource=self.settings.warehouse_url,
                scope=" ".join(MCP_SCOPES),
                session=session,
            )
            self._opened = exchange, PhotoApi(self.settings.warehouse_url, session)
            try:
                yield
            finally:
                self._opened = None

    def register(self, server: MCPServer[Any]) -> None:
        server.add_tool(self.list_photos, title="List my photos", annotations=READ_ONLY)
        server.add_tool(self.describe_photo, title="Describe a photo", annotations=READ_ONLY)
        server.add_tool(self.fetch_photo, title="Fetch a photo", annotations=READ_ONLY)

    async def list_photos(
        self, limit: Annotated[int, Field(ge=1, le=photo_api.MAX_PAGE_SIZE)] = 20, cursor: str | None = None
    ) -> PhotoPage:
        """The signed-in user's photos, newest first: up to `limit` of them, and a next_cursor while
        more remain (pass it back as `cursor`)."""
        page = await self._call(lambda api, token: api.page(token, limit=limit, after=cursor))
        return PhotoPage(photos=[_photo(p) for p in page.photos], next_cursor=page.after)

    async def describe_photo(self, photo_id: str) -> Photo:
        """One photo's title, image type, size in bytes and upload time, by its id (from list_photos)."""
        photo = _photo_id(photo_id)
        return _photo(await self._call(lambda api, token: api.photo(token, photo)))

    async def fetch_photo(self, photo_id: str) -> list[TextContent | ImageContent]:
        """The photo itself (the image), by its id (from list_photos)."""
        photo = _photo_id(photo_id)
        described = await self._call(lambda api, token: api.photo(token, photo))
        content_type, data = await self._call(lambda api, token: api.content(token, photo))
        image = ImageContent(
            type="image", data=base64.b64encode(data).decode("ascii"), mime_type=content_type
        )
        return [
            TextContent(type="text", text=f"{described.title} ({content_type}, {len(data)} bytes)"),
            image,
        ]

    async def _call(self, request: Callable[[PhotoApi, str], Awaitable[T]]) -> T:
        """``request(api, token)`` with a token for the warehouse exchanged for the agent's; once
        more with a fresh exchange if the warehouse refuses a cached one. Failures become tool
        errors the agent can read."""
        agent = get_access_token()
        if agent is None or self._opened is None:
            raise ToolError("No access token: this server is reached over HTTP with a bearer token.")
        exchange, api = self._opened
        try:
            token = await exchange.token_for(agent.token)
            try:
                return await request(api, token)
            except photo_api.TokenRefused:
                # a cached token the warehouse no longer takes (revoked, keys rotated): once afresh
                exchange.forget(agent.token)
                return await request(api, await exchange.token_for(agent.token))
        except photo_api.PhotoNotFound:
            raise ToolError("No such photo.") from None
        except photo_api.ApiError as error:
            log.warning("the Photo Warehouse refused a call (%d): %s", error.status, error.message)
            raise ToolError(f"Photo Warehouse: {error.message}") from None
        except ExchangeFailed as failed:
            raise ToolError(
                f"Tessera would not issue a token for the Photo Warehouse ({failed.error})"
                + (f": {failed.description}" if failed.description else "")
            ) from None


def transport_security(identifier: str) -> TransportSecuritySettings:
    """DNS-rebinding protection: the Host and Origin of requests must be this server's public URL's
    (and, for a localhost URL, any local spelling of it)."""
    parts = urlsplit(identifier)
    hosts, origins = [parts.netloc], [f"{parts.scheme}://{parts.netloc}"]
    if is_local_http(identifier):
        hosts += [f"{host}:*" for host in LOCAL_HOSTS]
        origins += [f"http://{host}:*" for host in LOCAL_HOSTS]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def create_app(
    settings: McpSettings, *, keys: KeySource | None = None, metrics: Metrics | None = None
) -> Starlette:
    """The MCP server as an ASGI app; ``keys`` defaults to the issuer's JWKS, refreshed in the
    background. With ``metrics``, its requests and the OAuth errors it answers are counted there."""
    identifier = settings.resource_identifier()
    source = keys or JWKSKeySource(
        settings.issuer,
        refresh_interval=settings.jwks_refresh_interval,
        min_refetch_interval=settings.jwks_min_refetch_interval,
    )
    revocations = (
        RevocationList(settings.issuer, refresh_interval=settings.revocation_refresh_interval)
        if settings.revocation_check
        else None
    )
    replay, redis, unavailable = _dpop_replay_store(settings)
    validator = TokenValidator(
        issuer=settings.issuer,
        audience=identifier,
        keys=source,
        algorithms=settings.algorithms,
        leeway=settings.leeway,
        cache_size=settings.token_cache_size,
        revocations=revocations,
        # DPoP (RFC 9449): each proof's jti once, across replicas when Redis is configured
        proofs=ProofVerifier(replay=replay, window=settings.dpop_proof_window),
    )
    verifier = TesseraTokenVerifier(validator, identifier)
    server: MCPServer[Any] = MCPServer(
        name="photo-warehouse",
        title=NAME,
        instructions=INSTRUCTIONS,
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=settings.issuer,  # type: ignore[arg-type]  # pydantic parses the string
            resource_server_url=identifier,  # type: ignore[arg-type]
            required_scopes=list(MCP_SCOPES),
            # the verifier checks the audience itself: the validator requires aud == identifier
            validate_token_resource=False,
        ),
    )
    tools = PhotoTools(settings)
    tools.register(server)
    mcp_app = server.streamable_http_app(
        streamable_http_path=urlsplit(identifier).path or "/",
        stateless_http=True,
        json_response=True,
        transport_security=transport_security(identifier),
    )
    # bearer and DPoP-bound tokens, with the warehouse's challenges (the SDK's reads Bearer only)
    observe = None if metrics is None else metrics.count_error
    mcp_auth.install(mcp_app, TokenBackend(verifier, MCP_SCOPES, unavailable=unavailable, observe=observe))
    mcp_auth.advertise(
        mcp_app,
        resource=identifier,
        issuer=settings.issuer,
        scopes=MCP_SCOPES,
        algorithms=validator.proofs.algorithms,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if isinstance(source, JWKSKeySource):
                await stack.enter_async_context(refreshing(source))
            if revocations is not None:
                await stack.enter_async_context(refreshing(revocations))
            await stack.enter_async_context(tools.open())
            if redis is not None:
                stack.push_async_callback(redis.aclose)
            # a mounted app's own lifespan never runs: the session manager is entered here
            await stack.enter_async_context(server.session_manager.run())
            yield

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        if isinstance(source, JWKSKeySource):
            try:
                await source.ready()
            except RuntimeError as error:
                return JSONResponse({"status": "unready", "jwks": str(error)}, status_code=503)
        return JSONResponse({"status": "ready"})

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Mount("/", app=mcp_app)],
        lifespan=lifespan,
    )
    if metrics is not None:
        app.add_middleware(RequestMetrics, metrics=metrics, routes=(urlsplit(identifier).path or "/",))
    return app


class RequestMetrics:
    """Each HTTP request counted by route, method and status, and timed by route, in the metrics
    the other servers keep (``tessera_http_requests``, ``tessera_http_request_seconds``). The route
    is one of a fixed few (the MCP endpoint, the probes, the metadata, else ``unmatched``), never a
    path a client chose: the series stay bounded."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: tuple[str, ...]) -> None:
        self.app, self.metrics = app, metrics
        self.routes = frozenset((*routes, *PROBES))

    def _route(self, path: str) -> str:
        if path in self.routes:
            return path
        return METADATA_ROUTE if path.startswith(METADATA_ROUTE) else "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.record_request(self._route(scope["path"]), scope["method"], status, elapsed)


METADATA_ROUTE = "/.well-known/oauth-protected-resource"


def _dpop_replay_store(settings: McpSettings) -> tuple[ReplayStore, Any, tuple[type[BaseException], ...]]:
    """Where DPoP proofs' ``jti`` are remembered (Redis when configured, so that a proof is good
    once across replicas; else this process), the Redis client to close, and the errors that mean
    it cannot be reached. Bearer requests never touch it."""
    if settings.redis_url is None:
        if not is_local_http(settings.resource_identifier()):
            log.warning(
                "DPoP proofs are checked for replay in this process's memory (no TESSERA_MCP_REDIS_URL"
                " or TESSERA_REDIS_URL): with several replicas a proof could be replayed once on each"
            )
        return MemoryReplayStore(), None, ()
    from shared import redis as shared_redis

    client: Any = shared_redis.create_redis(settings.redis_url)
    return RedisReplayStore(client, DPOP_JTI_PREFIX), client, shared_redis.UNAVAILABLE_ERRORS


def serve(settings: McpSettings, *, access_log: bool = True) -> None:
    """Serve until SIGTERM or Ctrl-C, then give in-flight requests ``shutdown_grace`` seconds."""
    print(
        f"Photo Warehouse MCP server: {settings.resource_identifier()}, trusting {settings.issuer},"
        f" calling {settings.warehouse_url}, listening on http://{settings.host}:{settings.port}",
        file=sys.stderr,
    )
    # uvicorn's and the SDK's life-cycle lines (started, startup complete, shutting down...) say what
    # the line above says, as the other servers print none: their warnings and errors still show
    for noisy in ("uvicorn.error", "mcp.server.streamable_http_manager"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    metrics = Metrics("mcp")
    if settings.metrics_port:  # a listener of its own (a thread), never the public port
        try:
            start_http_server(settings.metrics_port, addr=settings.host, registry=metrics.registry)
        except OSError as error:
            raise CommandError(
                f"the metrics port {settings.metrics_port} cannot be used: {error.strerror or error}"
            ) from None
        print(f"  metrics on http://{settings.host}:{settings.metrics_port}/metrics", file=sys.stderr)
    config = uvicorn.Config(
        create_app(settings, metrics=metrics),
        host=settings.host,
        port=settings.port,
        log_config=None,  # the tessera command's logging (JSON or text) stays as configured
        access_log=access_log,
        proxy_headers=False,  # no client address is used; trust no forwarded headers
        server_header=False,
        timeout_keep_alive=settings.header_timeout,
        timeout_graceful_shutdown=settings.shutdown_grace,
        lifespan="on",
    )
    uvicorn.Server(config).run()
