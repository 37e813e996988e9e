//! The job queue's SQL. Claims are the one place the backends differ: PostgreSQL skips rows
//! other workers have locked (`FOR UPDATE SKIP LOCKED`); SQLite serialises writers, so a plain
//! `UPDATE … RETURNING` over a sub-select is already atomic.

use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, Tx, db_err, on_db, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub priority: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub lease_until: Option<i64>,
    pub lease_token: Option<String>,
    pub dedupe_key: Option<String>,
    pub owner_id: Option<String>,
    pub cancel_requested: bool,
    pub progress: Option<i32>,
    pub progress_message: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, kind, payload, status, priority, attempts, max_attempts, run_at, \
    lease_until, lease_token, dedupe_key, owner_id, cancel_requested, progress, progress_message, \
    last_error, created_at, started_at, finished_at, updated_at";

pub struct NewJob<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub payload: &'a str,
    pub priority: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub dedupe_key: Option<&'a str>,
    pub owner_id: Option<&'a str>,
    pub now: i64,
}

/// Inserts a job inside `tx`. With a dedupe key, a live job of the same kind and key absorbs
/// the new one: its id is returned with `false`.
pub async fn insert(tx: &mut Tx, j: &NewJob<'_>) -> Result<(String, bool)> {
    let sql =
        "INSERT INTO jobs (id, kind, payload, status, priority, attempts, max_attempts, run_at,
                                 dedupe_key, owner_id, created_at, updated_at)
               VALUES ($1, $2, $3, 'queued', $4, 0, $5, $6, $7, $8, $9, $9)
               ON CONFLICT (kind, dedupe_key)
                   WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running')
               DO NOTHING";
    let inserted = on_tx!(tx, t => sqlx::query(sql)
        .bind(j.id)
        .bind(j.kind)
        .bind(j.payload)
        .bind(j.priority)
        .bind(j.max_attempts)
        .bind(j.run_at)
        .bind(j.dedupe_key)
        .bind(j.owner_id)
        .bind(j.now)
        .execute(&mut **t)
        .await
        .map(|r| r.rows_affected()))
    .map_err(db_err)?;
    if inserted == 1 {
        if let Tx::Postgres(t) = tx {
            // Delivered at commit, to every process listening.
            sqlx::query("SELECT pg_notify('zentoria_jobs', $1)")
                .bind(j.kind)
                .execute(&mut **t)
                .await
                .map_err(db_err)?;
        }
        return Ok((j.id.to_owned(), true));
    }
    let existing: String = on_tx!(tx, t => sqlx::query_scalar(
        "SELECT id FROM jobs WHERE kind = $1 AND dedupe_key = $2 AND status IN ('queued', 'running')",
    )
    .bind(j.kind)
    .bind(j.dedupe_key)
    .fetch_one(&mut **t)
    .await)
    .map_err(db_err)?;
    Ok((existing, false))
}

/// Claims up to `limit` due jobs of `kind`, highest priority first, under a lease.
pub async fn claim(
    db: &Db,
    kind: &str,
    limit: i64,
    now: i64,
    lease_until: i64,
    token: &str,
) -> Result<Vec<JobRow>> {
    let lock = match db {
        Db::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        Db::Sqlite(_) => "",
    };
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = $1,
                lease_token = $2, started_at = $3, updated_at = $3
         WHERE id IN (SELECT id FROM jobs
                      WHERE status = 'queued' AND kind = $4 AND run_at <= $3
                      ORDER BY priority DESC, run_at, id
                      LIMIT $5 {lock})
         RETURNING {COLUMNS}"
    );
    on_db!(db, pool => sqlx::query_as::<_, JobRow>(&sql)
        .bind(lease_until)
        .bind(token)
        .bind(now)
        .bind(kind)
        .bind(limit)
        .fetch_all(pool)
        .await)
    .map_err(db_err)
}

/// Jobs whose lease ran out (their worker died): cancelled if that was asked, dead if that
/// was the last attempt, otherwise queued again. Returns how many were recovered.
pub async fn recover_expired(db: &Db, now: i64) -> Result<u64> {
    on_db!(db, pool => async {
        let mut n = 0;
        n += sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = $1, updated_at = $1,
                    lease_until = NULL, lease_token = NULL
             WHERE status = 'running' AND lease_until < $1 AND cancel_requested",
        )
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
        n += sqlx::query(
            "UPDATE jobs SET status = 'dead', finished_at = $1, updated_at = $1,
                    lease_until = NULL, lease_token = NULL,
                    last_error = 'the worker stopped responding during the last attempt'
             WHERE status = 'running' AND lease_until < $1 AND attempts >= max_attempts",
        )
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
        n += sqlx::query(
            "UPDATE jobs SET status = 'queued', run_at = $1, updated_at = $1,
                    lease_until = NULL, lease_token = NULL,
                    last_error = 'the worker stopped responding; retrying'
             WHERE status = 'running' AND lease_until < $1",
        )
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
        Ok::<_, sqlx::Error>(n)
    }.await)
    .map_err(db_err)
}

/// Extends a lease. Returns whether cancellation was asked, or `None` when the lease is lost
/// (the job finished, or another worker took it over).
pub async fn heartbeat(db: &Db, id: &str, token: &str, lease_until: i64) -> Result<Option<bool>> {
    on_db!(db, pool => sqlx::query_scalar::<_, bool>(
        "UPDATE jobs SET lease_until = $1
         WHERE id = $2 AND lease_token = $3 AND status = 'running'
         RETURNING cancel_requested",
    )
    .bind(lease_until)
    .bind(id)
    .bind(token)
    .fetch_optional(pool)
    .await)
    .map_err(db_err)
}

/// Records progress of a running job; `false` when the lease is lost.
pub async fn progress(
    db: &Db,
    id: &str,
    token: &str,
    percent: i32,
    message: Option<&str>,
    now: i64,
) -> Result<bool> {
    on_db!(db, pool => sqlx::query(
        "UPDATE jobs SET progress = $1, progress_message = $2, updated_at = $3
         WHERE id = $4 AND lease_token = $5 AND status = 'running'",
    )
    .bind(percent)
    .bind(message)
    .bind(now)
    .bind(id)
    .bind(token)
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 1))
    .map_err(db_err)
}

/// How a claimed job ended.
pub enum Finish<'a> {
    Succeeded,
    /// Try again at `run_at`.
    Retry {
        error: &'a str,
        run_at: i64,
    },
    /// `failed` (permanent error) or `dead` (attempts exhausted).
    Failed {
        status: &'static str,
        error: &'a str,
    },
    Cancelled,
}

/// Ends the claim `token` on job `id`; `false` when the lease was lost meanwhile.
pub async fn finish(db: &Db, id: &str, token: &str, how: Finish<'_>, now: i64) -> Result<bool> {
    Ok(finish_many(db, &[(id, token, how, now)]).await?[0])
}

const FINISH_SQL: &str = "UPDATE jobs SET status = $1, updated_at = $2, lease_until = NULL,
        finished_at = CASE WHEN $1 = 'queued' THEN NULL ELSE $2 END,
        lease_token = CASE WHEN $1 = 'queued' THEN NULL ELSE lease_token END,
        progress = CASE WHEN $1 = 'succeeded' THEN 100 ELSE progress END,
        last_error = $3, run_at = COALESCE($4, run_at)
 WHERE id = $5 AND lease_token = $6 AND status = 'running'";

fn finish_params<'a>(how: &Finish<'a>) -> (&'a str, Option<&'a str>, Option<i64>) {
    match *how {
        Finish::Succeeded => ("succeeded", None, None),
        Finish::Retry { error, run_at } => ("queued", Some(error), Some(run_at)),
        Finish::Failed { status, error } => (status, Some(error), None),
        Finish::Cancelled => ("cancelled", Some("cancelled while running"), None),
    }
}

/// Ends many claims in one transaction (one commit instead of one per job). Returns, for
/// each, whether its lease was still held.
pub async fn finish_many(db: &Db, items: &[(&str, &str, Finish<'_>, i64)]) -> Result<Vec<bool>> {
    on_db!(db, pool => async {
        let mut tx = pool.begin().await?;
        let mut out = Vec::with_capacity(items.len());
        for (id, token, how, now) in items {
            let (status, error, run_at) = finish_params(how);
            let n = sqlx::query(FINISH_SQL)
                .bind(status)
                .bind(now)
                .bind(error)
                .bind(run_at)
                .bind(id)
                .bind(token)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            out.push(n == 1);
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(out)
    }.await)
    .map_err(db_err)
}

/// Asks for cancellation: a queued job is cancelled at once, a running one is flagged for its
/// handler to notice. Returns the job's status afterwards, or `None` when there is no such job.
pub async fn cancel(db: &Db, id: &str, now: i64) -> Result<Option<String>> {
    on_db!(db, pool => async {
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = $1, updated_at = $1
             WHERE id = $2 AND status = 'queued'",
        )
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
        sqlx::query(
            "UPDATE jobs SET cancel_requested = TRUE, updated_at = $1
             WHERE id = $2 AND status = 'running'",
        )
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
        sqlx::query_scalar::<_, String>("SELECT status FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
    }.await)
    .map_err(db_err)
}

/// Puts a finished, unsuccessful job back in the queue with fresh attempts. Returns `false`
/// when the job is not failed, dead or cancelled.
pub async fn retry(db: &Db, id: &str, now: i64) -> Result<bool> {
    on_db!(db, pool => sqlx::query(
        "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $1, updated_at = $1,
                finished_at = NULL, cancel_requested = FALSE, lease_token = NULL,
                progress = NULL, progress_message = NULL
         WHERE id = $2 AND status IN ('failed', 'dead', 'cancelled')",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 1))
    .map_err(db_err)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<JobRow>> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
    on_db!(db, pool => sqlx::query_as::<_, JobRow>(&sql).bind(id).fetch_optional(pool).await)
        .map_err(db_err)
}

#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    pub kind: Option<String>,
    pub status: Option<String>,
    pub owner_id: Option<String>,
    /// Only jobs created before this id (ids sort by creation): the paging cursor.
    pub before_id: Option<String>,
    pub limit: i64,
}

/// Jobs matching `f`, newest first.
pub async fn list(db: &Db, f: &JobFilter) -> Result<Vec<JobRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM jobs
         WHERE ($1 IS NULL OR kind = $1)
           AND ($2 IS NULL OR status = $2)
           AND ($3 IS NULL OR owner_id = $3)
           AND ($4 IS NULL OR id < $4)
         ORDER BY id DESC
         LIMIT $5"
    );
    on_db!(db, pool => sqlx::query_as::<_, JobRow>(&sql)
        .bind(&f.kind)
        .bind(&f.status)
        .bind(&f.owner_id)
        .bind(&f.before_id)
        .bind(f.limit)
        .fetch_all(pool)
        .await)
    .map_err(db_err)
}

/// Deletes finished jobs that ended before `before`. Returns how many.
pub async fn prune(db: &Db, before: i64) -> Result<u64> {
    on_db!(db, pool => sqlx::query(
        "DELETE FROM jobs
         WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled') AND finished_at < $1",
    )
    .bind(before)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))
    .map_err(db_err)
}
