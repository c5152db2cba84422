-- Issue 17: security profiles a client is registered under (auth_server/profiles.py). Today one:
-- 'fapi2', the FAPI 2.0 Security Profile (PAR, PKCE S256, private_key_jwt, DPoP-bound tokens, codes
-- of at most 60 s...). NULL: none. The settings a profile implies (require_pushed_authorization_requests,
-- dpop_bound_access_tokens, response_types, id_token_signed_response_alg) are stored in their own
-- columns as well, so that a client's registration says what holds; the profile is what the flows
-- read, so that turning one of them off cannot take a client out of its profile.
ALTER TABLE clients
    ADD COLUMN tessera_profile text,
    ADD CONSTRAINT tessera_profile_values CHECK (tessera_profile IN ('fapi2'));
