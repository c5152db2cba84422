"""The admin HTTP API (issue 15): clients, users, consents, grants, signing keys and the audit log,
as JSON on a port of its own (``tessera auth-server --admin-port P``), never the public one.

It is a resource server of Tessera: it accepts only Tessera's own access tokens carrying the admin
scopes, validated in-process against the key ring (:mod:`auth_server.admin_api.auth`).
:mod:`~auth_server.admin_api.app` builds the app and starts it beside the public one;
:mod:`~auth_server.admin_api.routes` holds the endpoints and their OpenAPI descriptions.
"""
