-- The Photo Warehouse's own records, in its own schema. Owners are token subjects (Tessera user ids).
CREATE TABLE photos (
    photo_id     uuid PRIMARY KEY,
    owner        text NOT NULL,
    title        text NOT NULL DEFAULT '',
    content_type text NOT NULL,
    size         integer NOT NULL,
    content      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX photos_owner_created ON photos (owner, created_at DESC, photo_id DESC);
