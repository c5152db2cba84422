"""X-Forwarded-For is believed only from the gateway (trusted proxies), read right to left."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from shared.http import TRUSTED_PROXIES, client_ip, parse_networks


def _request(peer: str, xff: list[str] | None = None, trusted: str = "") -> web.Request:
    app = web.Application()
    app[TRUSTED_PROXIES] = parse_networks(trusted)
    headers = [("X-Forwarded-For", value) for value in xff or []]
    request = make_mocked_request("GET", "/", headers=headers, app=app)
    return request.clone(remote=peer)


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip(_request("203.0.113.9", ["198.51.100.1"])) == "203.0.113.9"


def test_from_an_untrusted_peer_the_header_is_ignored() -> None:
    assert client_ip(_request("203.0.113.9", ["198.51.100.1"], trusted="10.0.0.0/8")) == "203.0.113.9"


def test_from_the_gateway_the_nearest_untrusted_hop_is_the_client() -> None:
    # a forged left-most entry is skipped: only hops added by trusted proxies are believed
    request = _request("10.0.0.5", ["6.6.6.6, 198.51.100.7", "10.0.0.9"], trusted="10.0.0.0/8, 127.0.0.1")
    assert client_ip(request) == "198.51.100.7"


def test_garbage_hops_fall_back_to_the_peer() -> None:
    assert client_ip(_request("10.0.0.5", ["not-an-ip"], trusted="10.0.0.0/8")) == "10.0.0.5"
    assert client_ip(_request("10.0.0.5", [], trusted="10.0.0.0/8")) == "10.0.0.5"
