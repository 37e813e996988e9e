use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, Tx, db_err, on_db, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct ScheduleRow {
    pub id: String,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub job_kind: String,
    pub payload: String,
    pub owner_id: Option<String>,
    pub missed: String,
    pub enabled: bool,
    pub next_run_at: i64,
    pub last_run_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, cron, timezone, job_kind, payload, owner_id, missed, enabled, \
                       next_run_at, last_run_at, created_at, updated_at";

/// Creates the schedule, or updates the one with the same name (keeping its id).
pub async fn upsert(db: &Db, r: &ScheduleRow) -> Result<ScheduleRow> {
    let sql = format!(
        "INSERT INTO schedules ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone,
             job_kind = excluded.job_kind, payload = excluded.payload, owner_id = excluded.owner_id,
             missed = excluded.missed, enabled = excluded.enabled,
             next_run_at = excluded.next_run_at, updated_at = excluded.updated_at
         RETURNING {COLUMNS}"
    );
    on_db!(db, pool => sqlx::query_as::<_, ScheduleRow>(&sql)
        .bind(&r.id)
        .bind(&r.name)
        .bind(&r.cron)
        .bind(&r.timezone)
        .bind(&r.job_kind)
        .bind(&r.payload)
        .bind(&r.owner_id)
        .bind(&r.missed)
        .bind(r.enabled)
        .bind(r.next_run_at)
        .bind(r.last_run_at)
        .bind(r.created_at)
        .bind(r.updated_at)
        .fetch_one(pool)
        .await)
    .map_err(db_err)
}

pub async fn due(db: &Db, now: i64, limit: i64) -> Result<Vec<ScheduleRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM schedules WHERE enabled AND next_run_at <= $1
         ORDER BY next_run_at LIMIT $2"
    );
    on_db!(db, pool => sqlx::query_as::<_, ScheduleRow>(&sql).bind(now).bind(limit).fetch_all(pool).await)
        .map_err(db_err)
}

/// Moves the schedule from occurrence `due` to `next`, inside `tx`; `false` when another
/// process already did (it owns that occurrence).
pub async fn advance(
    tx: &mut Tx,
    id: &str,
    due: i64,
    next: i64,
    ran: Option<i64>,
    now: i64,
) -> Result<bool> {
    on_tx!(tx, t => sqlx::query(
        "UPDATE schedules SET next_run_at = $1, last_run_at = COALESCE($2, last_run_at), updated_at = $3
         WHERE id = $4 AND next_run_at = $5",
    )
    .bind(next)
    .bind(ran)
    .bind(now)
    .bind(id)
    .bind(due)
    .execute(&mut **t)
    .await
    .map(|r| r.rows_affected() == 1))
    .map_err(db_err)
}

pub async fn list(db: &Db) -> Result<Vec<ScheduleRow>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules ORDER BY name");
    on_db!(db, pool => sqlx::query_as::<_, ScheduleRow>(&sql).fetch_all(pool).await).map_err(db_err)
}

pub async fn by_name(db: &Db, name: &str) -> Result<Option<ScheduleRow>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE name = $1");
    on_db!(db, pool => sqlx::query_as::<_, ScheduleRow>(&sql).bind(name).fetch_optional(pool).await)
        .map_err(db_err)
}

pub async fn delete(db: &Db, name: &str) -> Result<bool> {
    on_db!(db, pool => sqlx::query("DELETE FROM schedules WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() == 1))
    .map_err(db_err)
}
