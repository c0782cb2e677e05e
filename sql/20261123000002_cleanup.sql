-- Cleanup: retention of finished jobs, and reconciling the volume with the database.

-- Set when a cleanup pass finds no intact file for a committed blob row (the volume was damaged
-- or restored from an older copy); cleared when an upload of the same bytes restores the file or
-- a later pass finds it back. Only damage from outside Baton sets it: cleanup itself never leaves
-- a committed row without its file.
ALTER TABLE blobs ADD COLUMN missing_at TIMESTAMPTZ;

CREATE INDEX blobs_missing ON blobs (missing_at) WHERE missing_at IS NOT NULL;

-- Retention looks for the oldest finished jobs of one terminal status.
CREATE INDEX jobs_status_finished_at ON jobs (status, finished_at) WHERE finished_at IS NOT NULL;
