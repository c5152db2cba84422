-- Issue 11 (hardening round 2).

-- PKCE is required of every client using the code grant unless an operator relaxes it for one
-- confidential client; a stored consent answers silently only for confidential clients, or for a
-- client the operator marked first-party.
ALTER TABLE clients
    ADD COLUMN require_pkce boolean NOT NULL DEFAULT true,
    ADD COLUMN first_party boolean NOT NULL DEFAULT false;

-- The absolute end of a refresh-token family: rotation never slides a token past it. NULL (families
-- from before this migration) means created_at + TESSERA_REFRESH_FAMILY_LIFETIME.
ALTER TABLE refresh_token_families ADD COLUMN expires_at timestamptz;

-- Usernames are compared by one canonical form (NFKC, case-folded, NFKC again), computed by the
-- server at registration, lookup and lockout alike. This backfill is close to it for the names a
-- database can hold today (exact for ASCII); `tessera migrate` recomputes it exactly afterwards.
ALTER TABLE users ADD COLUMN username_canonical text;
UPDATE users SET username_canonical = lower(normalize(username, NFKC));
ALTER TABLE users ALTER COLUMN username_canonical SET NOT NULL;
CREATE UNIQUE INDEX users_username_canonical ON users (username_canonical);
DROP INDEX users_username_lower;
