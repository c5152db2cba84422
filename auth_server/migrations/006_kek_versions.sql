-- Issue 11: key-encryption-key rotation (`tessera keys rewrap`).
-- Which key-encryption key wraps each private signing key: the KEK's version id (the first 16 hex
-- digits of HMAC-SHA256(kek, "tessera-kek-id"), never key material). NULL: a key wrapped before ids
-- were recorded, opened by whichever configured KEK can; `tessera keys rewrap` fills it in.
-- (A nullable column without a default: no table rewrite.)
ALTER TABLE signing_keys
    ADD COLUMN kek_id text CONSTRAINT signing_keys_kek_id_format CHECK (kek_id ~ '^[0-9a-f]{16}$');
