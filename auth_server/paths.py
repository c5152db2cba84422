"""The authorization server's URL paths; metadata builds absolute URLs from these and the issuer."""

AUTHORIZE = "/oauth2/authorize"
TOKEN = "/oauth2/token"  # noqa: S105 - a path, not a secret
JWKS = "/oauth2/jwks"
REVOKE = "/oauth2/revoke"
INTROSPECT = "/oauth2/introspect"
REVOCATION_LIST = "/oauth2/revoked"  # Tessera's list of revoked access tokens (not an RFC)
METADATA = "/.well-known/oauth-authorization-server"
LOGIN = "/login"
LOGOUT = "/logout"
CONSENT = "/consent"
WELCOME = "/"
