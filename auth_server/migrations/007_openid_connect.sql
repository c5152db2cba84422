-- Issue 14 (OpenID Connect): users' profiles, clients' OpenID metadata, and the instance's secrets.

-- The standard claims a user's profile can release (OpenID Connect Core §5.1).
ALTER TABLE users
    ADD COLUMN email          text,
    ADD COLUMN email_verified boolean NOT NULL DEFAULT false,
    ADD COLUMN name           text,
    ADD COLUMN nickname       text,
    ADD COLUMN picture        text,
    ADD COLUMN locale         text,
    ADD COLUMN zoneinfo       text,
    ADD COLUMN updated_at     timestamptz NOT NULL DEFAULT now();

-- Client metadata of OpenID Connect Dynamic Client Registration 1.0 §2, RP-Initiated Logout §3.1,
-- Back-Channel Logout §2.2 and RFC 7591 §2. NULL response_types: those of the grant types.
ALTER TABLE clients
    ADD COLUMN response_types                      text[],
    ADD COLUMN post_logout_redirect_uris           text[] NOT NULL DEFAULT '{}',
    ADD COLUMN subject_type                        text NOT NULL DEFAULT 'public',
    ADD COLUMN sector_identifier_uri               text,
    -- the host pairwise subjects are computed for (the redirect URIs' host, or the sector document's)
    ADD COLUMN sector_identifier                   text,
    ADD COLUMN id_token_signed_response_alg        text NOT NULL DEFAULT 'RS256',
    ADD COLUMN userinfo_signed_response_alg        text,
    ADD COLUMN backchannel_logout_uri              text,
    ADD COLUMN backchannel_logout_session_required boolean NOT NULL DEFAULT false,
    ADD COLUMN default_max_age                     integer,
    ADD COLUMN require_auth_time                   boolean NOT NULL DEFAULT false,
    ADD COLUMN logo_uri                            text,
    ADD COLUMN client_uri                          text,
    ADD COLUMN policy_uri                          text,
    ADD COLUMN tos_uri                             text,
    ADD CONSTRAINT subject_types CHECK (subject_type IN ('public', 'pairwise')),
    ADD CONSTRAINT pairwise_has_sector CHECK (subject_type = 'public' OR sector_identifier IS NOT NULL);

-- Random secrets made once per installation, shared by every replica (the pairwise-subject salt:
-- it must never change, or every pairwise subject would).
CREATE TABLE instance_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
