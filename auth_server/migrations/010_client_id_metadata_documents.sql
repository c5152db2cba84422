-- Issue 16: clients identified by their client ID metadata document
-- (draft-ietf-oauth-client-id-metadata-document). Such a client's id is the URL of its document; it
-- is stored only once a signed-in user allows it (until then it lives in each replica's bounded
-- cache), so that consents, codes, refresh tokens and the audit trail can refer to it, and its row
-- is refreshed from the document when a later fetch finds it changed.
ALTER TABLE clients
    DROP CONSTRAINT registered_via_values,
    ADD CONSTRAINT registered_via_values
        CHECK (registered_via IN ('operator', 'developer', 'dynamic', 'metadata_document'));
