"""``python -m examples.device_login``: sign in from a terminal with the device authorization grant
(RFC 8628), as a TV or a command-line tool would.

It reads the server's metadata (RFC 8414) for its two endpoints, asks for a device code, prints the
code and the link to open on a phone or a computer, polls the token endpoint at the interval the
server asked for (5 seconds more after each ``slow_down``), and prints the token response.

It is a public client: register one for the device grant alone (no redirect URI), e.g.::

    tessera client create --name "Device demo" --public \\
        --grant-type urn:ietf:params:oauth:grant-type:device_code --grant-type refresh_token \\
        --scope "openid profile offline_access photos:read"

then ``python -m examples.device_login --client-id <its id>`` (or ``TESSERA_DEVICE_CLIENT_ID``).
Standard library only: it imports nothing of Tessera.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
METADATA = "/.well-known/oauth-authorization-server"
TIMEOUT = 10  # seconds for each request


class SignInFailed(Exception):
    """The flow ended without tokens: the reason, in words."""


def _request(url: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """GET (or POST ``form``) and the JSON answer, whatever the status."""
    data = None if form is None else urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - the issuer given
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, {"error": f"HTTP {error.code}"}


def endpoints(issuer: str) -> tuple[str, str]:
    """The device authorization and token endpoints, from the metadata document."""
    status, doc = _request(issuer.rstrip("/") + METADATA)
    if status != 200 or "device_authorization_endpoint" not in doc:
        raise SignInFailed(f"{issuer} does not offer the device authorization grant")
    return doc["device_authorization_endpoint"], doc["token_endpoint"]


def sign_in(issuer: str, client_id: str, scope: str | None, out: Any = sys.stdout) -> dict[str, Any]:
    device_endpoint, token_endpoint = endpoints(issuer)
    form = {"client_id": client_id, **({"scope": scope} if scope else {})}
    status, authorization = _request(device_endpoint, form)
    if status != 200:
        raise SignInFailed(f"{authorization.get('error')}: {authorization.get('error_description', '')}")
    link = authorization.get("verification_uri_complete") or authorization["verification_uri"]
    print(f"To sign in, open {authorization['verification_uri']} and enter the code", file=out)
    print(f"\n    {authorization['user_code']}\n", file=out)
    print(f"or open {link}", file=out, flush=True)
    interval = int(authorization.get("interval", 5))  # RFC 8628 §3.2: 5 when not given
    deadline = time.monotonic() + int(authorization["expires_in"])
    while time.monotonic() < deadline:
        time.sleep(interval)
        status, answer = _request(
            token_endpoint,
            {"grant_type": DEVICE_CODE, "device_code": authorization["device_code"], "client_id": client_id},
        )
        if status == 200:
            return answer
        error = answer.get("error")
        if error == "slow_down":  # RFC 8628 §3.5: 5 seconds more, from now on
            interval += 5
        elif error != "authorization_pending":
            raise SignInFailed(f"{error}: {answer.get('error_description', '')}")
    raise SignInFailed("the code expired before anyone used it; run again for a new one")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.device_login", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--issuer", default=os.environ.get("TESSERA_ISSUER", "http://localhost:8000"))
    parser.add_argument("--client-id", default=os.environ.get("TESSERA_DEVICE_CLIENT_ID"))
    parser.add_argument("--scope", default="openid profile offline_access")
    args = parser.parse_args(argv)
    if not args.client_id:
        parser.error(
            "--client-id (or TESSERA_DEVICE_CLIENT_ID) is required: a public client for the device grant"
        )
    try:
        tokens = sign_in(args.issuer, args.client_id, args.scope)
    except SignInFailed as error:
        sys.exit(f"device login: {error}")
    except OSError as error:  # nothing answers there: say where, and how to point elsewhere
        reason = getattr(error, "reason", error)
        sys.exit(f"device login: cannot reach {args.issuer} ({reason}); --issuer names another server")
    except KeyboardInterrupt:
        sys.exit(130)
    print("Signed in. The token response:")
    print(json.dumps(tokens, indent=2))


if __name__ == "__main__":
    main()
