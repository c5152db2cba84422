-- Issue 3: introspection rights, and private_key_jwt clients (RFC 7523) that hold keys, not secrets.
ALTER TABLE clients
    ADD COLUMN allow_introspection boolean NOT NULL DEFAULT false,
    ADD COLUMN jwks jsonb,
    ADD COLUMN jwks_uri text;

ALTER TABLE clients DROP CONSTRAINT public_clients_have_no_secret;
ALTER TABLE clients ADD CONSTRAINT secret_iff_secret_method
    CHECK ((token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post')) = (secret_hash IS NOT NULL));
ALTER TABLE clients ADD CONSTRAINT private_key_jwt_has_keys
    CHECK ((token_endpoint_auth_method = 'private_key_jwt') = (jwks IS NOT NULL OR jwks_uri IS NOT NULL));
