//! What users and keys spent on models, per UTC day.

use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, db_err, on_db, on_tx};

#[derive(Debug, Clone, Default, FromRow, PartialEq, Eq)]
pub struct UsageRow {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub user_id: String,
    /// `''` for requests made with a login session.
    pub key_id: String,
    pub model: String,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Of the prompt tokens, those read from the provider's prompt cache.
    pub cached_tokens: i64,
    /// Of the completion tokens, those spent reasoning.
    pub reasoning_tokens: i64,
}

/// Adds the counts to their rows, creating them as needed, in one transaction.
pub async fn add(db: &Db, rows: &[UsageRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for r in rows {
        on_tx!(&mut tx, t => sqlx::query(
            "INSERT INTO ai_usage (day, user_id, key_id, model, requests, errors, prompt_tokens,
                 completion_tokens, cached_tokens, reasoning_tokens)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (day, user_id, key_id, model) DO UPDATE SET
                 requests = ai_usage.requests + excluded.requests,
                 errors = ai_usage.errors + excluded.errors,
                 prompt_tokens = ai_usage.prompt_tokens + excluded.prompt_tokens,
                 completion_tokens = ai_usage.completion_tokens + excluded.completion_tokens,
                 cached_tokens = ai_usage.cached_tokens + excluded.cached_tokens,
                 reasoning_tokens = ai_usage.reasoning_tokens + excluded.reasoning_tokens",
        )
        .bind(&r.day)
        .bind(&r.user_id)
        .bind(&r.key_id)
        .bind(&r.model)
        .bind(r.requests)
        .bind(r.errors)
        .bind(r.prompt_tokens)
        .bind(r.completion_tokens)
        .bind(r.cached_tokens)
        .bind(r.reasoning_tokens)
        .execute(&mut **t)
        .await
        .map(|_| ()))
        .map_err(db_err)?;
    }
    tx.commit().await
}

/// Tokens (prompt and completion) a key spent from `since_day` on.
pub async fn key_tokens_since(db: &Db, key_id: &str, since_day: &str) -> Result<i64> {
    on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT)
         FROM ai_usage WHERE key_id = $1 AND day >= $2",
    )
    .bind(key_id)
    .bind(since_day)
    .fetch_one(pool)
    .await)
    .map_err(db_err)
}

/// The rows between two days (inclusive), of one user when given, newest day first.
pub async fn list(
    db: &Db,
    user_id: Option<&str>,
    from_day: &str,
    to_day: &str,
) -> Result<Vec<UsageRow>> {
    on_db!(db, pool => sqlx::query_as::<_, UsageRow>(
        "SELECT day, user_id, key_id, model, requests, errors, prompt_tokens, completion_tokens,
             cached_tokens, reasoning_tokens
         FROM ai_usage WHERE ($1 IS NULL OR user_id = $1) AND day >= $2 AND day <= $3
         ORDER BY day DESC, user_id, key_id, model",
    )
    .bind(user_id)
    .bind(from_day)
    .bind(to_day)
    .fetch_all(pool)
    .await)
    .map_err(db_err)
}
