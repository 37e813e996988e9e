//! The audit log table and its hash-chain head.

use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, db_err, on_db};

/// One entry as stored; `details` is ciphertext, `hash` chains it to the entry before.
#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub id: String,
    pub at: i64,
    pub actor_id: Option<String>,
    pub actor: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: Option<Vec<u8>>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only entries older than this sequence number (the paging cursor).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

const COLUMNS: &str = "seq, id, at, actor_id, actor, action, resource_type, resource_id, outcome, \
                       client_ip, user_agent, request_id, details, prev_hash, hash";

/// Appends `rows` at the end of the chain in one transaction. The head row is locked first,
/// so concurrent writers (several processes on one PostgreSQL) take turns. `seal` fills in
/// `seq`, `prev_hash` and `hash` of each row given the chain so far.
pub async fn append(
    db: &Db,
    rows: &mut [AuditRow],
    seal: impl Fn(&mut AuditRow, i64, &str),
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let insert = format!(
        "INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    on_db!(db, pool => async {
        let mut tx = pool.begin().await?;
        // A no-op write takes the row lock on PostgreSQL and the write lock on SQLite.
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1").execute(&mut *tx).await?;
        let (mut seq, mut hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        for row in rows.iter_mut() {
            seq += 1;
            seal(row, seq, &hash);
            hash = row.hash.clone();
            sqlx::query(&insert)
                .bind(row.seq)
                .bind(&row.id)
                .bind(row.at)
                .bind(&row.actor_id)
                .bind(&row.actor)
                .bind(&row.action)
                .bind(&row.resource_type)
                .bind(&row.resource_id)
                .bind(&row.outcome)
                .bind(&row.client_ip)
                .bind(&row.user_agent)
                .bind(&row.request_id)
                .bind(&row.details)
                .bind(&row.prev_hash)
                .bind(&row.hash)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }.await)
    .map_err(db_err)
}

/// Entries matching `f`, newest first.
pub async fn list(db: &Db, f: &AuditFilter) -> Result<Vec<AuditRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log
         WHERE ($1 IS NULL OR action = $1)
           AND ($2 IS NULL OR actor_id = $2)
           AND ($3 IS NULL OR outcome = $3)
           AND ($4 IS NULL OR resource_type = $4)
           AND ($5 IS NULL OR resource_id = $5)
           AND ($6 IS NULL OR at >= $6)
           AND ($7 IS NULL OR at < $7)
           AND ($8 IS NULL OR seq < $8)
         ORDER BY seq DESC
         LIMIT $9"
    );
    on_db!(db, pool => sqlx::query_as::<_, AuditRow>(&sql)
        .bind(&f.action)
        .bind(&f.actor_id)
        .bind(&f.outcome)
        .bind(&f.resource_type)
        .bind(&f.resource_id)
        .bind(f.since)
        .bind(f.until)
        .bind(f.before_seq)
        .bind(f.limit)
        .fetch_all(pool)
        .await)
    .map_err(db_err)
}

/// Entries with `seq > after`, oldest first, at most `limit`: for walking the whole chain.
pub async fn page_after(db: &Db, after: i64, limit: i64) -> Result<Vec<AuditRow>> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
    on_db!(db, pool => sqlx::query_as::<_, AuditRow>(&sql).bind(after).bind(limit).fetch_all(pool).await)
        .map_err(db_err)
}

/// The chain head: the last sequence number and its hash.
pub async fn head(db: &Db) -> Result<(i64, String)> {
    on_db!(db, pool => sqlx::query_as::<_, (i64, String)>("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(pool)
        .await)
    .map_err(db_err)
}
