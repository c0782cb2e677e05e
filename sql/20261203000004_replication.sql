-- Local-first replication (`BATON_STORAGE_REPLICA_URL`): blobs stay on the volume, their primary
-- store, and a background service copies each to an object store. One row per blob and replica
-- store once the replicator has seen the blob; a blob with no row, or with `replicated_at` NULL,
-- is unreplicated (blobs stored before replication was turned on get their rows the same way).

CREATE TABLE blob_replicas (
    owner           TEXT        NOT NULL,
    sha256          TEXT        NOT NULL,
    -- The replica's store name (`s3://bucket/prefix`, `az://container/prefix`).
    store           TEXT        NOT NULL,
    -- Set only once the remote copy's size and SHA-256 were read back and matched the blob.
    replicated_at   TIMESTAMPTZ,
    -- Copies started, the one in progress included.
    attempts        INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the next copy may start. Doubles as a claim: a replicator pushes it past the copy's
    -- timeout while it copies, so a crashed replicator's claims come back by themselves.
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, sha256, store),
    FOREIGN KEY (owner, sha256) REFERENCES blobs (owner, sha256) ON DELETE CASCADE
);

CREATE INDEX blob_replicas_due ON blob_replicas (store, next_attempt_at) WHERE replicated_at IS NULL;

-- Finds the blobs stored since a recent moment without scanning them all.
CREATE INDEX blobs_created_at ON blobs (created_at);
