"""Reading an app's Prometheus metrics as its metrics listener serves them: ``/metrics`` is never on
the public app (``shared/observability.py`` :func:`~shared.observability.metrics_app`, started beside
it by ``shared/serving.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from shared.observability import METRICS, metrics_app


async def scrape(aiohttp_client: Callable[..., Awaitable[TestClient]], http: TestClient) -> str:
    """``GET /metrics`` from the metrics listener of the app ``http`` serves."""
    app = http.app
    assert app is not None
    listener = await aiohttp_client(metrics_app(app[METRICS]))
    response = await listener.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    return await response.text()
