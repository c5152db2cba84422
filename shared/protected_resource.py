"""OAuth 2.0 Protected Resource Metadata (RFC 9728) for an aiohttp API guarded by
:mod:`shared.jwt_validation`: one call tells clients which authorization server protects it.

::

    publish(
        app,
        ProtectedResource(
            resource="https://photos.example.com",  # the API's own public URL
            authorization_servers=["https://auth.example.com"],  # Tessera's issuer
            scopes_supported=["photos:read", "photos:write"],
        ),
    )

:func:`publish` does two things:

* serves the metadata document (RFC 9728 §2, §3.2) at the well-known URL derived from the resource
  identifier (RFC 9728 §3.1): ``/.well-known/oauth-protected-resource``, followed by the
  identifier's path if it has one (``https://h/photos`` → ``https://h/.well-known/oauth-protected-resource/photos``);
* makes the ``WWW-Authenticate: Bearer`` challenges of its :func:`~shared.jwt_validation.require_scope`
  routes carry ``resource_metadata="<that URL>"`` (RFC 9728 §5.1), and, on a 401, the ``scope``
  the route needs (RFC 6750 §3; a 403 ``insufficient_scope`` always names it), so a client that
  gets a 401 finds the authorization server and what to ask it for;
* takes the identifier's origin as the API's public origin, the one DPoP proofs name in their
  ``htu`` (RFC 9449 §4.3; :func:`~shared.jwt_validation.public_url`), so a gateway in front
  (which must pass paths through unchanged) does not make every proof look like another URL's.

An app that does not call it keeps its challenges as they were. No backend is imported here: like
the rest of the resource-team part of ``shared``, this loads neither asyncpg nor redis.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from shared.jwt_validation import CHALLENGES, PUBLIC_ORIGIN, Challenges

WELL_KNOWN = "/.well-known/oauth-protected-resource"
BEARER_METHODS = frozenset({"header", "body", "query"})  # RFC 9728 §2, from RFC 6750 §2.1-2.3
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def check_url(url: str, what: str) -> str:
    """``url`` if it is an https URL with a host and no query or fragment (plain http: localhost
    only); ValueError saying what is wrong otherwise."""
    parts = urlsplit(url)
    local = parts.scheme == "http" and parts.hostname in LOCAL_HOSTS
    if (parts.scheme != "https" and not local) or not parts.hostname:
        raise ValueError(f"{what} must be an https URL (plain http only on localhost): {url!r}")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"{what} must have no query or fragment: {url!r}")
    if "{" in parts.path or "}" in parts.path:
        raise ValueError(f"{what} must have no braces in its path: {url!r}")  # not a route template
    return url


@dataclass(frozen=True)
class ProtectedResource:
    """What an API says about itself (RFC 9728 §2); only the members given are published.

    ``resource`` is its resource identifier (RFC 9728 §1.2): the https URL clients call, without
    a fragment, and here without a query (the well-known URL is a route, and RFC 8707 §2 says a
    resource identifier SHOULD NOT have one). Clients check that the document names exactly this
    URL (RFC 9728 §3.3), so it must be the public URL, as seen through any gateway.
    """

    resource: str
    authorization_servers: Sequence[str]  # issuer identifiers (RFC 8414 §2), e.g. Tessera's
    scopes_supported: Sequence[str] = ()  # RECOMMENDED: the scopes the API's routes require
    bearer_methods_supported: Sequence[str] = ("header",)  # shared.jwt_validation reads only the header
    resource_name: str | None = None  # RECOMMENDED: a human-readable name
    resource_documentation: str | None = None  # a URL of documentation for developers
    # RFC 9728 §2 (from RFC 9449): the algorithms of DPoP proofs the API accepts
    dpop_signing_alg_values_supported: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in (
            "authorization_servers",
            "scopes_supported",
            "bearer_methods_supported",
            "dpop_signing_alg_values_supported",
        ):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{name} is a list of strings, not one string")
            object.__setattr__(self, name, tuple(value))  # frozen, and hashable
        check_url(self.resource, "the resource identifier")
        for issuer in self.authorization_servers:
            check_url(issuer, "an authorization server")
        unknown = set(self.bearer_methods_supported) - BEARER_METHODS
        if unknown:
            raise ValueError(f"bearer_methods_supported: unknown methods {sorted(unknown)}")
        if any(not scope or " " in scope for scope in self.scopes_supported):
            raise ValueError("each of scopes_supported must be one non-empty scope token")
        if self.resource_documentation is not None:
            check_url(self.resource_documentation, "resource_documentation")

    @property
    def metadata_path(self) -> str:
        """The path of the well-known URL (RFC 9728 §3.1): the well-known segment goes between the
        host and the identifier's path, a lone terminating ``/`` after the host dropped."""
        path = urlsplit(self.resource).path
        return WELL_KNOWN if path in ("", "/") else WELL_KNOWN + path

    @property
    def metadata_url(self) -> str:
        """The URL of the document: the ``resource_metadata`` of challenges (RFC 9728 §5.1)."""
        parts = urlsplit(self.resource)
        return urlunsplit((parts.scheme, parts.netloc, self.metadata_path, "", ""))

    def document(self) -> dict[str, Any]:
        """The metadata (RFC 9728 §2): ``resource`` always, the other members when not empty."""
        members: dict[str, Any] = {
            "resource": self.resource,
            "authorization_servers": list(self.authorization_servers),
            "scopes_supported": list(self.scopes_supported),
            # an empty list is meaningful (no method), so this one is always published (RFC 9728 §2)
            "bearer_methods_supported": list(self.bearer_methods_supported),
            "resource_name": self.resource_name,
            "resource_documentation": self.resource_documentation,
            "dpop_signing_alg_values_supported": list(self.dpop_signing_alg_values_supported),
        }
        always = {"resource", "bearer_methods_supported"}
        return {k: v for k, v in members.items() if k in always or v}


class RouteTable(Protocol):
    """Where :func:`publish` adds its route: the app's router by default, or a table that also
    describes routes (:class:`shared.openapi.Routes` fits)."""

    def get(self, path: str, handler: Handler, **operation: Any) -> None: ...


class _Router:
    def __init__(self, router: web.UrlDispatcher) -> None:
        self._router = router

    def get(self, path: str, handler: Handler, **operation: Any) -> None:
        self._router.add_get(path, handler)


STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
# the route's OpenAPI operation, for a RouteTable that documents routes
OPERATION: dict[str, Any] = {
    "summary": "Protected resource metadata (RFC 9728): the authorization servers and scopes of this API",
    "responses": {
        "200": {
            "description": "the metadata",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["resource"],
                        "properties": {
                            "resource": {"type": "string"},
                            "authorization_servers": {"type": "array", "items": {"type": "string"}},
                            "scopes_supported": {"type": "array", "items": {"type": "string"}},
                            "bearer_methods_supported": {"type": "array", "items": {"type": "string"}},
                            "resource_name": {"type": "string"},
                            "resource_documentation": {"type": "string"},
                            "dpop_signing_alg_values_supported": {
                                "type": "array",
                                "items": {"type": "string"},
                            },
                        },
                    }
                }
            },
        }
    },
}

PROTECTED_RESOURCE = web.AppKey("tessera_protected_resource", ProtectedResource)


def publish(
    app: web.Application,
    resource: ProtectedResource,
    *,
    routes: RouteTable | None = None,
    max_age: int = 3600,
) -> None:
    """Serve ``resource``'s metadata and name it in the app's Bearer challenges (see the module).

    Call it while building the app, before it starts. The document is served with
    ``Cache-Control: public, max-age=<max_age>`` and ``Access-Control-Allow-Origin: *`` (it is
    public, and browser-based clients read it too). ``routes``: where to add the route (default:
    ``app.router``), e.g. ``shared.openapi.Routes(app)`` to have it described.
    """
    if PROTECTED_RESOURCE in app:
        raise RuntimeError("this app already publishes protected resource metadata")
    app[PROTECTED_RESOURCE] = resource
    app[CHALLENGES] = Challenges(params={"resource_metadata": resource.metadata_url}, scope_on_401=True)
    # the URL clients call, whatever gateway is in front: what DPoP proofs' htu name (RFC 9449 §4.3)
    parts = urlsplit(resource.resource)
    app[PUBLIC_ORIGIN] = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    body = json.dumps(resource.document()).encode()
    headers = {"Cache-Control": f"public, max-age={max_age}", "Access-Control-Allow-Origin": "*"}

    async def metadata(request: web.Request) -> web.Response:
        """RFC 9728 §3.2: the document, as JSON."""
        return web.Response(body=body, content_type="application/json", headers=headers)

    (routes or _Router(app.router)).get(resource.metadata_path, metadata, **OPERATION)
