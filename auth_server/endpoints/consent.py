"""The consent decision: the user allows or denies what ``/authorize`` validated and stored.

The form names only a pending request id (bound to the user who saw the page) and carries the
session's CSRF token; ``deny`` sends the user back with ``access_denied`` (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from auth_server.appkeys import REGISTRY
from auth_server.endpoints.authorize import Redirection, issue_response
from auth_server.pages import current_session
from shared.errors import AccessDenied, InvalidRequest, html_page
from shared.http import client_ip, read_form


@html_page
async def consent(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    form = await read_form(request)
    session = await current_session(request)
    if session is None or session.user_id is None or not session.csrf_matches(form.get("csrf_token", "")):
        raise InvalidRequest("The consent form expired or did not come from this site; start again.")
    decision = form.get("consent")
    if decision not in ("allow", "deny"):
        raise InvalidRequest("consent must be allow or deny.")
    pending = await registry.authorization_requests.take(form.get("request_id", ""), session.user_id)
    if pending is None or pending.user_id != session.user_id:
        raise InvalidRequest("This authorization request has expired or was already answered; start again.")
    client = await registry.clients.get(pending.client_id)
    if client is None or pending.redirect_uri not in client.redirect_uris:
        raise InvalidRequest("The client is no longer registered.")
    redirection = Redirection.for_response_type(
        pending.response_type, pending.redirect_uri, pending.state, registry.settings.issuer
    )
    if decision == "deny":
        return redirection.error(AccessDenied("The user denied the request."), status=303)
    await registry.consents.grant(uuid.UUID(session.user_id), client.client_id, pending.scope)
    await registry.audit.record(
        "consent.granted",
        client_id=client.client_id,
        subject=session.user_id,
        ip=client_ip(request),
        scope=list(pending.scope),
    )
    return redirection.response(await issue_response(request.app, pending, session), status=303)
