"""Resource indicators (RFC 8707): which API an access token is for, and what it may do there.

The operator registers each API (``tessera resource create``, :mod:`auth_server.stores.resources`)
with the scopes that belong to it. Each rule lives here, once:

* **identifiers** — a ``resource`` value is an absolute URI without a fragment (§2);
* **permitted** — a client may ask for a registered resource when one of its scopes belongs to it;
  anything else is ``invalid_target``. The default audience (``TESSERA_ACCESS_TOKEN_AUDIENCE``)
  may always be named, as if no resource were;
* **target** — a token is for exactly one resource: its ``aud`` is that resource's identifier and
  its scope the granted scopes that belong to it. A token request without ``resource`` gets the
  grant's only resource, or the default audience (with every granted scope, as before resource
  indicators) when the grant named none. A grant the user approved for some resources yields tokens
  for those only; a refresh may name any one of them (a narrower one), never another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from auth_server.clients import Client
from auth_server.stores.resources import Resource, ResourceExists
from shared.errors import InvalidScope, InvalidTarget

# the grant type a service client needs (auth_server.grants.token_exchange imports this module)
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant type

if TYPE_CHECKING:  # the rotation policy uses chosen(); the registry wires that policy in
    from auth_server.registry import Registry

# a request names a handful of APIs at most; more is refused before any lookup
MAX_RESOURCES = 10
MAX_IDENTIFIER_LENGTH = 2_000


def checked_identifier(value: str) -> str:
    """``value`` if it can name a resource (RFC 8707 §2: an absolute URI, no fragment), else
    :class:`InvalidTarget`."""
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if (
        parts is None
        or len(value) > MAX_IDENTIFIER_LENGTH
        or not parts.scheme
        or not (parts.netloc or parts.path)
        or "#" in value
        or any(ch.isspace() for ch in value)
    ):
        raise InvalidTarget("A resource must be an absolute URI without a fragment (RFC 8707).")
    return value


def identifiers(values: Sequence[str]) -> tuple[str, ...]:
    """The distinct resources named, each checked by :func:`checked_identifier`."""
    if len(values) > MAX_RESOURCES:
        raise InvalidTarget(f"A request may name at most {MAX_RESOURCES} resources.")
    return tuple(dict.fromkeys(checked_identifier(value) for value in values))


def consented(names: Sequence[str], default: str) -> frozenset[str]:
    """The audiences a consent to a request naming ``names`` covers: those, or the default audience
    when it named none (a consent recorded before resource indicators, with none, is the same):
    a user who allowed an app tokens for one API has not allowed it tokens for the general one."""
    return frozenset(names or (default,))


async def names(registry: Registry, identifiers: Sequence[str]) -> tuple[str, ...]:
    """What people call the APIs ``identifiers`` name (the consent page shows them)."""
    found = [await registry.resources.get(identifier) for identifier in identifiers]
    return tuple(
        f"{resource.name} ({identifier})" if resource is not None else identifier
        for identifier, resource in zip(identifiers, found, strict=True)
    )


def permitted(client: Client, resource: Resource) -> bool:
    """Whether ``client`` may ask for tokens for ``resource``: one of its scopes belongs to it."""
    return not set(client.scope).isdisjoint(resource.scopes)


async def resolve(registry: Registry, client: Client, names: Sequence[str]) -> tuple[Target, ...]:
    """``names`` as targets, if each is the default audience or a registered resource ``client``
    may use; else :class:`InvalidTarget`."""
    return tuple([Target(name, await lookup(registry, client, name)) for name in names])


@dataclass(frozen=True, slots=True)
class Target:
    """The one audience a token is issued for, and the resource behind it (None: the default)."""

    audience: str
    resource: Resource | None = None

    def scope(self, scope: Sequence[str]) -> tuple[str, ...]:
        """The part of ``scope`` that belongs to this audience (all of it for the default one);
        :class:`InvalidScope` if none does."""
        if self.resource is None:
            return tuple(scope)
        narrowed = tuple(s for s in scope if s in self.resource.scopes)
        if not narrowed:
            raise InvalidScope(f"None of the requested scopes belongs to the resource {self.audience}.")
        return narrowed


def chosen(granted: Sequence[str] | None, requested: str | None, default: str) -> str:
    """The audience of a token issued from a grant covering ``granted`` (None: a grant the user
    did not approve resources for — client credentials, the password grant — where any resource
    may be named) when the request names ``requested``; :class:`InvalidTarget` if it may not be."""
    if requested is not None:
        if granted is None or requested in granted or (requested == default and not granted):
            return requested
        raise InvalidTarget("The resource was not part of the authorization grant.")
    if not granted:
        return default
    if len(granted) > 1:
        raise InvalidTarget("The grant covers several resources: name one with the resource parameter.")
    return granted[0]


async def target(
    registry: Registry, client: Client, requested: str | None, granted: Sequence[str] | None
) -> Target:
    """The audience of a token issued at the token endpoint, and its resource, which ``client``
    must (still) be permitted; ``requested``: the token request's ``resource``."""
    name = chosen(
        granted,
        None if requested is None else checked_identifier(requested),
        registry.settings.access_token_audience,
    )
    return Target(name, await lookup(registry, client, name))


async def lookup(registry: Registry, client: Client, name: str) -> Resource | None:
    """The registered resource ``name`` (None: the default audience), if ``client`` may use it."""
    if name == registry.settings.access_token_audience:
        return None
    resource = await registry.resources.get(name)
    if resource is None or not permitted(client, resource):
        # one answer for both: a stranger learns nothing of which APIs are registered
        raise InvalidTarget(f"{name} is not a resource this client may ask tokens for.")
    return resource


class ResourceRefused(Exception):
    """Why a resource cannot be registered as given: a sentence for the operator."""


async def register(
    registry: Registry,
    *,
    identifier: str,
    name: str,
    scopes: Sequence[str],
    service_client_id: str | None = None,
    by: str | None = None,
) -> Resource:
    """Register an API (the CLI and the admin API both come here): an identifier that can be an
    ``aud`` and is not the default one, known scopes, and a service client able to exchange tokens."""
    try:
        identifier = checked_identifier(identifier)
    except InvalidTarget as error:
        raise ResourceRefused(f"identifier: {error.description}") from None
    if identifier == registry.settings.access_token_audience:
        raise ResourceRefused("identifier: that is the default audience (TESSERA_ACCESS_TOKEN_AUDIENCE)")
    if not name.strip():
        raise ResourceRefused("name: required")
    if not scopes:
        raise ResourceRefused("scope: at least one scope belongs to an API")
    unknown = sorted(set(scopes) - set(registry.settings.scopes))
    if unknown:
        raise ResourceRefused(
            f"scope {unknown[0]!r} is not one of TESSERA_SCOPES: {' '.join(registry.settings.scopes)}"
        )
    if service_client_id is not None:
        service = await registry.clients.get(service_client_id)
        if service is None:
            raise ResourceRefused(f"service client: no client {service_client_id!r}")
        if not service.allows_grant(TOKEN_EXCHANGE):
            raise ResourceRefused(
                f"service client: {service.client_id} is not registered for token exchange ({TOKEN_EXCHANGE})"
            )
    try:
        resource = await registry.resources.create(
            identifier, name.strip(), tuple(scopes), service_client_id=service_client_id
        )
    except ResourceExists:
        raise ResourceRefused(f"a resource {identifier!r} is registered already") from None
    await registry.audit.record(
        "resource.created",
        resource=identifier,
        scope=list(resource.scopes),
        service_client_id=resource.service_client_id,
        **({} if by is None else {"by": by}),
    )
    return resource


def shown(resource: Resource) -> dict[str, object]:
    """A resource as the CLI and the admin API show it."""
    return {
        "identifier": resource.identifier,
        "name": resource.name,
        "scopes": list(resource.scopes),
        "service_client_id": resource.service_client_id,
        "created_at": resource.created_at,
    }
