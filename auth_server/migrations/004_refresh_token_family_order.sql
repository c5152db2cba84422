-- `tessera purge` walks families in creation order, a batch at a time, without a full sort.
-- (On a large existing table this index build blocks refresh-token issuance while it runs:
-- apply it in a quiet moment.)
CREATE INDEX refresh_token_families_created ON refresh_token_families (created_at, family_id);
