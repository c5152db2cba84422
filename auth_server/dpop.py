"""DPoP at the authorization server (RFC 9449 §5, §8, §10): the proofs it takes, and what it binds.

An add-on the token endpoint and the grants call, as they call PKCE:

* the token endpoint checks the request's proof (:meth:`DPoP.token_request`; :mod:`shared.dpop`
  does the checking of §4.3, the same as at resource servers) and hands it to the grant in the
  :class:`~auth_server.grants.common.TokenRequest`; a client registered with
  ``dpop_bound_access_tokens`` (§5.2) must send one;
* a grant issues tokens bound to the proof's key: the access token carries ``cnf.jkt`` and is of
  ``token_type`` ``DPoP`` (:func:`token_type`); the refresh tokens of a public client are bound to
  the same key (:func:`family_binding`, kept on the refresh-token family), and a refresh must then
  come with a proof made with that key (:mod:`auth_server.refresh_rotation`);
* ``dpop_jkt`` at the authorization endpoint binds the code to a key (§10;
  ``check_dpop_jkt`` in :mod:`auth_server.authorization.checks`), checked when the code is
  redeemed, in the same atomic step as PKCE (:mod:`auth_server.stores.codes`);
  :func:`code_binding` reconciles it with a proof sent along (a pushed authorization request, §10.1);
* this server's own protected resource, userinfo, takes a bound token as resource servers do (§7:
  ``Authorization: DPoP`` with a proof of its key, never as a bearer token):
  :meth:`DPoP.presented`.

Proofs' ``jti`` are remembered in Redis, so a proof is good once across every replica; nonces
(§8), when required (``TESSERA_DPOP_NONCE``), are HMACs of a time step under a secret every
replica shares (``instance_secrets``), so any replica accepts any replica's nonce, with nothing
stored per nonce. Nothing here runs for a request without a ``DPoP`` header.
"""

from __future__ import annotations

from typing import Any

import jwt
from aiohttp import web

from auth_server import paths, profiles
from auth_server.clients import Client
from auth_server.settings import Settings
from auth_server.stores.instance_secrets import InstanceSecrets
from auth_server.stores.used_jtis import UsedJtiStore
from shared.dpop import (
    HEADER,
    NONCE_HEADER,
    HmacNonces,
    InvalidDPoPProof,
    NonceRequired,
    Proof,
    ProofRefused,
    ProofVerifier,
    UseDPoPNonce,
)
from shared.errors import InvalidRequest, InvalidToken
from shared.jwt_validation import NO_PUBLIC_URL

NONCE_SECRET = "dpop-nonce-key"  # noqa: S105 - its name in instance_secrets, not the secret
BEARER = "Bearer"
DPOP = "DPoP"  # RFC 9449 §5: the token_type of a bound access token


class _Jtis:
    """The proofs' ``jti`` among the other single-use identifiers in Redis, in a namespace of their own."""

    def __init__(self, jtis: UsedJtiStore) -> None:
        self._jtis = jtis

    async def first_use(self, ident: str, ttl: int) -> bool:
        return await self._jtis.first_use(f"dpop:{ident}", ttl)


class _SharedNonces:
    """:class:`shared.dpop.HmacNonces` under the installation's secret, read from Postgres the
    first time a nonce is needed (and only if nonces are required at all)."""

    def __init__(self, secrets: InstanceSecrets, lifetime: int) -> None:
        self._secrets = secrets
        self._lifetime = lifetime
        self._nonces: HmacNonces | None = None

    async def _loaded(self) -> HmacNonces:
        if self._nonces is None:
            self._nonces = HmacNonces(await self._secrets.get_or_create(NONCE_SECRET), self._lifetime)
        return self._nonces

    async def current(self) -> str:
        return await (await self._loaded()).current()

    async def valid(self, nonce: str) -> bool:
        return await (await self._loaded()).valid(nonce)


class DPoP:
    """The authorization server's DPoP proofs: checked against its own endpoints' URLs."""

    def __init__(self, settings: Settings, jtis: UsedJtiStore, secrets: InstanceSecrets) -> None:
        self.nonces = _SharedNonces(secrets, settings.dpop_nonce_lifetime) if settings.dpop_nonce else None
        self.verifier = ProofVerifier(
            replay=_Jtis(jtis), window=settings.dpop_proof_window, nonces=self.nonces
        )
        self.token_endpoint = settings.endpoint(paths.TOKEN)

    async def proof(self, request: web.Request, *, url: str) -> Proof | None:
        """The request's DPoP proof, checked for its method and ``url`` (the public URL of the
        endpoint it came to); None when it has none. :class:`~shared.dpop.InvalidDPoPProof` or
        :class:`~shared.dpop.UseDPoPNonce` if it does not pass."""
        sent = request.headers.getall(HEADER, [])
        if not sent:
            return None
        if len(sent) > 1:  # §4.3 step 1
            raise InvalidDPoPProof(f"Send one {HEADER} header, not {len(sent)}.")
        return await self.verifier.verify(sent[0], method=request.method, url=url)

    async def token_request(self, request: web.Request, client: Client) -> Proof | None:
        """The proof of a token request (§5), required of a client registered with
        ``dpop_bound_access_tokens`` (§5.2) or under a security profile, whose algorithms it must
        then use (``auth_server/profiles.py``: FAPI 2.0)."""
        proof = await self.proof(request, url=self.token_endpoint)
        if proof is None:
            if profiles.requires_dpop(client):
                raise InvalidDPoPProof(
                    "This client is registered with dpop_bound_access_tokens: send a DPoP proof with"
                    " every token request."
                )
            return None
        if profiles.of(client) is not None:  # the proof passed: its header is a JWS header
            alg = jwt.get_unverified_header(request.headers[HEADER]).get("alg")
            profiles.check_proof_algorithm(client, alg)
        return proof

    async def presented(
        self, request: web.Request, scheme: str, token: str, claims: dict[str, Any], *, url: str | None
    ) -> None:
        """Whether ``token`` (its ``claims`` verified) was presented as its binding requires, at this
        server's protected resource ``url`` (§7; None: it has no public URL, and refuses DPoP
        requests): a DPoP-bound token only with the ``DPoP`` scheme and a proof of its key, never as
        a bearer token (§7.2), and a bearer token never as DPoP. The refusals are resource-server
        challenges (401)."""
        confirmation = claims.get("cnf")
        jkt = confirmation.get("jkt") if isinstance(confirmation, dict) else None
        if scheme != HEADER:
            if jkt is not None:
                raise InvalidToken(
                    "This access token is bound to a DPoP key: send it as 'Authorization: DPoP <token>'"
                    " with a DPoP proof."
                )
            return
        if not isinstance(jkt, str):
            raise _dpop_challenge(
                InvalidToken("This access token is not bound to a DPoP key: send it as a Bearer token.")
            )
        sent = request.headers.getall(HEADER, [])
        if len(sent) != 1:
            raise ProofRefused(f"Send exactly one {HEADER} header with a DPoP proof for this request.")
        if url is None:
            raise ProofRefused(NO_PUBLIC_URL)
        try:
            await self.verifier.verify(
                sent[0], method=request.method, url=url, access_token=token, bound_to=jkt
            )
        except InvalidDPoPProof as refused:
            raise ProofRefused(refused.description) from None
        except UseDPoPNonce as asked:
            raise NonceRequired(asked.description, nonce=asked.nonce) from None
        except InvalidToken as mismatch:
            raise _dpop_challenge(mismatch) from None

    async def response_headers(self, proof: Proof | None) -> dict[str, str]:
        """A fresh nonce for the client's next proof (§8.2), when nonces are required."""
        if proof is None or self.nonces is None:
            return {}
        return {NONCE_HEADER: await self.nonces.current()}


def _dpop_challenge(error: InvalidToken) -> InvalidToken:
    error.scheme = HEADER  # the request used DPoP: so does the challenge (§7.1)
    return error


def token_type(jkt: str | None) -> str:
    """``DPoP`` for an access token bound to a key, ``Bearer`` otherwise (RFC 9449 §5)."""
    return BEARER if jkt is None else DPOP


def jkt_of(proof: Proof | None) -> str | None:
    return None if proof is None else proof.jkt


def family_binding(client: Client, proof: Proof | None) -> str | None:
    """The key a new refresh-token family is bound to: a public client's proof key (§5: it has no
    other credential a stolen refresh token would need); a confidential client's refresh tokens are
    bound to its authentication instead, and it may change keys."""
    return jkt_of(proof) if client.is_public else None


def code_binding(dpop_jkt: str | None, proof: Proof | None) -> str | None:
    """The key an authorization code is bound to (§10): ``dpop_jkt`` as requested, or the key of
    the proof sent with the request (a pushed authorization request, §10.1); both must agree."""
    if proof is None:
        return dpop_jkt
    if dpop_jkt is not None and dpop_jkt != proof.jkt:
        raise InvalidRequest("dpop_jkt is not the thumbprint of the DPoP proof's key.")
    return proof.jkt
