"""The OpenID Foundation's RP-Initiated Logout OP plan
(``oidcc-rp-initiated-logout-certification-test-plan``), against RP-Initiated Logout 1.0.

Every module first signs the user in with the code flow (the ID token is the hint), then sends
the browser to the discovered ``end_session_endpoint``. Where the suite expects "no redirect back:
an error page, or the OP asking the user", Tessera shows an error page for a request it cannot
trust (a post_logout_redirect_uri not registered) and a confirmation page when it does not know the
request comes from the user's app (no valid hint): it redirects only after the user confirms.
"""

from __future__ import annotations

import jwt
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import rsa

from auth_server.clients import Client
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.conformance.support import (
    DISCOVERY,
    ISSUER,
    SIGNED_OUT,
    Login,
    code_flow,
    confirm_sign_out,
    end_session,
    in_query,
    openid_client,
    signed_in_silently,
    with_alg_none,
)

WITH_QUERY = "https://printer.example/bye?from=tessera"


async def _signed_in(http: TestClient, registry: Registry, user: User) -> tuple[Client, Login]:
    client, secret = await openid_client(registry, post_logout_redirect_uris=[SIGNED_OUT, WITH_QUERY])
    login = await code_flow(http, client, secret, user)
    assert "code" in await signed_in_silently(http, client)
    return client, login


async def _still_signed_in(http: TestClient, client: Client) -> None:
    assert "code" in await signed_in_silently(http, client), "the user was signed out"


async def _signed_out(http: TestClient, client: Client) -> None:
    """oidcc-rp-initiated-logout's last step: a prompt=none request now says login_required."""
    answer = await signed_in_silently(http, client)
    assert answer.get("error") == "login_required", answer


async def test_oidcc_rp_initiated_logout_discovery_endpoint_verification(http: TestClient) -> None:
    """CheckDiscEndSessionEndpoint: end_session_endpoint is advertised, on the issuer's origin."""
    document = await (await http.get(DISCOVERY)).json()
    assert document["end_session_endpoint"] == f"{ISSUER}/oauth2/logout"


async def test_oidcc_rp_initiated_logout(http: TestClient, registry: Registry, member: User) -> None:
    """A valid hint and a registered post_logout_redirect_uri: signed out at once, sent there with
    state (§2, §3); the session cookie is cleared; prompt=none then says login_required."""
    client, login = await _signed_in(http, registry, member)
    response = await end_session(
        http, id_token_hint=login.tokens["id_token"], post_logout_redirect_uri=SIGNED_OUT, state="bye-123"
    )
    assert response.status == 302, await response.text()
    assert response.headers["Location"] == f"{SIGNED_OUT}?state=bye-123"
    assert "tessera_session" in response.cookies  # cleared (set empty, expired)
    await _signed_out(http, client)


async def test_oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(
    http: TestClient, registry: Registry, member: User
) -> None:
    """An unregistered post_logout_redirect_uri is never followed (§3): an error page."""
    client, login = await _signed_in(http, registry, member)
    response = await end_session(
        http,
        id_token_hint=login.tokens["id_token"],
        post_logout_redirect_uri="https://attacker.example/logged-out",
        state="s",
    )
    assert response.status == 400 and "Location" not in response.headers
    await _still_signed_in(http, client)


async def test_oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri(
    http: TestClient, registry: Registry, member: User
) -> None:
    """A query added to a registered URI makes it another URI: exact match only (§3)."""
    client, login = await _signed_in(http, registry, member)
    response = await end_session(
        http, id_token_hint=login.tokens["id_token"], post_logout_redirect_uri=f"{SIGNED_OUT}?foo=bar"
    )
    assert response.status == 400 and "Location" not in response.headers
    await _still_signed_in(http, client)


async def test_registered_query_is_kept_and_state_added(
    http: TestClient, registry: Registry, member: User
) -> None:
    """A registered URI with a query: its query kept, state added (§3)."""
    client, login = await _signed_in(http, registry, member)
    response = await end_session(
        http, id_token_hint=login.tokens["id_token"], post_logout_redirect_uri=WITH_QUERY, state="x y"
    )
    assert response.status == 302
    assert in_query(response.headers["Location"]) == {"from": "tessera", "state": "x y"}
    await _signed_out(http, client)


async def test_oidcc_rp_initiated_logout_modified_id_token_hint(
    http: TestClient, registry: Registry, member: User
) -> None:
    """The hint changed to alg none: not this server's ID token; no redirect (§2: the OP MUST
    validate it issued the hint)."""
    client, login = await _signed_in(http, registry, member)
    response = await end_session(
        http,
        id_token_hint=with_alg_none(login.tokens["id_token"]),
        post_logout_redirect_uri=SIGNED_OUT,
        state="s",
    )
    assert response.status in (200, 400) and "Location" not in response.headers
    await _still_signed_in(http, client)


async def test_oidcc_rp_initiated_logout_bad_id_token_hint(
    http: TestClient, registry: Registry, member: User
) -> None:
    """A hint with the right claims, signed by someone else's key: no redirect."""
    client, login = await _signed_in(http, registry, member)
    claims = jwt.decode(login.tokens["id_token"], options={"verify_signature": False})
    header = jwt.get_unverified_header(login.tokens["id_token"])
    foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, foreign_key, algorithm="RS256", headers={"kid": header["kid"]})
    response = await end_session(http, id_token_hint=forged, post_logout_redirect_uri=SIGNED_OUT, state="s")
    assert response.status in (200, 400) and "Location" not in response.headers
    await _still_signed_in(http, client)


async def test_oidcc_rp_initiated_logout_no_id_token_hint(
    http: TestClient, registry: Registry, member: User
) -> None:
    """No hint: the OP MUST ask the user (§2) and must not redirect before; with client_id (which
    identifies the registered URI) the user is asked, then signed out and sent back."""
    client, _ = await _signed_in(http, registry, member)
    # post_logout_redirect_uri alone names no client: an error page
    response = await end_session(http, post_logout_redirect_uri=SIGNED_OUT, state="s")
    assert response.status == 400 and "Location" not in response.headers
    # with client_id: the confirmation page
    page = await end_session(http, client_id=client.client_id, post_logout_redirect_uri=SIGNED_OUT, state="s")
    assert page.status == 200 and "Location" not in page.headers
    await _still_signed_in(http, client)
    confirmed = await confirm_sign_out(http, page)
    assert confirmed.status == 303
    assert confirmed.headers["Location"] == f"{SIGNED_OUT}?state=s"
    await _signed_out(http, client)


async def test_oidcc_rp_initiated_logout_no_params(
    http: TestClient, registry: Registry, member: User
) -> None:
    """No parameters: the user is asked, then signed out, and told so (no redirect anywhere)."""
    client, _ = await _signed_in(http, registry, member)
    page = await end_session(http)
    await _still_signed_in(http, client)
    confirmed = await confirm_sign_out(http, page)
    assert confirmed.status == 200 and "Location" not in confirmed.headers
    await _signed_out(http, client)


async def test_oidcc_rp_initiated_logout_no_post_logout_redirect_uri(
    http: TestClient, registry: Registry, member: User
) -> None:
    """A valid hint, no post_logout_redirect_uri: signed out at once, a "signed out" page."""
    client, login = await _signed_in(http, registry, member)
    response = await end_session(http, id_token_hint=login.tokens["id_token"], state="s")
    assert response.status == 200 and "Location" not in response.headers
    await _signed_out(http, client)


async def test_oidcc_rp_initiated_logout_no_state(http: TestClient, registry: Registry, member: User) -> None:
    """No state: sent back to the registered URI exactly, with no state added (§3)."""
    client, login = await _signed_in(http, registry, member)
    response = await end_session(
        http, id_token_hint=login.tokens["id_token"], post_logout_redirect_uri=SIGNED_OUT
    )
    assert response.status == 302
    assert response.headers["Location"] == SIGNED_OUT
    await _signed_out(http, client)


async def test_oidcc_rp_initiated_logout_only_state(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Only state: nothing to redirect to and no hint: the user is asked; state goes nowhere."""
    client, _ = await _signed_in(http, registry, member)
    page = await end_session(http, state="s")
    assert page.status == 200 and "Location" not in page.headers
    confirmed = await confirm_sign_out(http, page)
    assert "Location" not in confirmed.headers
    await _signed_out(http, client)


async def test_rp_initiated_logout_by_form_post(http: TestClient, registry: Registry, member: User) -> None:
    """§2: the end-session endpoint takes POST (a form) as well as GET."""
    client, login = await _signed_in(http, registry, member)
    response = await end_session(
        http, "POST", id_token_hint=login.tokens["id_token"], post_logout_redirect_uri=SIGNED_OUT, state="p"
    )
    assert response.status in (302, 303)
    if response.headers["Location"].startswith("/oauth2/logout"):  # a cross-site POST becomes a GET
        response = await http.get(response.headers["Location"], allow_redirects=False)
    assert response.headers["Location"] == f"{SIGNED_OUT}?state=p"
    await _signed_out(http, client)


async def test_hint_of_another_client_with_client_id_is_refused(
    http: TestClient, registry: Registry, member: User
) -> None:
    """§2: with both, the hint must have been issued to client_id."""
    client, login = await _signed_in(http, registry, member)
    other, _ = await openid_client(registry, name="Other", post_logout_redirect_uris=[SIGNED_OUT])
    response = await end_session(
        http,
        id_token_hint=login.tokens["id_token"],
        client_id=other.client_id,
        post_logout_redirect_uri=SIGNED_OUT,
    )
    assert response.status == 400 and "Location" not in response.headers
    await _still_signed_in(http, client)
