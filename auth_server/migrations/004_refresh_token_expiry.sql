-- `tessera purge` finds expired refresh tokens by their expiry, in batches, without a full scan.
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
