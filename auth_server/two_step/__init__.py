"""Two-step sign-in (issue 18): what a user adds to her password, and signing in with a passkey.

* :mod:`~auth_server.two_step.totp`: an authenticator app's codes (RFC 6238), its QR code;
* :mod:`~auth_server.two_step.recovery`: one-time recovery codes, for when the app or the passkey
  is lost;
* :mod:`~auth_server.two_step.passkeys`: passkeys (WebAuthn Level 3), registered at
  ``/account/security``, used instead of the password or as the second step;
* :mod:`~auth_server.two_step.script`: the one script Tessera's pages run (passkeys need it), and
  the CSP that allows it by its hash.

Their records are :mod:`auth_server.stores.two_step` (PostgreSQL, the TOTP replay guard in Redis)
and :mod:`auth_server.stores.sign_in_steps` (Redis: half-finished sign-ins, WebAuthn challenges).
The pages are ``endpoints/login.py`` and ``endpoints/two_step.py`` (signing in) and
``endpoints/security.py`` (``/account/security``); what reaches ID tokens is
:mod:`auth_server.oidc.acr`.
"""
