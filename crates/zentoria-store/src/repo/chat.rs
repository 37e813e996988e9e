//! Chat sessions and their messages.

use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, Tx, db_err, on_db, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub owner_id: String,
    pub title: String,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub knowledge: bool,
    pub collection_id: Option<String>,
    pub message_count: i32,
    pub created_at: i64,
    pub updated_at: i64,
}

const SESSION_COLUMNS: &str = "id, owner_id, title, model, system_prompt, knowledge, \
    collection_id, message_count, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub id: String,
    pub session_id: String,
    pub role: String,
    pub content: String,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
    pub finish_reason: Option<String>,
    /// JSON array.
    pub citations: Option<String>,
    pub created_at: i64,
    /// What a reasoning model thought before answering.
    pub reasoning: Option<String>,
}

const MESSAGE_COLUMNS: &str = "id, session_id, role, content, model, prompt_tokens, \
    completion_tokens, latency_ms, ttft_ms, finish_reason, citations, created_at, reasoning";

pub async fn insert_session(db: &Db, s: &SessionRow) -> Result<()> {
    on_db!(db, pool => sqlx::query(
        "INSERT INTO chat_sessions (id, owner_id, title, model, system_prompt, knowledge,
             collection_id, message_count, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&s.id)
    .bind(&s.owner_id)
    .bind(&s.title)
    .bind(&s.model)
    .bind(&s.system_prompt)
    .bind(s.knowledge)
    .bind(&s.collection_id)
    .bind(s.message_count)
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(pool)
    .await
    .map(|_| ()))
    .map_err(db_err)
}

pub async fn session(db: &Db, id: &str) -> Result<Option<SessionRow>> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE id = $1");
    on_db!(db, pool => sqlx::query_as::<_, SessionRow>(&sql).bind(id).fetch_optional(pool).await)
        .map_err(db_err)
}

/// A page of sessions, most recently active first, and how many there are in all.
pub async fn sessions(
    db: &Db,
    owner_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SessionRow>, i64)> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE ($1 IS NULL OR owner_id = $1)
         ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let rows = on_db!(db, pool => sqlx::query_as::<_, SessionRow>(&sql)
        .bind(owner_id).bind(limit).bind(offset).fetch_all(pool).await)
    .map_err(db_err)?;
    let total = on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM chat_sessions WHERE ($1 IS NULL OR owner_id = $1)")
        .bind(owner_id).fetch_one(pool).await)
    .map_err(db_err)?;
    Ok((rows, total))
}

/// What a session update changes; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct SessionChange<'a> {
    pub title: Option<&'a str>,
    pub model: Option<Option<&'a str>>,
    pub system_prompt: Option<Option<&'a str>>,
    pub knowledge: Option<bool>,
    pub collection_id: Option<Option<&'a str>>,
}

pub async fn update_session(db: &Db, id: &str, c: &SessionChange<'_>, now: i64) -> Result<()> {
    on_db!(db, pool => sqlx::query(
        "UPDATE chat_sessions SET title = COALESCE($1, title),
             model = CASE WHEN $2 THEN $3 ELSE model END,
             system_prompt = CASE WHEN $4 THEN $5 ELSE system_prompt END,
             knowledge = COALESCE($6, knowledge),
             collection_id = CASE WHEN $7 THEN $8 ELSE collection_id END,
             updated_at = $9
         WHERE id = $10",
    )
    .bind(c.title)
    .bind(c.model.is_some())
    .bind(c.model.flatten())
    .bind(c.system_prompt.is_some())
    .bind(c.system_prompt.flatten())
    .bind(c.knowledge)
    .bind(c.collection_id.is_some())
    .bind(c.collection_id.flatten())
    .bind(now)
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ()))
    .map_err(db_err)
}

pub async fn delete_session(db: &Db, id: &str) -> Result<bool> {
    on_db!(db, pool => sqlx::query("DELETE FROM chat_sessions WHERE id = $1")
        .bind(id).execute(pool).await.map(|r| r.rows_affected() > 0))
    .map_err(db_err)
}

/// Appends a message and counts it on its session, in one transaction.
pub async fn insert_message(db: &Db, m: &MessageRow) -> Result<()> {
    let mut tx = db.begin().await?;
    insert_message_in(&mut tx, m).await?;
    tx.commit().await
}

async fn insert_message_in(tx: &mut Tx, m: &MessageRow) -> Result<()> {
    on_tx!(tx, t => sqlx::query(
        "INSERT INTO chat_messages (id, session_id, role, content, model, prompt_tokens,
             completion_tokens, latency_ms, ttft_ms, finish_reason, citations, created_at,
             reasoning)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&m.id)
    .bind(&m.session_id)
    .bind(&m.role)
    .bind(&m.content)
    .bind(&m.model)
    .bind(m.prompt_tokens)
    .bind(m.completion_tokens)
    .bind(m.latency_ms)
    .bind(m.ttft_ms)
    .bind(&m.finish_reason)
    .bind(&m.citations)
    .bind(m.created_at)
    .bind(&m.reasoning)
    .execute(&mut **t)
    .await
    .map(|_| ()))
    .map_err(db_err)?;
    on_tx!(tx, t => sqlx::query(
        "UPDATE chat_sessions SET message_count = message_count + 1, updated_at = $1 WHERE id = $2",
    )
    .bind(m.created_at)
    .bind(&m.session_id)
    .execute(&mut **t)
    .await
    .map(|_| ()))
    .map_err(db_err)
}

/// The session's messages, oldest first.
pub async fn messages(db: &Db, session_id: &str) -> Result<Vec<MessageRow>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE session_id = $1
         ORDER BY created_at, id"
    );
    on_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql).bind(session_id).fetch_all(pool).await)
        .map_err(db_err)
}

/// The newest `limit` messages of the session, oldest first: the history a prompt can hold.
pub async fn recent_messages(db: &Db, session_id: &str, limit: i64) -> Result<Vec<MessageRow>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE session_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    let mut rows = on_db!(db, pool => sqlx::query_as::<_, MessageRow>(&sql)
        .bind(session_id).bind(limit).fetch_all(pool).await)
    .map_err(db_err)?;
    rows.reverse();
    Ok(rows)
}
