//! Model providers managed through the API (keys stored sealed).

use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, db_err, on_db};

#[derive(Debug, Clone, FromRow)]
pub struct ProviderRow {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    /// Sealed with the master key; `None`: no key.
    pub api_key: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn all(db: &Db) -> Result<Vec<ProviderRow>> {
    on_db!(db, pool => sqlx::query_as::<_, ProviderRow>(
        "SELECT name, kind, base_url, api_key, created_at, updated_at FROM ai_providers ORDER BY name",
    )
    .fetch_all(pool)
    .await)
    .map_err(db_err)
}

pub async fn get(db: &Db, name: &str) -> Result<Option<ProviderRow>> {
    on_db!(db, pool => sqlx::query_as::<_, ProviderRow>(
        "SELECT name, kind, base_url, api_key, created_at, updated_at FROM ai_providers WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await)
    .map_err(db_err)
}

pub async fn insert(db: &Db, r: &ProviderRow) -> Result<()> {
    on_db!(db, pool => sqlx::query(
        "INSERT INTO ai_providers (name, kind, base_url, api_key, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&r.name)
    .bind(&r.kind)
    .bind(&r.base_url)
    .bind(&r.api_key)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(pool)
    .await
    .map(|_| ()))
    .map_err(db_err)
}

pub async fn update(db: &Db, r: &ProviderRow) -> Result<()> {
    on_db!(db, pool => sqlx::query(
        "UPDATE ai_providers SET kind = $1, base_url = $2, api_key = $3, updated_at = $4
         WHERE name = $5",
    )
    .bind(&r.kind)
    .bind(&r.base_url)
    .bind(&r.api_key)
    .bind(r.updated_at)
    .bind(&r.name)
    .execute(pool)
    .await
    .map(|_| ()))
    .map_err(db_err)
}

pub async fn delete(db: &Db, name: &str) -> Result<bool> {
    on_db!(db, pool => sqlx::query("DELETE FROM ai_providers WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() > 0))
    .map_err(db_err)
}

/// Changes whenever a provider is added, changed or removed.
pub async fn mark(db: &Db) -> Result<(i64, i64)> {
    on_db!(db, pool => sqlx::query_as::<_, (i64, i64)>(
        "SELECT COUNT(*), CAST(COALESCE(MAX(updated_at), 0) AS BIGINT) FROM ai_providers",
    )
    .fetch_one(pool)
    .await)
    .map_err(db_err)
}
