"""The developer console, ``/developers`` (issue 15, item 1): a signed-in user applies for an app,
follows its review, gets its client id and, once, its secret, rotates the secret, edits the app and
sees how much it is used.

Rules (issue 15, "Rules"): server-rendered, usable without JavaScript, every form carries the
session's CSRF token, never framed (:func:`auth_server.pages.render`); a developer sees only their
own apps — another's app is "not found", exactly like one that does not exist. Every decision goes
through :mod:`auth_server.platform`, and so through the one registration service and the audit trail.

The secret: a client registered with ``client_secret_basic`` has a secret hash from creation, but
the console never shows that first secret. Once the app is approved, the developer asks for its
secret (a POST, so that no prefetch or reload of a link can spend it) and gets a fresh one, once;
after that only a rotation gives a new one. A rejected applicant therefore never held a secret, and
no secret is ever shown for an app that cannot use it.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from auth_server import i18n, paths, platform
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.i18n import N_, _
from auth_server.pages import current_session, render, see_other
from auth_server.platform import Application, ReviewError
from auth_server.registration import RegistrationError
from auth_server.stores.sessions import Session
from shared.error_middleware import html_page
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.http import FORM, body_deadline, has_control_characters

# what each field of the application form is called on the page (for error messages; translated
# there)
LABELS = {
    "client_name": N_("App name"),
    "description": N_("What the app does"),
    "client_uri": N_("Website"),
    "logo_uri": N_("Logo URL"),
    "policy_uri": N_("Privacy policy URL"),
    "contact_name": N_("Responsible person"),
    "contact_email": N_("Contact email"),
    "redirect_uris": N_("Redirect URIs"),
    "scope": N_("Access the app asks for"),
    "scope_justification": N_("Why the app needs it"),
}


class Console:
    """A signed-in person on a console page: their session and user id."""

    def __init__(self, session: Session, user_id: uuid.UUID) -> None:
        self.session = session
        self.user_id = user_id

    @property
    def context(self) -> dict[str, Any]:
        return {"username": self.session.username, "csrf": self.session.csrf}


async def signed_in(request: web.Request) -> Console | None:
    """The person signed in, or ``None`` (the page then sends them to sign in)."""
    session = await current_session(request)
    if session is None or session.user_id is None:
        return None
    return Console(session, uuid.UUID(session.user_id))


def to_sign_in(return_to: str) -> web.Response:
    """Off to the login page, which brings the person back to ``return_to`` afterwards."""
    return see_other(f"{paths.LOGIN}?{urlencode({'return_to': return_to})}")


def not_found(request: web.Request) -> web.Response:
    """What anyone sees of a page they may not see: nothing to tell it from one that does not exist."""
    return render(
        "error.html",
        status=404,
        headline=_("Page not found"),
        advice=_("There is no such page here, or you are not allowed to see it."),
        error="not_found",
        description="No such page.",
        site_name=request.app[REGISTRY].settings.site_name,
    )


async def read_fields(request: web.Request) -> dict[str, list[str]]:
    """A console form, each name with all its values (the scope checkboxes repeat ``scope``);
    line breaks are allowed (the text areas), other control characters are not."""
    if request.content_type != FORM:
        raise InvalidRequest(f"The request body must be {FORM}.")
    try:
        async with body_deadline(request):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body is larger than {request.client_max_size} bytes.") from None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The request body is not valid UTF-8 form encoding.") from None
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        if has_control_characters(name) or has_control_characters(value.replace("\r", "").replace("\n", "")):
            raise InvalidRequest("The form must not contain control characters.")
        fields.setdefault(name, []).append(value)
    return fields


def first(fields: dict[str, list[str]], name: str) -> str:
    return (fields.get(name) or [""])[0]


def check_csrf(console: Console, fields: dict[str, list[str]]) -> None:
    """Every console form carries the session's CSRF token."""
    if not console.session.csrf_matches(first(fields, "csrf_token")):
        raise InvalidRequest(
            "This form expired or did not come from this site; reload the page and try again."
        )


def application_from(fields: dict[str, list[str]]) -> Application:
    """The application form as the developer filled it in (redirect URIs one per line)."""
    text = {name: first(fields, name).strip() for name in LABELS if name not in ("redirect_uris", "scope")}
    uris = tuple(
        dict.fromkeys(line.strip() for line in first(fields, "redirect_uris").splitlines() if line.strip())
    )
    scope = tuple(dict.fromkeys(fields.get("scope", [])))
    return Application(**text, redirect_uris=uris, scope=scope)


async def own_app(request: web.Request, console: Console) -> Client | None:
    """The app the URL names, if this developer owns it (another's is as good as none)."""
    client = await request.app[REGISTRY].clients.load(request.match_info["client_id"])
    if client is None or not platform.owner_of(client, console.user_id):
        return None
    return client


async def _developer_and_app(request: web.Request) -> tuple[Console, Client] | web.Response:
    """The signed-in developer and the app the URL names, if theirs; else the answer: off to sign
    in, or not found (another's app is as good as none)."""
    console = await signed_in(request)
    if console is None:
        return to_sign_in(paths.DEVELOPERS)
    client = await own_app(request, console)
    if client is None:
        return not_found(request)
    return console, client


def _form_page(
    request: web.Request,
    console: Console,
    *,
    template: str,
    application: Application,
    problems: dict[str, str] | None = None,
    message: str | None = None,
    client: Client | None = None,
    status: int = 200,
) -> web.Response:
    registry = request.app[REGISTRY]
    return render(
        template,
        status=status,
        **console.context,
        site_name=registry.settings.site_name,
        app=application,
        client=client,
        problems=problems or {},
        message=message,
        labels={name: _(label) for name, label in LABELS.items()},
        scopes=i18n.described(platform.offered_scopes(registry.settings)),
    )


@html_page
async def developers(request: web.Request) -> web.Response:
    """The developer's apps, each with its status."""
    console = await signed_in(request)
    if console is None:
        return to_sign_in(paths.DEVELOPERS)
    registry = request.app[REGISTRY]
    apps = await registry.clients.owned_by(console.user_id)
    return render("developers.html", **console.context, site_name=registry.settings.site_name, apps=apps)


@html_page
async def apply_page(request: web.Request) -> web.Response:
    console = await signed_in(request)
    if console is None:
        return to_sign_in(paths.DEVELOPERS)
    return _form_page(request, console, template="developers_apply.html", application=Application())


@html_page
async def apply(request: web.Request) -> web.Response:
    """Apply for an app: registered pending review; a problem is shown on the form, nothing lost."""
    console = await signed_in(request)
    if console is None:
        return to_sign_in(paths.DEVELOPERS)
    fields = await read_fields(request)
    check_csrf(console, fields)
    registry = request.app[REGISTRY]
    application = application_from(fields)
    problems = platform.form_problems(application, registry.settings)
    if not problems:
        try:
            registered = await platform.apply(registry, console.user_id, application)
        except RegistrationError as error:
            return _form_page(
                request,
                console,
                template="developers_apply.html",
                application=application,
                message=plain_registration_error(error),
                status=400,
            )
        return see_other(f"{paths.DEVELOPERS}/apps/{registered.client.client_id}?applied=1")
    return _form_page(
        request,
        console,
        template="developers_apply.html",
        application=application,
        problems=problems,
        status=400,
    )


def plain_registration_error(error: RegistrationError) -> str:
    """A registration rule's message, with what to do about it."""
    return _("This cannot be registered: %(rule)s. Correct it and send the form again.") % {
        "rule": _(str(error))
    }


@html_page
async def app_page(request: web.Request) -> web.Response:
    """One app: its review status, its client id once approved, its secret's state, and its use."""
    found = await _developer_and_app(request)
    if isinstance(found, web.Response):
        return found
    console, client = found
    return await _app_page(request, console, client)


async def _app_page(
    request: web.Request,
    console: Console,
    client: Client,
    *,
    secret: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> web.Response:
    registry = request.app[REGISTRY]
    usage = await platform.usage(registry, client.client_id) if client.status != "pending" else None
    return render(
        "developers_app.html",
        status=status,
        **console.context,
        site_name=registry.settings.site_name,
        client=client,
        applied=request.query.get("applied") == "1",
        edited=request.query.get("edited", ""),
        secret_issued=await platform.secret_issued(registry, client.client_id),
        secret=secret,
        overlap_hours=round(registry.settings.secret_overlap / 3600, 1),
        notice=notice,
        usage=usage,
        diff=platform.change_diff(client, client.pending_changes),
        scopes=i18n.described(registry.settings.scopes),
    )


@html_page
async def secret(request: web.Request) -> web.Response:
    """Show the approved app's first secret, once, or rotate it (``action=issue|rotate|rotate-now``:
    the old secret keeps working for the overlap, or stops at once)."""
    found = await _developer_and_app(request)
    if isinstance(found, web.Response):
        return found
    console, client = found
    fields = await read_fields(request)
    check_csrf(console, fields)
    registry = request.app[REGISTRY]
    try:
        action = first(fields, "action")
        if action in ("rotate", "rotate-now"):
            value = await platform.rotate(registry, client, keep_old=action == "rotate")
        else:
            value = await platform.issue_secret(registry, client)
    except ReviewError as error:
        return await _app_page(request, console, client, notice=_(str(error)), status=409)
    fresh = await registry.clients.load(client.client_id)
    assert fresh is not None
    return await _app_page(request, console, fresh, secret=value)


@html_page
async def edit_page(request: web.Request) -> web.Response:
    found = await _developer_and_app(request)
    if isinstance(found, web.Response):
        return found
    console, client = found
    return _form_page(
        request, console, template="developers_edit.html", application=Application.of(client), client=client
    )


@html_page
async def edit(request: web.Request) -> web.Response:
    """Change an app: wider access waits for review, the rest applies at once."""
    found = await _developer_and_app(request)
    if isinstance(found, web.Response):
        return found
    console, client = found
    fields = await read_fields(request)
    check_csrf(console, fields)
    registry = request.app[REGISTRY]
    application = application_from(fields)
    problems = platform.form_problems(application, registry.settings)
    if problems:
        return _form_page(
            request,
            console,
            template="developers_edit.html",
            application=application,
            client=client,
            problems=problems,
            status=400,
        )
    try:
        edited = await platform.edit(registry, client, application)
    except RegistrationError as error:
        return _form_page(
            request,
            console,
            template="developers_edit.html",
            application=application,
            client=client,
            message=plain_registration_error(error),
            status=400,
        )
    outcome = "review" if edited.for_review else "saved"
    return see_other(f"{paths.DEVELOPERS}/apps/{client.client_id}?edited={outcome}")
