-- Storage backends: each blob row names the store holding its bytes, so a live installation can
-- keep blobs on the shared volume and in object stores at once, and move them between stores.

-- `volume` (the shared volume) or an object store's URL (`s3://bucket/prefix`,
-- `az://container/prefix`). Invariant: a committed row means its bytes are durably in `store`.
ALTER TABLE blobs ADD COLUMN store TEXT NOT NULL DEFAULT 'volume';
-- Set by a migration when the row switched to `store`: the copy in `previous_store` stays until
-- no unfinished job created before `moved_at` (whose message may name it) refers to the blob.
ALTER TABLE blobs ADD COLUMN previous_store TEXT;
ALTER TABLE blobs ADD COLUMN moved_at TIMESTAMPTZ;
ALTER TABLE blobs ADD CONSTRAINT blobs_previous_store_moved
    CHECK ((previous_store IS NULL) = (moved_at IS NULL) AND previous_store IS DISTINCT FROM store);

CREATE INDEX blobs_store ON blobs (store, owner, sha256);
CREATE INDEX blobs_previous_store ON blobs (previous_store) WHERE previous_store IS NOT NULL;

-- Migrations between stores. While one is unfinished every replica sends new uploads to its
-- target; at most one is unfinished at a time.
CREATE TABLE storage_migrations (
    id          BIGSERIAL   PRIMARY KEY,
    source      TEXT        NOT NULL,
    target      TEXT        NOT NULL CHECK (target <> source),
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX storage_migrations_one_active ON storage_migrations ((true)) WHERE finished_at IS NULL;
