-- Security events, append-only: who did what to which client, user or key, and from where.
CREATE TABLE audit_events (
    event_id   bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    event      text NOT NULL,
    client_id  text,
    subject    text,
    ip         text,
    details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_event_at ON audit_events (event, at);
