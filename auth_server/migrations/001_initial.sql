-- Tessera authorization server: the durable records. Short-lived state (codes, sessions) is in Redis.

CREATE TABLE clients (
    client_id                  text PRIMARY KEY,
    client_name                text NOT NULL,
    -- SHA-256 of the generated 256-bit secret; NULL for public clients.
    secret_hash                bytea,
    redirect_uris              text[] NOT NULL DEFAULT '{}',
    grant_types                text[] NOT NULL,
    scope                      text[] NOT NULL DEFAULT '{}',
    token_endpoint_auth_method text NOT NULL,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT public_clients_have_no_secret
        CHECK ((token_endpoint_auth_method = 'none') = (secret_hash IS NULL))
);

CREATE TABLE users (
    user_id       uuid PRIMARY KEY,
    username      text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- usernames are unique regardless of case
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE consents (
    user_id    uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    client_id  text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope      text[] NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, client_id)
);

-- One family per authorization grant; every rotation adds a token to it. Reuse revokes the family.
CREATE TABLE refresh_token_families (
    family_id  uuid PRIMARY KEY,
    client_id  text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    subject    text NOT NULL,
    scope      text[] NOT NULL,
    auth_time  timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    revoked_reason text
);

CREATE TABLE refresh_tokens (
    token_hash   bytea PRIMARY KEY,
    family_id    uuid NOT NULL REFERENCES refresh_token_families (family_id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    -- set when this token is exchanged for its successor
    rotated_at   timestamptz,
    successor    bytea,
    -- the access token issued alongside, so that revoking the family can deny-list it
    access_jti   text,
    access_expires_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_token_families_subject ON refresh_token_families (subject, client_id);

-- Signing keys. State is derived from activates_at alone: the active key is the newest one whose
-- activates_at has passed; an older key stays published until tokens it signed have expired.
CREATE TABLE signing_keys (
    kid                   text PRIMARY KEY,
    alg                   text NOT NULL,
    public_jwk            jsonb NOT NULL,
    private_key_encrypted bytea NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    activates_at          timestamptz NOT NULL
);
CREATE INDEX signing_keys_activates_at ON signing_keys (activates_at);
