"""The physical limits each scenario is measured beside, in the same round.

Each is a bare aiohttp handler on uvloop, as the real servers run, doing the work a scenario cannot
avoid and nothing else: no client lookup, no rate limit, no metrics, no log line.

- ``form-sign``: parse the form body and sign an ES256 JWT with the claims of a Tessera access
  token (and, with a DPoP proof in the request, first verify the proof and bind the token to its
  key, as ``form-proof-sign`` below): the floor under the token endpoint.
- ``hello``: answer a constant: the floor under the resource server and the polled endpoints.
- ``flow``: the floor under a browser flow. ``GET /oauth2/authorize`` answers a 302 to the
  ``redirect_uri`` with a random code (which names the ID token's algorithm, from the query's
  ``bench_id_alg``: ``none``, ``RS256``, ``ES256``); ``POST /oauth2/par`` answers 201 with a
  random ``request_uri``; ``POST /oauth2/token`` signs the ES256 access token and, for RS256 or
  ES256 codes, an ID token with that algorithm (keys loaded once).
- ``verify ISSUER``: ``GET /api/me``: verify the bearer token's ES256 signature (the key of the
  auth server's JWKS, loaded once at start), its issuer, audience and expiry.
- ``dpop-verify ISSUER HTU``: ``GET /api/me`` with ``Authorization: DPoP``: verify the proof
  (its key from its header, signature, ``htm``, ``htu``, ``iat``, ``ath``, ``jti`` seen once, in
  memory) and the token (signature, issuer, audience, expiry, ``cnf.jkt`` the proof's key).
- ``json-insert DATABASE_URL``: ``POST /oauth2/register``: parse the JSON body and insert one row
  (a new id and a hashed secret) into a table of its own in PostgreSQL: the floor under dynamic
  registration, which cannot avoid a durable write.

Run as ``python -m tests.load.baselines KIND PORT [ARGS...]``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import time
import urllib.request
from typing import Any

import asyncpg
import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared import serving
from shared.ids import random_id

ISSUER = "http://localhost:8000"
KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ID_TOKEN_KEYS: dict[str, Any] = {"ES256": KEY, "RS256": RSA_KEY}
HEADERS = {"kid": "bare", "typ": "at+jwt"}
DPOP_WINDOW = 60  # seconds either way, as Tessera's default


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _access_token(subject: str, scope: str, cnf: str | None = None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": subject,
        "aud": f"{ISSUER}/api",
        "client_id": "bare",
        "scope": scope,
        "iat": now,
        "exp": now + 600,
        "jti": random_id(),
    }
    if cnf is not None:
        claims["cnf"] = {"jkt": cnf}
    # the fastest way PyJWT offers, as Tessera signs: orjson for the payload, then the JWS layer
    return jwt.api_jws.encode(orjson.dumps(claims), KEY, algorithm="ES256", headers=HEADERS)


class Proofs:
    """The minimum of a DPoP proof check (RFC 9449 §4.3): one signature, the claims, one jti."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def verify(self, proof: str, method: str, htu: str, access_token: str | None = None) -> str:
        """The proof's key thumbprint; ValueError if it fails."""
        header = jwt.get_unverified_header(proof)
        jwk = header["jwk"]
        if header.get("typ") != "dpop+jwt" or header.get("alg") != "ES256" or "d" in jwk:
            raise ValueError("bad proof header")
        key = jwt.algorithms.ECAlgorithm.from_jwk(jwk)
        claims = jwt.decode(proof, key, algorithms=["ES256"])  # type: ignore[arg-type]
        now = time.time()
        if claims["htm"] != method or claims["htu"] != htu or abs(now - claims["iat"]) > DPOP_WINDOW:
            raise ValueError("proof for another request")
        if access_token is not None and claims.get("ath") != _b64(
            hashlib.sha256(access_token.encode()).digest()
        ):
            raise ValueError("proof for another token")
        if claims["jti"] in self.seen:
            raise ValueError("replayed proof")
        self.seen[claims["jti"]] = now
        if len(self.seen) > 200_000:  # forget the oldest half: a bare limit, not a real store
            for jti in list(self.seen)[:100_000]:
                del self.seen[jti]
        members = {m: jwk[m] for m in ("crv", "kty", "x", "y")}
        return _b64(hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest())


PROOFS = Proofs()


async def form_sign(request: web.Request) -> web.Response:
    form = await request.post()
    cnf = None
    proof = request.headers.get("DPoP")
    if proof is not None:  # form-proof-sign: the token endpoint's URL as the client called it
        try:
            cnf = PROOFS.verify(proof, "POST", str(request.url.with_query(None)))
        except (ValueError, KeyError, jwt.PyJWTError):
            return web.json_response({"error": "invalid_dpop_proof"}, status=400)
    token = _access_token(str(form.get("client_id", "bare")), str(form.get("scope", "")), cnf)
    body = {"access_token": token, "token_type": "DPoP" if cnf else "Bearer", "expires_in": 600}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def authorize(request: web.Request) -> web.Response:
    query = request.query
    code = f"{query.get('bench_id_alg', 'none')}.{random_id()}"
    redirect_uri = query.get("redirect_uri", "http://127.0.0.1:9/callback")  # none with a request_uri
    location = f"{redirect_uri}?code={code}&state={query.get('state', '')}"
    return web.Response(status=302, headers={"Location": location})


async def par(request: web.Request) -> web.Response:
    await request.post()
    body = {"request_uri": f"urn:ietf:params:oauth:request_uri:{random_id()}", "expires_in": 60}
    return web.Response(status=201, body=orjson.dumps(body), content_type="application/json")


async def code_token(request: web.Request) -> web.Response:
    form = await request.post()
    if form.get("grant_type") != "authorization_code":
        return await form_sign(request)
    alg = str(form.get("code", "none")).split(".", 1)[0]
    body: dict[str, Any] = {
        "access_token": _access_token("user", "openid profile photos:read"),
        "token_type": "Bearer",
        "expires_in": 600,
    }
    key = ID_TOKEN_KEYS.get(alg)
    if key is not None:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "user", "aud": "rp", "iat": now, "exp": now + 600, "nonce": "n"}
        body["id_token"] = jwt.api_jws.encode(
            orjson.dumps(claims), key, algorithm=alg, headers={"kid": "bare-id"}
        )
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _jwks_key(issuer: str) -> Any:
    """The first ES256 key of the auth server's JWKS, loaded once."""
    url = f"{issuer}/oauth2/jwks"
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (the bench's own server)
        keys = json.loads(answer.read())["keys"]
    for jwk in keys:
        if jwk.get("kty") == "EC":
            return jwt.algorithms.ECAlgorithm.from_jwk(jwk)
    raise SystemExit(f"no EC key at {url}")


def _verified(token: str, key: Any, issuer: str) -> dict[str, Any]:
    """The claims of an access token of ``issuer`` (signature, issuer, audience, expiry)."""
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["ES256"], audience=f"{issuer}/api", issuer=issuer
    )
    return claims


def verify_app(issuer: str) -> web.Application:
    key = _jwks_key(issuer)

    async def me(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = _verified(token, key, issuer)
        except jwt.PyJWTError:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.Response(body=orjson.dumps({"sub": claims["sub"]}), content_type="application/json")

    application = web.Application()
    application.router.add_get("/api/me", me)
    return application


def dpop_verify_app(issuer: str, htu: str) -> web.Application:
    key = _jwks_key(issuer)
    proofs = Proofs()

    async def me(request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            jkt = proofs.verify(request.headers["DPoP"], "GET", htu, token)
            claims = _verified(token, key, issuer)
            if scheme != "DPoP" or claims.get("cnf", {}).get("jkt") != jkt:
                raise ValueError("token bound to another key")
        except (ValueError, KeyError, jwt.PyJWTError):
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.Response(body=orjson.dumps({"sub": claims["sub"]}), content_type="application/json")

    application = web.Application()
    application.router.add_get("/api/me", me)
    return application


def json_insert_app(database_url: str) -> web.Application:
    table = f"bench_clients_{random_id()[:8].lower().replace('-', '_')}"

    async def pool(application: web.Application) -> Any:
        async with asyncpg.create_pool(database_url, min_size=1, max_size=10) as opened:
            await opened.execute(
                f'CREATE TABLE "{table}" (client_id text PRIMARY KEY, secret_digest bytea, metadata jsonb)'
            )
            application["pool"] = opened
            yield
            await opened.execute(f'DROP TABLE IF EXISTS "{table}"')

    async def register(request: web.Request) -> web.Response:
        document = orjson.loads(await request.read())
        client_id, secret = random_id(), random_id()
        await request.app["pool"].execute(
            f'INSERT INTO "{table}" VALUES ($1, $2, $3)',
            client_id,
            hashlib.sha256(secret.encode()).digest(),
            orjson.dumps(document).decode(),
        )
        body = {**document, "client_id": client_id, "client_secret": secret}
        return web.Response(status=201, body=orjson.dumps(body), content_type="application/json")

    application = web.Application()
    application.cleanup_ctx.append(pool)
    application.router.add_post("/oauth2/register", register)
    return application


def app(kind: str, args: list[str]) -> web.Application:
    if kind == "verify":
        return verify_app(args[0])
    if kind == "dpop-verify":
        return dpop_verify_app(args[0], args[1])
    if kind == "json-insert":
        return json_insert_app(args[0])
    application = web.Application()
    if kind == "form-sign":
        application.router.add_post("/oauth2/token", form_sign)
    elif kind == "hello":
        application.router.add_get("/api/hello", hello)
    elif kind == "flow":
        application.router.add_get("/oauth2/authorize", authorize)
        application.router.add_post("/oauth2/par", par)
        application.router.add_post("/oauth2/token", code_token)
    else:
        raise SystemExit(
            f"unknown baseline {kind!r}: form-sign, hello, flow, verify, dpop-verify, json-insert"
        )
    return application


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    serving.run_one(app(kind, argv[2:]), serving.Listener(host="127.0.0.1", port=port, shutdown_grace=1))


if __name__ == "__main__":
    main(sys.argv[1:])
