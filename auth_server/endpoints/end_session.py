"""The end-session endpoint: OpenID Connect RP-Initiated Logout 1.0.

A client sends the user here (GET, or a form POST: §2) to sign out of Tessera too, with
``id_token_hint``, ``client_id``, ``post_logout_redirect_uri``, ``state``, ``ui_locales`` and
``logout_hint`` (the last two accepted and unused).

* ``id_token_hint`` must be an ID token this server signed, expired or not (§2, §4); with
  ``client_id`` too, the two must name the same client (§2).
* ``post_logout_redirect_uri`` is followed only for an identified client (by the hint or
  ``client_id``) and only if it exactly matches one of its ``post_logout_redirect_uris`` (§3);
  anything else is an error page, never a redirect (§4: no open redirector).
* With a valid hint for the signed-in user (its ``sub`` is the one that client sees for them, and
  its ``sid``, if any, is this session's), or with nobody signed in, the user is signed out at once.
  Otherwise the user is asked (§2: the OP "MUST ask the End-User" without such a hint), on a page
  whose form carries the session's CSRF token, so a third party's bare link signs nobody out.
* Afterwards the user goes to the ``post_logout_redirect_uri`` with ``state`` (§3), or sees a
  "You are signed out" page.

Clients that got ID tokens in the session are told by back-channel logout
(:func:`auth_server.oidc.logout.end_session`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.oidc.hints import verify_hint
from auth_server.oidc.logout import end_session as end_the_session
from auth_server.pages import PAGE_HEADERS, current_session, render, see_other, session_id
from auth_server.registry import Registry
from auth_server.stores.sessions import Session
from shared.error_middleware import html_page
from shared.errors import InvalidRequest
from shared.http import query_params, read_form

CONFIRM = "confirm"  # the field the confirmation form's button sends
# what the confirmation form carries over (the hint is not: it was checked, and named the client)
_CARRIED = ("client_id", "post_logout_redirect_uri", "state")


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """A checked logout request: the client (if identified), where to send the user afterwards
    (a registered URI, or ``None``), and the hint's claims (if one was given)."""

    client: Client | None
    redirect_uri: str | None
    state: str | None
    hint: dict[str, Any] | None


@html_page
async def end_session(request: web.Request) -> web.Response:
    """§2: GET with a query, or POST with a form; and the POST of the confirmation page."""
    registry = request.app[REGISTRY]
    params = await read_form(request) if request.method == "POST" else query_params(request)
    if request.method == "POST" and CONFIRM in params:
        return await _confirmed(request, params)
    logout = await checked(registry, params)
    if request.method == "POST" and session_id(request) is None:
        # A client's cross-site form POST carries no SameSite=Lax session cookie; the same
        # request as a top-level GET does.
        return see_other(f"{paths.END_SESSION}?{urlencode(params)}")
    session = await current_session(request)
    if session is None or session.user_id is None or await _hint_is_for(registry, logout, session):
        return await _signed_out(request, logout, status=303 if request.method == "POST" else 302)
    return _confirmation_page(registry, logout, session)


async def checked(registry: Registry, params: dict[str, str]) -> LogoutRequest:
    """The request's parameters, checked (§2, §3); :class:`InvalidRequest` for anything wrong."""
    hint_token = params.get("id_token_hint") or None
    client_id = params.get("client_id") or None
    # with client_id too, the hint must have been issued to that client (§2)
    hint = None if hint_token is None else verify_hint(registry, hint_token, client_id)
    if hint is not None:
        client_id = client_id or hint_client(hint)
        if client_id is None:
            raise InvalidRequest("id_token_hint does not name one client; send client_id too.")
    client = None if client_id is None else await registry.clients.get(client_id)
    if client_id is not None and (client is None or not client.active):
        # a client not approved (or suspended) is nobody to send users back to
        raise InvalidRequest("The client is not registered.")
    redirect_uri = params.get("post_logout_redirect_uri") or None
    if redirect_uri is not None:
        if client is None:
            raise InvalidRequest("post_logout_redirect_uri needs id_token_hint or client_id.")
        if redirect_uri not in client.post_logout_redirect_uris:
            raise InvalidRequest("post_logout_redirect_uri is not registered for this client.")
    return LogoutRequest(client, redirect_uri, params.get("state") or None, hint)


def hint_client(claims: dict[str, Any]) -> str | None:
    """The client an ID token was issued to: its ``azp`` if it is one of its audiences, else its
    only audience (OpenID Connect Core §2)."""
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if azp is not None:
        return azp if isinstance(azp, str) and azp in aud else None
    return aud[0] if len(aud) == 1 and isinstance(aud[0], str) else None


async def _hint_is_for(registry: Registry, logout: LogoutRequest, session: Session) -> bool:
    """Whether the hint names the signed-in user as its client sees them, in this session (§2)."""
    if logout.hint is None or logout.client is None or session.user_id is None:
        return False
    sub = await registry.subjects.for_client(logout.client, session.user_id)
    sid = logout.hint.get("sid")
    return logout.hint["sub"] == sub and (sid is None or sid == session.sid)


def _confirmation_page(registry: Registry, logout: LogoutRequest, session: Session) -> web.Response:
    carried = {
        "client_id": None if logout.client is None else logout.client.client_id,
        "post_logout_redirect_uri": logout.redirect_uri,
        "state": logout.state,
    }
    return render(
        "logout_confirm.html",
        csrf=session.csrf,
        action=paths.END_SESSION,
        confirm=CONFIRM,
        fields={name: value for name, value in carried.items() if value is not None},
        site_name=registry.settings.site_name,
        client_name=None if logout.client is None else logout.client.client_name,
        username=session.username,
        form_to=logout.redirect_uri,
    )


async def _confirmed(request: web.Request, params: dict[str, str]) -> web.Response:
    """The user confirmed on :func:`_confirmation_page`: the form must carry this session's CSRF
    token (with no session left, there is nobody to sign out)."""
    session = await current_session(request)
    if session is not None and not session.csrf_matches(params.get("csrf_token", "")):
        raise InvalidRequest("The sign-out form expired or did not come from this site; try again.")
    logout = await checked(request.app[REGISTRY], {k: params[k] for k in _CARRIED if k in params})
    return await _signed_out(request, logout, status=303)


async def _signed_out(request: web.Request, logout: LogoutRequest, *, status: int) -> web.Response:
    """End the session; send the user to the registered URI with ``state`` (§3), or say so."""
    if logout.redirect_uri is not None:
        location = with_state(logout.redirect_uri, logout.state)
        response = web.Response(status=status, headers={**PAGE_HEADERS, "Location": location})
    else:
        response = render(
            "signed_out.html",
            site_name=request.app[REGISTRY].settings.site_name,
            client_name=None if logout.client is None else logout.client.client_name,
        )
    await end_the_session(request, response, via="end_session")
    return response


def with_state(uri: str, state: str | None) -> str:
    """``uri`` with ``state`` added to its query (§3), keeping the query it was registered with."""
    if state is None:
        return uri
    parts = urlsplit(uri)
    query = f"{parts.query}&{urlencode({'state': state})}" if parts.query else urlencode({"state": state})
    return urlunsplit(parts._replace(query=query))
