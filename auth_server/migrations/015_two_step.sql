-- Two-step sign-in (issue 18): an authenticator app (TOTP, RFC 6238), passkeys (WebAuthn) and
-- one-time recovery codes; and the clients' default_acr_values (OpenID Connect Registration §2).

-- A user's authenticator app: its seed encrypted under the key-encryption key (AES-256-GCM, the
-- user id bound as associated data), as signing keys are. confirmed_at is NULL while she is
-- setting it up (she has not yet typed a code from it): such a row turns nothing on.
CREATE TABLE totp_authenticators (
    user_id          uuid PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    secret_encrypted bytea NOT NULL,
    kek_id           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    confirmed_at     timestamptz
);

-- One-time recovery codes: only their SHA-256 (each carries 80 random bits), each usable once.
CREATE TABLE recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- Passkeys (WebAuthn credentials): the public key, never a secret.
CREATE TABLE passkeys (
    credential_id bytea PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name          text NOT NULL,
    public_key    bytea NOT NULL,
    sign_count    bigint NOT NULL DEFAULT 0,
    transports    text[] NOT NULL DEFAULT '{}',
    backed_up     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);
CREATE INDEX passkeys_user ON passkeys (user_id, created_at);

-- OpenID Connect Registration §2: the acr values a client asks for when a request names none
ALTER TABLE clients ADD COLUMN default_acr_values text[];
