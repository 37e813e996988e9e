-- The durable job queue. A job is claimed by setting it running under a lease (lease_token
-- identifies the claim); a lease that expires without being renewed means its worker died,
-- and the job is claimed again.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           BIGINT NOT NULL,
    lease_until      BIGINT,
    lease_token      TEXT,
    dedupe_key       TEXT,
    owner_id         TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    progress         INTEGER,
    progress_message TEXT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX jobs_queued ON jobs (kind, priority DESC, run_at) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX jobs_kind_status ON jobs (kind, status);
CREATE INDEX jobs_owner ON jobs (owner_id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- At most one live job per (kind, dedupe_key): duplicates collapse into it.
CREATE UNIQUE INDEX jobs_dedupe ON jobs (kind, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running');
