"""Tessera's authorization server (RFC 6749, RFC 7636, RFC 8414, RFC 9068, RFC 9207, RFC 9700)."""
