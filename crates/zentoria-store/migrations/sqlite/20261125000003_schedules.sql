-- Cron schedules on the job queue. next_run_at is the occurrence not yet enqueued; a
-- scheduler claims it by moving it forward with a compare-and-set, so each occurrence is
-- enqueued once however many processes share the database.

CREATE TABLE schedules (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    job_kind    TEXT NOT NULL,
    payload     TEXT NOT NULL,
    owner_id    TEXT,
    missed      TEXT NOT NULL CHECK (missed IN ('skip', 'run_once')),
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    next_run_at BIGINT NOT NULL,
    last_run_at BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled;
