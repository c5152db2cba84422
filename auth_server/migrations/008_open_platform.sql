-- Issue 15 (the open platform): applications under review, their developers, admins, consents that
-- the user bounds in time, secrets that overlap when rotated, and initial access tokens.

-- A client's place in the review: only an approved client may be used. Clients made before the
-- platform existed were registered by an operator: approved.
ALTER TABLE clients
    ADD COLUMN status                     text NOT NULL DEFAULT 'approved',
    ADD COLUMN owner_id                   uuid REFERENCES users (user_id) ON DELETE SET NULL,
    ADD COLUMN registered_via             text NOT NULL DEFAULT 'operator',
    ADD COLUMN description                text,
    ADD COLUMN contact_name               text,
    ADD COLUMN contact_email              text,
    ADD COLUMN scope_justification        text,
    -- what the reviewer told the developer (a rejection's or a suspension's reason)
    ADD COLUMN review_note                text,
    ADD COLUMN reviewed_at                timestamptz,
    -- a change waiting for review (wider scopes, new redirect URIs): the approved settings keep working
    ADD COLUMN pending_changes            jsonb,
    -- the secret before the last rotation, accepted until previous_secret_expires_at
    ADD COLUMN previous_secret_hash       bytea,
    ADD COLUMN previous_secret_expires_at timestamptz,
    -- when the developer console first handed out the secret (it shows it once)
    ADD COLUMN secret_issued_at           timestamptz,
    -- RFC 7592: SHA-256 of the registration access token of a dynamically registered client
    ADD COLUMN registration_access_token_hash bytea,
    ADD CONSTRAINT client_statuses CHECK (status IN ('pending', 'approved', 'rejected', 'suspended')),
    ADD CONSTRAINT registered_via_values CHECK (registered_via IN ('operator', 'developer', 'dynamic'));
CREATE INDEX clients_owner ON clients (owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX clients_status ON clients (status) WHERE status <> 'approved';

-- Platform operators review applications and use the admin API.
ALTER TABLE users ADD COLUMN is_admin boolean NOT NULL DEFAULT false;

-- The user chooses how long a grant lasts (NULL: until revoked); the account page shows when the
-- app last used it.
ALTER TABLE consents
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz;

-- RFC 7591 §3: initial access tokens an operator hands out for dynamic registration.
CREATE TABLE registration_tokens (
    token_hash   bytea PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    max_uses     integer,
    uses         integer NOT NULL DEFAULT 0,
    auto_approve boolean NOT NULL DEFAULT false,
    CONSTRAINT uses_within_max CHECK (max_uses IS NULL OR uses <= max_uses)
);

-- The consoles read an application's audit trail by its client id.
CREATE INDEX audit_events_client_at ON audit_events (client_id, at) WHERE client_id IS NOT NULL;
