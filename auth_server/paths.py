"""The authorization server's URL paths; metadata builds absolute URLs from these and the issuer."""

AUTHORIZE = "/oauth2/authorize"
TOKEN = "/oauth2/token"  # noqa: S105 - a path, not a secret
JWKS = "/oauth2/jwks"
REVOKE = "/oauth2/revoke"
INTROSPECT = "/oauth2/introspect"
REVOCATION_LIST = "/oauth2/revoked"  # Tessera's list of revoked access tokens (not an RFC)
METADATA = "/.well-known/oauth-authorization-server"
OPENID_CONFIGURATION = "/.well-known/openid-configuration"  # OpenID Connect Discovery 1.0 §4
USERINFO = "/oauth2/userinfo"
LOGIN = "/login"
LOGOUT = "/logout"
CONSENT = "/consent"
END_SESSION = "/oauth2/logout"  # OpenID Connect RP-Initiated Logout 1.0 end_session_endpoint
WELCOME = "/"
DEVELOPERS = "/developers"  # the developer console (issue 15)
ADMIN = "/admin"  # the admin console (issue 15)
ACCOUNT = "/account"  # what the user granted, and taking it back (issue 15)
REGISTRATION = "/oauth2/register"  # RFC 7591 registration_endpoint
REGISTRATION_CLIENT = "/oauth2/register/{client_id}"  # RFC 7592 registration_client_uri
