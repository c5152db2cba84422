"""The physical limits each scenario is measured beside, in the same run.

- ``form-sign``: a bare aiohttp handler that parses the form body and signs an ES256 JWT with the
  same claims as a Tessera access token, and nothing else: the floor under the token endpoint.
- ``hello``: a bare aiohttp handler that answers a constant: the floor under the resource server.

Run as ``python -m tests.load.baselines {form-sign|hello} PORT``, on uvloop like the real servers.
"""

from __future__ import annotations

import sys
import time

import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from shared import serving
from shared.ids import random_id

KEY = ec.generate_private_key(ec.SECP256R1())
HEADERS = {"kid": "bare", "typ": "at+jwt"}


async def form_sign(request: web.Request) -> web.Response:
    form = await request.post()
    now = int(time.time())
    claims = {
        "iss": "http://localhost:8000",
        "sub": str(form.get("client_id", "bare")),
        "aud": "http://localhost:8000/api",
        "client_id": "bare",
        "scope": str(form.get("scope", "")),
        "iat": now,
        "exp": now + 600,
        "jti": random_id(),
    }
    # the fastest way PyJWT offers, as Tessera signs: orjson for the payload, then the JWS layer
    token = jwt.api_jws.encode(orjson.dumps(claims), KEY, algorithm="ES256", headers=HEADERS)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": 600}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


def app(kind: str) -> web.Application:
    application = web.Application()
    if kind == "form-sign":
        application.router.add_post("/oauth2/token", form_sign)
    elif kind == "hello":
        application.router.add_get("/api/hello", hello)
    else:
        raise SystemExit(f"unknown baseline {kind!r}: form-sign or hello")
    return application


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    serving.run_one(app(kind), serving.Listener(host="127.0.0.1", port=port, shutdown_grace=1))


if __name__ == "__main__":
    main(sys.argv[1:])
