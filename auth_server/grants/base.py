"""Each grant declared once (RFC 6749 §1.3, §4; RFC 7591 §2; RFC 9700 §2.1.2, §2.4).

A :class:`Grant` says all the server needs to know about a grant type; the grant's own module
(``grants/<name>.py``) holds its handlers and its declaration, and ``grants/__init__.py`` lists every
declaration in :data:`~auth_server.grants.GRANTS`. Everything else is derived from that list:

* the token endpoint's dispatch (``endpoints/token.py``), including the confidential-only rule;
* the authorization endpoint's response types and modes (``authorization/checks.py``) and who
  answers an approved request (``authorization/answer.py``);
* the client registration rules (``registration.py``): the grant types a client may have, the
  deprecation notices, "refresh_token needs a grant that issues refresh tokens", "confidential
  clients only", "a grant served at /authorize needs a redirect URI", the grant types each response
  type needs (:meth:`Grants.needed_for`);
* the response types a client registered without any may use (``Client.response_types``, from
  :meth:`Grants.default_response_types`);
* the metadata document (``endpoints/metadata.py``) and the CLI's ``--grant-type`` choices.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from auth_server.authorization.request import AuthorizationRequest, ResourceOwner
from auth_server.authorization.response_modes import RESPONSE_MODES, ResponseMode, default_mode
from auth_server.clients import Client
from auth_server.grants.common import TokenRequest
from auth_server.registry import Registry

# At the token endpoint, after client authentication: the JSON body of a successful response.
TokenHandler = Callable[[Registry, Client, TokenRequest], Awaitable[dict[str, Any]]]
# At the authorization endpoint, once the user approved: the parameters of the answer.
AuthorizationHandler = Callable[[Registry, AuthorizationRequest, ResourceOwner], Awaitable[dict[str, str]]]


@dataclass(frozen=True, slots=True)
class Grant:
    grant_type: str
    # handles ``grant_type`` at the token endpoint; None: the grant is not used there (implicit)
    token_endpoint: TokenHandler | None = None
    # answers an approved authorization request of one of ``response_types``
    authorization_endpoint: AuthorizationHandler | None = None
    # the response types this grant serves at /authorize (canonical: values sorted); each answers in
    # its default response mode (``authorization/response_modes.py``) unless the request names one
    response_types: tuple[str, ...] = ()
    # the token endpoint parameters it reads, besides grant_type and client authentication
    parameters: tuple[str, ...] = ()
    # whether its tokens start a refresh-token family (the refresh_token grant only continues one)
    issues_refresh_tokens: bool = False
    # refused to public clients, at registration and at the token endpoint
    confidential_only: bool = False
    # deprecated by RFC 9700: a client may be registered for it, with a warning
    deprecated: bool = False

    def __post_init__(self) -> None:
        if bool(self.response_types) != (self.authorization_endpoint is not None):
            raise ValueError(f"{self.grant_type}: response types need an authorization-endpoint handler")
        if not self.response_types and self.token_endpoint is None:
            raise ValueError(f"{self.grant_type}: a grant needs a handler at some endpoint")


class Grants(Mapping[str, Grant]):
    """The grants this server implements, by ``grant_type``, in the order they are listed."""

    def __init__(self, *grants: Grant) -> None:
        self._by_type: dict[str, Grant] = {}
        self._by_response_type: dict[str, Grant] = {}
        for grant in grants:
            if grant.grant_type in self._by_type:
                raise ValueError(f"grant {grant.grant_type!r} is declared twice")
            self._by_type[grant.grant_type] = grant
            for response_type in grant.response_types:
                if response_type in self._by_response_type:
                    raise ValueError(f"response type {response_type!r} is served by two grants")
                self._by_response_type[response_type] = grant

    def __getitem__(self, grant_type: str) -> Grant:
        return self._by_type[grant_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_type)

    def __len__(self) -> int:
        return len(self._by_type)

    def serving(self, response_type: str | None) -> Grant | None:
        """The grant that answers ``response_type`` (in any order of its values) at the
        authorization endpoint, if any."""
        if response_type is None:
            return None
        return self._by_response_type.get(" ".join(sorted(response_type.split())))

    @property
    def response_types(self) -> tuple[str, ...]:
        return tuple(self._by_response_type)

    def needed_for(self, response_type: str) -> tuple[str, ...] | None:
        """The grant types a client needs for ``response_type`` (its values in any order), None if
        no grant serves it: the grant serving it, and the grant serving each of its values alone
        (RFC 7591 §2.1; OpenID Connect Registration §2: ``code id_token`` needs authorization_code
        and implicit)."""
        grant = self.serving(response_type)
        if grant is None:
            return None
        alone = [self.serving(value) for value in response_type.split()]
        return tuple(dict.fromkeys([grant.grant_type, *(g.grant_type for g in alone if g is not None)]))

    def default_response_types(self, grant_types: Iterable[str]) -> tuple[str, ...]:
        """The response types of a client registered without any (RFC 7591 §2.1 pairs them with its
        grant types): those one of its grants serves alone. A response type returning an ID token is
        never a default: a client registers it by name, with the openid scope (OpenID Connect
        Registration §2)."""
        granted = set(grant_types)
        return tuple(
            response_type
            for response_type in self._by_response_type
            if "id_token" not in response_type.split()
            and len(needed := self.needed_for(response_type) or ()) == 1
            and needed[0] in granted
        )

    @property
    def response_modes(self) -> tuple[ResponseMode, ...]:
        """The default modes of the response types served, then the others a request may name."""
        defaults = [default_mode(response_type) for response_type in self._by_response_type]
        return tuple(dict.fromkeys([*defaults, *RESPONSE_MODES]))

    @property
    def deprecated(self) -> tuple[str, ...]:
        return tuple(grant_type for grant_type, grant in self._by_type.items() if grant.deprecated)
