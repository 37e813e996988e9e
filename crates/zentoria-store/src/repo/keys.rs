//! API keys: only their SHA-256 digests are stored.

use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, db_err, on_db};

#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// JSON array of model names or patterns; `None`: any model.
    pub models: Option<String>,
    pub monthly_token_budget: Option<i64>,
}

/// A key joined with its owner, as authentication needs it.
#[derive(Debug, Clone, FromRow)]
pub struct KeyWithOwner {
    pub id: String,
    pub key_hash: String,
    pub scopes: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub disabled: bool,
    pub models: Option<String>,
    pub monthly_token_budget: Option<i64>,
}

pub struct NewKey<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a str,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub models: Option<&'a str>,
    pub monthly_token_budget: Option<i64>,
}

const COLUMNS: &str = "id, user_id, name, prefix, scopes, created_at, expires_at, last_used_at, \
    revoked_at, models, monthly_token_budget";

pub async fn insert(db: &Db, k: &NewKey<'_>) -> Result<()> {
    on_db!(db, pool => sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scopes, created_at, expires_at,
             models, monthly_token_budget)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(k.id)
    .bind(k.user_id)
    .bind(k.name)
    .bind(k.prefix)
    .bind(k.key_hash)
    .bind(k.scopes)
    .bind(k.created_at)
    .bind(k.expires_at)
    .bind(k.models)
    .bind(k.monthly_token_budget)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

pub async fn by_hash(db: &Db, key_hash: &str) -> Result<Option<KeyWithOwner>> {
    on_db!(db, pool => sqlx::query_as::<_, KeyWithOwner>(
        "SELECT k.id, k.key_hash, k.scopes, k.expires_at, k.revoked_at, k.models,
                k.monthly_token_budget, u.id AS user_id, u.username, u.role, u.disabled
         FROM api_keys k JOIN users u ON u.id = k.user_id
         WHERE k.key_hash = $1",
    )
    .bind(key_hash)
    .fetch_optional(pool)
    .await)
    .map_err(db_err)
}

pub async fn by_id(db: &Db, id: &str) -> Result<Option<(ApiKeyRow, String)>> {
    let sql = format!("SELECT {COLUMNS}, key_hash FROM api_keys WHERE id = $1");
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        key: ApiKeyRow,
        key_hash: String,
    }
    on_db!(db, pool => sqlx::query_as::<_, Row>(&sql).bind(id).fetch_optional(pool).await)
        .map(|r| r.map(|r| (r.key, r.key_hash)))
        .map_err(db_err)
}

/// Keys of one user, or of everyone when `user_id` is `None`; newest first.
pub async fn list(db: &Db, user_id: Option<&str>) -> Result<Vec<ApiKeyRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE ($1 IS NULL OR user_id = $1) ORDER BY created_at DESC, id DESC"
    );
    on_db!(db, pool => sqlx::query_as::<_, ApiKeyRow>(&sql).bind(user_id).fetch_all(pool).await)
        .map_err(db_err)
}

/// Revokes a key; returns whether it was live until now.
pub async fn revoke(db: &Db, id: &str, now: i64) -> Result<bool> {
    on_db!(db, pool => sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .map(|n| n == 1)
    .map_err(db_err)
}

pub async fn touch(db: &Db, id: &str, now: i64) -> Result<()> {
    on_db!(db, pool => sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))
    .map(|_| ())
    .map_err(db_err)
}

/// A fingerprint of every revocation so far (keys and sessions): it changes whenever anything
/// is revoked, so a process can tell that its caches may hold something stale.
pub async fn revocation_mark(db: &Db) -> Result<(i64, i64, i64, i64)> {
    on_db!(db, pool => sqlx::query_as::<_, (i64, i64, i64, i64)>(
        "SELECT
            (SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NOT NULL),
            (SELECT COALESCE(MAX(revoked_at), 0) FROM api_keys),
            (SELECT COUNT(*) FROM session_families WHERE revoked_at IS NOT NULL),
            (SELECT COALESCE(MAX(revoked_at), 0) FROM session_families)",
    )
    .fetch_one(pool)
    .await)
    .map_err(db_err)
}
