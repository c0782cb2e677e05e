-- Baton's schema: content-addressed blobs, jobs, their input files, the dispatch outbox and each
-- job's timeline. Every row carries its owner; every query filters on it.

-- One row per distinct content per owner. Invariant: a committed row means the file
-- blobs/<owner>/<sha256[0..2]>/<sha256[2..4]>/<sha256> is on the volume, durably.
CREATE TABLE blobs (
    owner        TEXT        NOT NULL,
    sha256       TEXT        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size         BIGINT      NOT NULL CHECK (size >= 0),
    md5          TEXT        NOT NULL CHECK (md5 ~ '^[0-9a-f]{32}$'),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, sha256)
);

CREATE TABLE jobs (
    id               UUID        PRIMARY KEY,
    owner            TEXT        NOT NULL,
    model            TEXT        NOT NULL CHECK (model ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    params           JSONB       NOT NULL CHECK (jsonb_typeof(params) = 'object'),
    status           TEXT        NOT NULL DEFAULT 'queued'
                                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- The current attempt: the fencing token. Events for any other attempt are stale.
    attempt          INTEGER     NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    -- Attempts from first_attempt on count against max_attempts; a manual retry moves it.
    first_attempt    INTEGER     NOT NULL DEFAULT 1 CHECK (first_attempt >= 1),
    max_attempts     INTEGER     NOT NULL CHECK (max_attempts >= 1),
    -- Times the current attempt was handed back by RabbitMQ before any worker started it.
    redeliveries     INTEGER     NOT NULL DEFAULT 0,
    queue_timeout_ms BIGINT      NOT NULL CHECK (queue_timeout_ms > 0),
    run_timeout_ms   BIGINT      NOT NULL CHECK (run_timeout_ms > 0),
    -- The worker running the current attempt, and until when its lease holds.
    worker           TEXT,
    lease_expires_at TIMESTAMPTZ,
    heartbeat_at     TIMESTAMPTZ,
    result           JSONB,
    error            JSONB,
    idempotency_key  TEXT,
    request_hash     TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When the current attempt became queued (submit or retry): queue waits count from here.
    queued_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    dispatched_at    TIMESTAMPTZ,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK ((status = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
);

-- Job ids are UUIDv7, so ordering by id is ordering by creation; listings page on it.
CREATE INDEX jobs_owner_id ON jobs (owner, id DESC);
CREATE INDEX jobs_owner_status_id ON jobs (owner, status, id DESC);
CREATE INDEX jobs_owner_model_id ON jobs (owner, model, id DESC);
CREATE UNIQUE INDEX jobs_owner_idempotency_key ON jobs (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Background passes look for expired leases and timed-out waits among unfinished jobs only.
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_queued_since ON jobs (queued_at) WHERE status = 'queued';

CREATE TABLE files (
    id           UUID        PRIMARY KEY,
    job_id       UUID        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    owner        TEXT        NOT NULL,
    position     INTEGER     NOT NULL CHECK (position >= 0),
    -- The multipart part name: how the model refers to this input.
    name         TEXT        NOT NULL,
    -- The client's file name, sanitised; display metadata only, never part of a path.
    filename     TEXT        NOT NULL,
    sha256       TEXT        NOT NULL,
    content_type TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (job_id, position),
    FOREIGN KEY (owner, sha256) REFERENCES blobs (owner, sha256)
);

CREATE INDEX files_owner_blob ON files (owner, sha256);

-- The intent to publish a job attempt. Written in the same transaction as the job (or its
-- retry); removed once RabbitMQ confirmed the message. `available_at` doubles as a claim: a
-- dispatcher pushes it into the future while it publishes, so a crashed dispatcher's claims come
-- back by themselves.
CREATE TABLE outbox (
    job_id       UUID        PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    attempt      INTEGER     NOT NULL,
    available_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    tries        INTEGER     NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX outbox_available_at ON outbox (available_at);

-- What happened to each job, in order: received, stored, dispatched, started, heartbeat,
-- retried, finished, ...
CREATE TABLE job_events (
    id       BIGSERIAL   PRIMARY KEY,
    job_id   UUID        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    kind     TEXT        NOT NULL,
    attempt  INTEGER,
    worker   TEXT,
    detail   JSONB
);

CREATE INDEX job_events_job ON job_events (job_id, id);
