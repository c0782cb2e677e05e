-- Owners and access: API keys, who submitted each job, and per-owner quotas.

-- An API key. The secret is never stored: only the SHA-256 of the whole token, which carries
-- 256 random bits, so a fast hash is as strong as a slow one. `id` is the lookup part the
-- token shows in the clear (`baton_<id>_<secret>`).
CREATE TABLE api_keys (
    id            TEXT        PRIMARY KEY CHECK (id ~ '^[a-z0-9]{1,32}$'),
    secret_sha256 TEXT        NOT NULL CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    owner         TEXT        NOT NULL CHECK (owner ~ '^[a-z0-9_-]{1,64}$'),
    role          TEXT        NOT NULL CHECK (role IN ('read', 'submit', 'admin')),
    name          TEXT        NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ
);

CREATE INDEX api_keys_owner ON api_keys (owner, created_at);

-- Who submitted the job: `key:<id>`, `oidc:<subject>` or `anonymous` (authentication off).
-- Jobs from before authentication have none.
ALTER TABLE jobs ADD COLUMN submitted_by TEXT;

-- Per-owner quota overrides; a NULL column takes the configured default.
CREATE TABLE quotas (
    owner        TEXT             PRIMARY KEY CHECK (owner ~ '^[a-z0-9_-]{1,64}$'),
    stored_bytes BIGINT           CHECK (stored_bytes >= 0),
    active_jobs  BIGINT           CHECK (active_jobs >= 0),
    submit_rate  DOUBLE PRECISION CHECK (submit_rate > 0),
    updated_at   TIMESTAMPTZ      NOT NULL DEFAULT now()
);

-- Each owner's submission rate: a token bucket, refilled at the owner's rate up to one second's
-- worth (at least one submission), shared by every replica.
CREATE TABLE submit_buckets (
    owner        TEXT             PRIMARY KEY,
    tokens       DOUBLE PRECISION NOT NULL,
    refreshed_at TIMESTAMPTZ      NOT NULL
);

-- The stored-bytes quota sums an owner's blobs; this lets it read the index alone.
CREATE INDEX blobs_owner_size ON blobs (owner) INCLUDE (size);
