"""Property-based: whatever bytes arrive, the server answers a clear 4xx, never a 5xx or a trace.

The servers run on real ports in a background thread, so Hypothesis can drive them synchronously.
"""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text


@EXAMPLES
@given(body=st.binary(max_size=2048))
def test_token_endpoint_survives_any_form_body(servers: tuple[str, str], body: bytes) -> None:
    response = httpx.post(
        f"{servers[0]}/oauth2/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _no_server_error(response)
    assert response.json()["error"] in {"invalid_request", "invalid_client", "temporarily_unavailable"}


@EXAMPLES
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from(["grant_type", "code", "client_id", "scope", "refresh_token", "x"]),
            st.text(max_size=40),
        ),
        max_size=8,
    )
)
def test_repeated_or_odd_parameters_are_invalid_request_not_crashes(
    servers: tuple[str, str], pairs: list[tuple[str, str]]
) -> None:
    response = httpx.post(
        f"{servers[0]}/oauth2/token",
        content=urlencode(pairs),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _no_server_error(response)


@EXAMPLES
@given(
    header=st.one_of(
        st.text(max_size=80), st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode())
    )
)
def test_any_authorization_header(servers: tuple[str, str], header: str) -> None:
    try:
        response = httpx.post(
            f"{servers[0]}/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": header},
        )
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return  # not even sendable as HTTP
    _no_server_error(response)
    assert response.status_code in (400, 401)


@EXAMPLES
@given(query=st.text(max_size=200))
def test_any_authorize_query(servers: tuple[str, str], query: str) -> None:
    try:
        response = httpx.get(f"{servers[0]}/oauth2/authorize?{query}")
    except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
        return
    _no_server_error(response)


@EXAMPLES
@given(
    token=st.one_of(
        st.text(max_size=300), st.lists(st.text(max_size=60), min_size=3, max_size=3).map(".".join)
    )
)
def test_any_bearer_token_at_the_warehouse_and_introspection(servers: tuple[str, str], token: str) -> None:
    try:
        response = httpx.get(f"{servers[1]}/api/photos", headers={"Authorization": f"Bearer {token}"})
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return
    _no_server_error(response)
    assert response.status_code in (400, 401)
