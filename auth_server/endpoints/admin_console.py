"""The admin console, ``/admin`` (issue 15, item 2): a platform operator (a user with the admin role)
reviews applications — approve, reject with a reason the developer sees, suspend a live app with a
reason, reinstate it — and a change that waits for review, shown as a diff; each app's audit trail.

Rules: only admins see it; anyone else signed in gets "page not found" (the console's existence is
not confirmed) for every page and every form. Forms carry the session's CSRF token; pages are
server-rendered and never framed. Every decision goes through :mod:`auth_server.platform`, which
records it in the audit trail (with the reviewer).
"""

from __future__ import annotations

from aiohttp import web

from auth_server import i18n, paths, platform
from auth_server.appkeys import REGISTRY
from auth_server.clients import STATUSES
from auth_server.endpoints.developers import (
    Console,
    check_csrf,
    first,
    not_found,
    read_fields,
    signed_in,
    to_sign_in,
)
from auth_server.i18n import N_, _
from auth_server.pages import render, see_other
from auth_server.platform import ReviewError
from shared.error_middleware import html_page

DECISIONS = ("approve", "reject", "suspend", "reinstate")
_REASON_NEEDED = {
    "reject": N_("Give a reason to reject: the developer reads it."),
    "suspend": N_("Give a reason to suspend: the developer reads it."),
}
REASON_LIMIT = 1000


async def admin(request: web.Request) -> Console | web.Response:
    """The signed-in admin, or the response anyone else gets (sign in; page not found)."""
    console = await signed_in(request)
    if console is None:
        return to_sign_in(paths.ADMIN)
    if not await request.app[REGISTRY].users.is_admin(console.user_id):
        return not_found(request)
    return console


@html_page
async def applications(request: web.Request) -> web.Response:
    """Every application, those waiting for review first; ``?status=`` filters."""
    console = await admin(request)
    if isinstance(console, web.Response):
        return console
    registry = request.app[REGISTRY]
    status = request.query.get("status") or None
    if status not in (None, *STATUSES):
        status = None
    apps = platform.review_queue(await registry.clients.list(), status)
    return render(
        "admin.html",
        **console.context,
        site_name=registry.settings.site_name,
        apps=apps,
        chosen=status,
        statuses=STATUSES,
    )


@html_page
async def application(request: web.Request) -> web.Response:
    console = await admin(request)
    if isinstance(console, web.Response):
        return console
    return await _application_page(request, console)


async def _application_page(
    request: web.Request, console: Console, *, notice: str | None = None, status: int = 200
) -> web.Response:
    registry = request.app[REGISTRY]
    client = await registry.clients.load(request.match_info["client_id"])
    if client is None:
        return not_found(request)
    owner = None if client.owner_id is None else await registry.users.get(client.owner_id)
    return render(
        "admin_app.html",
        status=status,
        **console.context,
        site_name=registry.settings.site_name,
        client=client,
        owner=owner,
        notice=notice,
        decided=request.query.get("decided", ""),
        diff=platform.change_diff(client, client.pending_changes),
        version=platform.review_version(client),
        trail=await registry.audit.for_client(client.client_id, 50),
        usage=await platform.usage(registry, client.client_id),
        scopes=i18n.described(registry.settings.scopes),
    )


@html_page
async def decide(request: web.Request) -> web.Response:
    """Approve, reject (with a reason), suspend (with a reason) or reinstate an application, or
    approve or reject the change it waits with."""
    console = await admin(request)
    if isinstance(console, web.Response):
        return console
    fields = await read_fields(request)
    check_csrf(console, fields)
    registry = request.app[REGISTRY]
    client_id = request.match_info["client_id"]
    if await registry.clients.load(client_id) is None:
        return not_found(request)
    decision = first(fields, "decision")
    reason = first(fields, "reason").strip()
    reviewer = console.session.username or str(console.user_id)
    if decision not in DECISIONS:
        return await _application_page(request, console, notice=_("Choose a decision."), status=400)
    if decision in ("reject", "suspend") and not reason:
        return await _application_page(request, console, notice=_(_REASON_NEEDED[decision]), status=400)
    if len(reason) > REASON_LIMIT:
        return await _application_page(
            request,
            console,
            notice=_("Keep the reason under %(limit)d characters.") % {"limit": REASON_LIMIT},
            status=400,
        )
    try:
        version = first(fields, "version") or None
        if decision == "approve":
            await platform.approve(registry, client_id, reviewer=reviewer, version=version)
        elif decision == "reject":
            await platform.reject(registry, client_id, reason, reviewer=reviewer, version=version)
        elif decision == "suspend":
            await platform.suspend(registry, client_id, reason, reviewer=reviewer)
        else:
            await platform.reinstate(registry, client_id, reviewer=reviewer)
    except ReviewError as error:
        return await _application_page(request, console, notice=_(str(error)), status=409)
    return see_other(f"{paths.ADMIN}/apps/{client_id}?decided={decision}")
