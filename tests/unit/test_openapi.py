"""The OpenAPI documents are valid OpenAPI 3.1 and list exactly the routes the apps serve."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from auth_server.app import create_app
from auth_server.routes import document as auth_document
from resource_server.app import create_app as create_resource_app
from resource_server.routes import document as resource_document
from resource_server.settings import ResourceSettings
from tests.support.servers import make_settings


def _routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, operations in document["paths"].items() for method in operations}


@pytest.mark.parametrize(
    ("document", "app"),
    [
        (auth_document(), lambda: create_app(make_settings("postgresql://x@h/db", "redis://h/0", "p:"))),
        (
            resource_document(),
            lambda: create_resource_app(
                ResourceSettings(
                    issuer="http://localhost:8000", database_url="postgresql://x@h/db", audience="a"
                )
            ),
        ),
    ],
    ids=["auth", "resource"],
)
def test_documents_are_valid_and_true(document: dict[str, Any], app: Any) -> None:
    validate(document)
    assert _documented(document) == _routes(app())
