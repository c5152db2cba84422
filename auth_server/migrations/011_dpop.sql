-- Issue 17: DPoP (RFC 9449). A client registered with dpop_bound_access_tokens (§5.2) must send a
-- DPoP proof with every token request.
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens boolean NOT NULL DEFAULT false;

-- The refresh tokens of a public client that sent a DPoP proof are bound to that proof's key (§5):
-- the key's RFC 7638 thumbprint, for the whole family; a refresh must come with a proof made with
-- it. NULL: not bound (a confidential client's refresh tokens are bound to its authentication).
ALTER TABLE refresh_token_families ADD COLUMN dpop_jkt text;
