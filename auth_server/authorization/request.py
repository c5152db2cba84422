"""The authorization request (RFC 6749 §4.1.1, §4.2.1; RFC 7636 §4.3) as its checks established it.

``/authorize`` builds it (:mod:`auth_server.authorization.checks`); while the user is asked for
consent it waits in Redis (:mod:`auth_server.stores.authorization_requests`), bound to that user;
once approved, the grant serving its response type answers it (``grants/authorization_code.py``
issues a code, ``grants/implicit.py`` a token).
"""

from __future__ import annotations

from dataclasses import dataclass

from auth_server.stores.sessions import Session


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    response_type: str
    scope: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    # False when the client omitted redirect_uri and its only registered one is used (then /token
    # must not require it, RFC 6749 §4.1.3)
    redirect_uri_given: bool = True
    # the user who was shown the consent page, the only one who can answer it; None until then
    user_id: str | None = None
    # the response mode asked for (``response_mode``), or None: the response type's default
    response_mode: str | None = None
    # OpenID Connect (Core §3.1.2.1): echoed in the ID token; the ``claims`` parameter, serialized
    nonce: str | None = None
    claims: str | None = None
    # ``prompt=consent``: ask again even if the user consented before
    ask_consent: bool = False
    # when the grant the user chose ends (Unix time; None: until revoked, issue 15): set once she
    # answers, from the consent page or her remembered consent; bounds the refresh-token family
    grant_ends_at: int | None = None
    # the resources its tokens are for (RFC 8707 ``resource``, checked); none: the default audience
    resources: tuple[str, ...] = ()
    # the DPoP key the code is to be bound to (RFC 9449 §10 ``dpop_jkt``); None: not bound
    dpop_jkt: str | None = None

    @property
    def openid(self) -> bool:
        """An OpenID Connect authentication request (Core §3.1.2.1): its scope has ``openid``."""
        return "openid" in self.scope

    @property
    def response_values(self) -> frozenset[str]:
        """What the response type asks for: ``code``, ``token``, ``id_token`` (any of them)."""
        return frozenset(self.response_type.split())


@dataclass(frozen=True, slots=True)
class ResourceOwner:
    """The signed-in user who approves a request: the subject of what is issued (RFC 6749 §1.1)."""

    subject: str
    auth_time: int
    sid: str | None = None  # the sign-in session (ID tokens' ``sid``)
    amr: tuple[str, ...] = ("pwd",)

    @classmethod
    def of(cls, session: Session | None) -> ResourceOwner | None:
        """The user signed in with ``session``; None when nobody is."""
        if session is None or session.user_id is None or session.auth_time is None:
            return None
        return cls(session.user_id, session.auth_time, session.sid, session.amr or ("pwd",))
