use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, db_err, on_db};

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, username, password_hash, role, disabled, created_at, updated_at";

pub async fn insert(db: &Db, row: &UserRow) -> Result<()> {
    on_db!(db, pool => sqlx::query(
        "INSERT INTO users (id, username, password_hash, role, disabled, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&row.id)
    .bind(&row.username)
    .bind(&row.password_hash)
    .bind(&row.role)
    .bind(row.disabled)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .map_err(db_err)?;
    Ok(())
}

pub async fn by_username(db: &Db, username: &str) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE lower(username) = lower($1)");
    on_db!(db, pool => sqlx::query_as::<_, UserRow>(&sql).bind(username).fetch_optional(pool).await)
        .map_err(db_err)
}

pub async fn by_id(db: &Db, id: &str) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    on_db!(db, pool => sqlx::query_as::<_, UserRow>(&sql).bind(id).fetch_optional(pool).await)
        .map_err(db_err)
}

pub async fn count(db: &Db) -> Result<i64> {
    on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(pool).await)
        .map_err(db_err)
}
