"""Device authorization endpoint (RFC 8628 §3.1-3.2), read as its steps.

read the form (``resource`` may repeat, RFC 8707 §2) → authenticate the client within this
endpoint's rate limits (a public client names itself with ``client_id``) → the grant's rules
(``grants/device_code.py`` :func:`~auth_server.grants.device_code.start`) → no-store JSON.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.grants import device_code
from auth_server.rate_limits import authenticated_client
from shared.errors import NO_STORE, InvalidRequest, PayloadTooLarge
from shared.http import FORM, body_deadline, single_valued

REPEATABLE = frozenset({"resource"})


async def device_authorization(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    settings = registry.settings
    form, named = await _read_form(request)
    client = await authenticated_client(
        request,
        registry,
        form,
        name="device_authorization",
        endpoint=settings.endpoint(paths.DEVICE_AUTHORIZATION),
        per_ip=settings.rate_device_authorization_per_ip,
        per_client=settings.rate_device_authorization_per_client,
    )
    body = await device_code.start(registry, client, form, named)
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=NO_STORE)


async def _read_form(request: web.Request) -> tuple[dict[str, str], list[str]]:
    """The form's single-valued parameters (RFC 6749 §3.2), and every ``resource`` named."""
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
    form = single_valued(pairs, repeatable=REPEATABLE)
    return form, [value for name, value in pairs if name in REPEATABLE and value]
