"""Schemathesis: requests generated from each server's OpenAPI document never get a 5xx.

A bounded run (a few dozen cases per operation); a longer one is a matter of raising
``SCHEMATHESIS_EXAMPLES``.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, settings

from auth_server.routes import document as auth_document
from resource_server.routes import document as resource_document

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "15"))
CASES = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

auth_schema = schemathesis.openapi.from_dict(auth_document())
resource_schema = schemathesis.openapi.from_dict(resource_document())


def _check(response: object) -> None:
    status = getattr(response, "status_code")  # noqa: B009 - requests.Response
    text = getattr(response, "text")  # noqa: B009
    assert status < 500, (status, text[:300])
    assert "Traceback" not in text


@auth_schema.parametrize()
@CASES
def test_auth_server_never_fails(case: schemathesis.Case, servers: tuple[str, str]) -> None:
    _check(case.call(base_url=servers[0], timeout=10))


@resource_schema.parametrize()
@CASES
def test_photo_warehouse_never_fails(case: schemathesis.Case, servers: tuple[str, str]) -> None:
    _check(case.call(base_url=servers[1], timeout=10))
