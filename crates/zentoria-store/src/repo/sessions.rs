//! Login sessions: a family per login, and the chain of refresh tokens rotated within it.

use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, db_err, on_db};

#[derive(Debug, Clone, FromRow)]
pub struct RefreshTokenRow {
    pub id: String,
    pub family_id: String,
    pub user_id: String,
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub family_revoked_at: Option<i64>,
}

/// Starts a family with its first refresh token, in one transaction.
pub async fn start_family(
    db: &Db,
    family_id: &str,
    user_id: &str,
    token_id: &str,
    token_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    on_db!(db, pool => async {
        let mut tx = pool.begin().await?;
        sqlx::query("INSERT INTO session_families (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(family_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (id, family_id, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_id)
        .bind(family_id)
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }.await)
    .map_err(db_err)
}

pub async fn find_token(db: &Db, token_hash: &str) -> Result<Option<RefreshTokenRow>> {
    on_db!(db, pool => sqlx::query_as::<_, RefreshTokenRow>(
        "SELECT t.id, t.family_id, f.user_id, t.expires_at, t.rotated_at,
                f.revoked_at AS family_revoked_at
         FROM refresh_tokens t JOIN session_families f ON f.id = t.family_id
         WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await)
    .map_err(db_err)
}

/// Marks `old_id` rotated and adds its successor, atomically. Returns `false` when the old
/// token had already been rotated (a concurrent or replayed use), in which case nothing
/// is written.
pub async fn rotate(
    db: &Db,
    old_id: &str,
    family_id: &str,
    new_id: &str,
    new_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<bool> {
    on_db!(db, pool => async {
        let mut tx = pool.begin().await?;
        let marked = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $1 WHERE id = $2 AND rotated_at IS NULL",
        )
        .bind(now)
        .bind(old_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (id, family_id, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id)
        .bind(family_id)
        .bind(new_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(true)
    }.await)
    .map_err(db_err)
}

/// Revokes a whole family; returns whether it was live until now.
pub async fn revoke_family(db: &Db, family_id: &str, reason: &str, now: i64) -> Result<bool> {
    on_db!(db, pool => sqlx::query(
        "UPDATE session_families SET revoked_at = $1, revoked_reason = $2
         WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(family_id)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .map(|n| n == 1)
    .map_err(db_err)
}

/// Whether the family is revoked (or gone); `None` when it never existed.
pub async fn family_revoked(db: &Db, family_id: &str) -> Result<Option<bool>> {
    on_db!(db, pool => sqlx::query_scalar::<_, Option<i64>>(
        "SELECT revoked_at FROM session_families WHERE id = $1",
    )
    .bind(family_id)
    .fetch_optional(pool)
    .await)
    .map(|r| r.map(|revoked_at| revoked_at.is_some()))
    .map_err(db_err)
}
