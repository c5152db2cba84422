"""OpenID Connect: what makes the authorization server an OpenID Provider.

``claims`` (which of a user's claims a request may see), ``subjects`` (public and pairwise ``sub``),
``id_tokens`` (the ID token and the JWTs signed like it), ``requests`` (the authentication request's
parameters: nonce, prompt, max_age, claims...), ``logout`` (RP-initiated and back-channel logout).
The endpoints are ``endpoints/userinfo.py``, ``endpoints/end_session.py`` and the discovery document
in ``endpoints/metadata.py``.
"""
