"""The consent decision: the user allows or denies what ``/authorize`` checked and stored.

The form names only a pending request id (bound to the user who saw the page) and carries the
session's CSRF token; ``deny`` sends the user back with ``access_denied`` (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from auth_server.appkeys import REGISTRY
from auth_server.authorization.answer import answer, redirection_for
from auth_server.authorization.request import ResourceOwner
from auth_server.pages import current_session
from shared.error_middleware import html_page
from shared.errors import AccessDenied, InvalidRequest
from shared.http import client_ip, read_form
from shared.observability import METRICS


@html_page
async def consent(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    form = await read_form(request)
    session = await current_session(request)
    owner = ResourceOwner.of(session)
    if session is None or owner is None or not session.csrf_matches(form.get("csrf_token", "")):
        raise InvalidRequest("The consent form expired or did not come from this site; start again.")
    decision = form.get("consent")
    if decision not in ("allow", "deny"):
        raise InvalidRequest("consent must be allow or deny.")
    pending = await registry.authorization_requests.take(form.get("request_id", ""), owner.subject)
    if pending is None or pending.user_id != owner.subject:
        raise InvalidRequest("This authorization request has expired or was already answered; start again.")
    client = await registry.clients.get(pending.client_id)
    if client is None or pending.redirect_uri not in client.redirect_uris:
        raise InvalidRequest("The client is no longer registered.")
    answer_to = redirection_for(pending, registry.settings.issuer)
    if decision == "deny":
        return answer_to.error(AccessDenied("The user denied the request."), status=303)
    await registry.consents.grant(uuid.UUID(owner.subject), client.client_id, pending.scope)
    await registry.audit.record(
        "consent.granted",
        client_id=client.client_id,
        subject=owner.subject,
        ip=client_ip(request),
        scope=list(pending.scope),
    )
    params = await answer(registry, request.app[METRICS], pending, owner)
    return answer_to.response(params, status=303)
