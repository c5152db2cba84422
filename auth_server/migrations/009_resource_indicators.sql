-- Issue 16: the APIs this server issues tokens for (RFC 8707 resource indicators, RFC 8693 token
-- exchange). A client may ask for a token for a resource when one of its scopes belongs to it; the
-- token's aud is then exactly that resource's identifier. The service client is the API's own
-- client: the one that may exchange tokens addressed to the API for tokens to other APIs.
CREATE TABLE resources (
    identifier        text PRIMARY KEY,
    name              text NOT NULL,
    scopes            text[] NOT NULL CONSTRAINT resources_have_scopes CHECK (cardinality(scopes) > 0),
    service_client_id text REFERENCES clients (client_id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- The resources an authorization grant covers: each token issued from it is for one of them (none:
-- the default audience).
ALTER TABLE refresh_token_families ADD COLUMN resources text[] NOT NULL DEFAULT '{}';

-- What a user consented to for a client, per audience (an API's identifier, or the default
-- audience): {"<audience>": ["scope", ...]}. A request is answered without asking only if every
-- audience it names was allowed every scope it asks. '{}': a consent from before resource
-- indicators, all for the default audience (its scope column).
ALTER TABLE consents ADD COLUMN audiences jsonb NOT NULL DEFAULT '{}'::jsonb;
