"""The authorization server's URL paths; metadata builds absolute URLs from these and the issuer."""

AUTHORIZE = "/oauth2/authorize"
PUSHED_AUTHORIZATION_REQUEST = "/oauth2/par"  # RFC 9126 pushed_authorization_request_endpoint
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
# two-step sign-in, passkeys and sessions (issue 18)
TWO_STEP = "/login/two-step"  # the second step after the password (or a step-up a request asks for)
TWO_STEP_PASSKEY_OPTIONS = "/login/two-step/passkey-options"  # WebAuthn options for that step (JSON)
PASSKEY_LOGIN = "/login/passkey"  # sign in with a passkey instead of the password
PASSKEY_LOGIN_OPTIONS = "/login/passkey-options"  # its WebAuthn options (JSON)
SECURITY = "/account/security"  # two-step sign-in, passkeys, password, signed-in sessions
REGISTRATION = "/oauth2/register"  # RFC 7591 registration_endpoint
REGISTRATION_CLIENT = "/oauth2/register/{client_id}"  # RFC 7592 registration_client_uri
DEVICE_AUTHORIZATION = "/oauth2/device_authorization"  # RFC 8628 §3.1 device_authorization_endpoint
DEVICE = "/device"  # RFC 8628 §3.3 verification_uri: the user enters the code here
DEVICE_CONSENT = "/device/consent"  # the answer of the consent page shown for a device
# accounts people make themselves (issue 18)
SIGNUP = "/signup"  # the sign-up form
SIGNUP_SENT = "/signup/sent"  # "check your mail", after sign-up or a request for a new link
VERIFY_EMAIL = "/signup/verify"  # the verification link (?token=), and its confirmation
VERIFY_RESEND = "/signup/resend"  # ask for a new verification mail
PASSWORD_RESET = "/password-reset"  # noqa: S105 - a path: ask for a reset link ("Forgot your password?")
PASSWORD_RESET_SENT = "/password-reset/sent"  # noqa: S105 - a path: "check your mail"
PASSWORD_RESET_NEW = "/password-reset/new"  # noqa: S105 - a path: the reset link (?token=)
# the pages' language and look (issue 18, item 5)
LANGUAGE = "/language"  # the language switch on every page (?lang=zh-Hans&next=/login...)
THEME_LOGO = "/theme/logo"  # the operator's logo (TESSERA_THEME_DIR)
