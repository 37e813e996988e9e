//! Collections, files, tags, chunks and the change log search indexes tail.
//!
//! The change log is written in commit order: on PostgreSQL a writer takes a transaction-level
//! advisory lock just before it appends, so a sequence number is only handed out once every
//! earlier one has committed or rolled back (SQLite serialises writers anyway). An index that
//! has applied everything up to `seq` has therefore missed nothing before it.

use sqlx::FromRow;
use zentoria_core::Result;

use crate::{Db, Tx, db_err, on_db, on_tx};

/// Advisory lock key serialising appends to `knowledge_changes` on PostgreSQL.
const CHANGES_LOCK: i64 = 0x7a65_6e74_6b6e_6f77; // "zentknow"

#[derive(Debug, Clone, FromRow)]
pub struct CollectionRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub file_count: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct FileRow {
    pub id: String,
    pub owner_id: String,
    pub collection_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub mime: String,
    pub language: Option<String>,
    pub size: i64,
    pub sha256: String,
    pub status: String,
    pub error: Option<String>,
    pub chunk_count: i32,
    pub pages: Option<i32>,
    pub created_at: i64,
    pub updated_at: i64,
}

const FILE_COLUMNS: &str = "id, owner_id, collection_id, name, kind, mime, language, size, sha256, \
    status, error, chunk_count, pages, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct ChunkRow {
    pub id: i64,
    pub file_id: String,
    pub ord: i32,
    pub text: String,
    pub start_char: i64,
    pub end_char: i64,
    pub page: Option<i32>,
    pub heading: Option<String>,
    pub tokens: i32,
}

const CHUNK_COLUMNS: &str = "id, file_id, ord, text, start_char, end_char, page, heading, tokens";

pub struct NewChunk<'a> {
    pub ord: i32,
    pub text: &'a str,
    pub start_char: i64,
    pub end_char: i64,
    pub page: Option<i32>,
    pub heading: Option<&'a str>,
    pub tokens: i32,
}

// ---- collections ------------------------------------------------------------------------

const COLLECTION_SELECT: &str = "SELECT c.id, c.owner_id, c.name, c.description, c.created_at, \
    c.updated_at, (SELECT COUNT(*) FROM files f WHERE f.collection_id = c.id) AS file_count \
    FROM collections c";

pub async fn insert_collection(
    db: &Db,
    id: &str,
    owner_id: &str,
    name: &str,
    description: &str,
    now: i64,
) -> Result<()> {
    on_db!(db, pool => sqlx::query(
        "INSERT INTO collections (id, owner_id, name, description, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id)
    .bind(owner_id)
    .bind(name)
    .bind(description)
    .bind(now)
    .execute(pool)
    .await
    .map(|_| ()))
    .map_err(db_err)
}

pub async fn collection(db: &Db, id: &str) -> Result<Option<CollectionRow>> {
    let sql = format!("{COLLECTION_SELECT} WHERE c.id = $1");
    on_db!(db, pool => sqlx::query_as::<_, CollectionRow>(&sql).bind(id).fetch_optional(pool).await)
        .map_err(db_err)
}

pub async fn collection_by_name(
    db: &Db,
    owner_id: &str,
    name: &str,
) -> Result<Option<CollectionRow>> {
    let sql = format!("{COLLECTION_SELECT} WHERE c.owner_id = $1 AND lower(c.name) = lower($2)");
    on_db!(db, pool => sqlx::query_as::<_, CollectionRow>(&sql)
        .bind(owner_id)
        .bind(name)
        .fetch_optional(pool)
        .await)
    .map_err(db_err)
}

/// Collections of `owner_id`, or everyone's when `None`.
pub async fn collections(db: &Db, owner_id: Option<&str>) -> Result<Vec<CollectionRow>> {
    let sql = format!(
        "{COLLECTION_SELECT} WHERE ($1 IS NULL OR c.owner_id = $1) ORDER BY lower(c.name), c.id"
    );
    on_db!(db, pool => sqlx::query_as::<_, CollectionRow>(&sql).bind(owner_id).fetch_all(pool).await)
        .map_err(db_err)
}

pub async fn delete_collection(tx: &mut Tx, id: &str) -> Result<bool> {
    on_tx!(tx, t => sqlx::query("DELETE FROM collections WHERE id = $1")
        .bind(id)
        .execute(&mut **t)
        .await
        .map(|r| r.rows_affected() == 1))
    .map_err(db_err)
}

// ---- files --------------------------------------------------------------------------------

/// Inserts the file unless its owner already has the same content; returns the row in force
/// and whether it is new.
pub async fn insert_file(tx: &mut Tx, f: &FileRow) -> Result<(FileRow, bool)> {
    let sql = format!(
        "INSERT INTO files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (owner_id, sha256) DO NOTHING RETURNING {FILE_COLUMNS}"
    );
    let inserted = on_tx!(tx, t => sqlx::query_as::<_, FileRow>(&sql)
        .bind(&f.id)
        .bind(&f.owner_id)
        .bind(&f.collection_id)
        .bind(&f.name)
        .bind(&f.kind)
        .bind(&f.mime)
        .bind(&f.language)
        .bind(f.size)
        .bind(&f.sha256)
        .bind(&f.status)
        .bind(&f.error)
        .bind(f.chunk_count)
        .bind(f.pages)
        .bind(f.created_at)
        .bind(f.updated_at)
        .fetch_optional(&mut **t)
        .await)
    .map_err(db_err)?;
    if let Some(row) = inserted {
        return Ok((row, true));
    }
    let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE owner_id = $1 AND sha256 = $2");
    let existing = on_tx!(tx, t => sqlx::query_as::<_, FileRow>(&sql)
        .bind(&f.owner_id)
        .bind(&f.sha256)
        .fetch_one(&mut **t)
        .await)
    .map_err(db_err)?;
    Ok((existing, false))
}

pub async fn file(db: &Db, id: &str) -> Result<Option<FileRow>> {
    let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1");
    on_db!(db, pool => sqlx::query_as::<_, FileRow>(&sql).bind(id).fetch_optional(pool).await)
        .map_err(db_err)
}

pub async fn files_by_ids(db: &Db, ids: &[String]) -> Result<Vec<FileRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {FILE_COLUMNS} FROM files WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, FileRow>(&sql);
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(pool).await
    })
    .map_err(db_err)
}

/// Which files to list.
#[derive(Debug, Default, Clone)]
pub struct FileFilter {
    pub owner_id: Option<String>,
    pub collection_id: Option<String>,
    pub tag: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    /// `created_at`, `name`, `size` or `updated_at`.
    pub sort: &'static str,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

/// A page of files and the total matching the filter.
pub async fn list_files(db: &Db, f: &FileFilter) -> Result<(Vec<FileRow>, i64)> {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<&str> = Vec::new();
    let filters = [
        ("owner_id = ", &f.owner_id),
        ("collection_id = ", &f.collection_id),
        ("id IN (SELECT file_id FROM file_tags WHERE tag = ", &f.tag),
        ("kind = ", &f.kind),
        ("status = ", &f.status),
    ];
    for (cond, value) in filters {
        if let Some(v) = value {
            args.push(v);
            let close = if cond.ends_with("tag = ") { ")" } else { "" };
            conds.push(format!("{cond}${}{close}", args.len()));
        }
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let sort = match f.sort {
        "name" => "lower(name)",
        "size" => "size",
        "updated_at" => "updated_at",
        _ => "created_at",
    };
    let dir = if f.descending { "DESC" } else { "ASC" };
    let n = args.len();
    let sql = format!(
        "SELECT {FILE_COLUMNS} FROM files{filter} ORDER BY {sort} {dir}, id {dir} LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let count_sql = format!("SELECT COUNT(*) FROM files{filter}");
    let rows = on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, FileRow>(&sql);
        for a in &args {
            q = q.bind(*a);
        }
        q.bind(f.limit).bind(f.offset).fetch_all(pool).await
    })
    .map_err(db_err)?;
    let total: i64 = on_db!(db, pool => {
        let mut q = sqlx::query_scalar::<_, i64>(&count_sql);
        for a in &args {
            q = q.bind(*a);
        }
        q.fetch_one(pool).await
    })
    .map_err(db_err)?;
    Ok((rows, total))
}

/// Renames and/or moves a file (a `Some(None)` collection takes it out of any collection).
pub async fn update_file_meta(
    tx: &mut Tx,
    id: &str,
    name: Option<&str>,
    collection_id: Option<Option<&str>>,
    now: i64,
) -> Result<()> {
    let move_it = collection_id.is_some();
    let target = collection_id.flatten();
    on_tx!(tx, t => sqlx::query(
        "UPDATE files SET name = COALESCE($1, name),
             collection_id = CASE WHEN $2 THEN $3 ELSE collection_id END, updated_at = $4
         WHERE id = $5",
    )
    .bind(name)
    .bind(move_it)
    .bind(target)
    .bind(now)
    .bind(id)
    .execute(&mut **t)
    .await
    .map(|_| ()))
    .map_err(db_err)
}

pub async fn set_status(
    db: &Db,
    id: &str,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<bool> {
    on_db!(db, pool => sqlx::query(
        "UPDATE files SET status = $1, error = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(status)
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(pool)
    .await
    .map(|r| r.rows_affected() == 1))
    .map_err(db_err)
}

/// Sets a file's status (clearing its error) inside a transaction.
pub async fn set_status_in(tx: &mut Tx, id: &str, status: &str, now: i64) -> Result<()> {
    on_tx!(tx, t => sqlx::query(
        "UPDATE files SET status = $1, error = NULL, updated_at = $2 WHERE id = $3",
    )
    .bind(status)
    .bind(now)
    .bind(id)
    .execute(&mut **t)
    .await
    .map(|_| ()))
    .map_err(db_err)
}

/// Puts the file back to `queued` (for a re-index), inside the transaction that enqueues it.
pub async fn requeue(tx: &mut Tx, id: &str, now: i64) -> Result<()> {
    on_tx!(tx, t => sqlx::query(
        "UPDATE files SET status = 'queued', error = NULL, updated_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(&mut **t)
    .await
    .map(|_| ()))
    .map_err(db_err)
}

/// Deletes the file row (chunks and tags go with it); returns its blob hash if it existed.
pub async fn delete_file(tx: &mut Tx, id: &str) -> Result<Option<String>> {
    on_tx!(tx, t => sqlx::query_scalar::<_, String>("DELETE FROM files WHERE id = $1 RETURNING sha256")
        .bind(id)
        .fetch_optional(&mut **t)
        .await)
    .map_err(db_err)
}

/// Ids and hashes of the files in a collection.
pub async fn files_in_collection(
    tx: &mut Tx,
    collection_id: &str,
) -> Result<Vec<(String, String)>> {
    on_tx!(tx, t => sqlx::query_as::<_, (String, String)>(
        "SELECT id, sha256 FROM files WHERE collection_id = $1",
    )
    .bind(collection_id)
    .fetch_all(&mut **t)
    .await)
    .map_err(db_err)
}

/// Whether any file still refers to the blob.
pub async fn blob_in_use(db: &Db, sha256: &str) -> Result<bool> {
    on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM files WHERE sha256 = $1")
        .bind(sha256)
        .fetch_one(pool)
        .await
        .map(|n| n > 0))
    .map_err(db_err)
}

// ---- tags -------------------------------------------------------------------------------------

pub async fn set_tags(tx: &mut Tx, file_id: &str, tags: &[String]) -> Result<()> {
    on_tx!(tx, t => async {
        sqlx::query("DELETE FROM file_tags WHERE file_id = $1")
            .bind(file_id)
            .execute(&mut **t)
            .await?;
        for tag in tags {
            sqlx::query("INSERT INTO file_tags (file_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(file_id)
                .bind(tag)
                .execute(&mut **t)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    }.await)
    .map_err(db_err)
}

/// `(file_id, tag)` pairs of the given files, sorted by tag.
pub async fn tags_of(db: &Db, file_ids: &[String]) -> Result<Vec<(String, String)>> {
    if file_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT file_id, tag FROM file_tags WHERE file_id IN ({}) ORDER BY tag",
        placeholders(1, file_ids.len())
    );
    on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, (String, String)>(&sql);
        for id in file_ids {
            q = q.bind(id);
        }
        q.fetch_all(pool).await
    })
    .map_err(db_err)
}

// ---- chunks -----------------------------------------------------------------------------------

/// Rows per multi-row insert: 8 columns each stays far below both backends' bind limits.
const CHUNK_BATCH: usize = 500;

/// Replaces the file's chunks and records its new extent, inside `tx`.
pub async fn replace_chunks(
    tx: &mut Tx,
    file_id: &str,
    chunks: &[NewChunk<'_>],
    pages: Option<i32>,
    status: &str,
    now: i64,
) -> Result<()> {
    on_tx!(tx, t => async {
        sqlx::query("DELETE FROM chunks WHERE file_id = $1")
            .bind(file_id)
            .execute(&mut **t)
            .await?;
        for batch in chunks.chunks(CHUNK_BATCH) {
            let mut b = sqlx::QueryBuilder::new(
                "INSERT INTO chunks (file_id, ord, text, start_char, end_char, page, heading, tokens) ",
            );
            b.push_values(batch, |mut row, c| {
                row.push_bind(file_id)
                    .push_bind(c.ord)
                    .push_bind(c.text)
                    .push_bind(c.start_char)
                    .push_bind(c.end_char)
                    .push_bind(c.page)
                    .push_bind(c.heading)
                    .push_bind(c.tokens);
            });
            b.build().execute(&mut **t).await?;
        }
        sqlx::query(
            "UPDATE files SET chunk_count = $1, pages = $2, status = $3, error = NULL, updated_at = $4
             WHERE id = $5",
        )
        .bind(chunks.len() as i32)
        .bind(pages)
        .bind(status)
        .bind(now)
        .bind(file_id)
        .execute(&mut **t)
        .await?;
        Ok::<_, sqlx::Error>(())
    }.await)
    .map_err(db_err)
}

pub async fn chunks_of_file(db: &Db, file_id: &str) -> Result<Vec<ChunkRow>> {
    let sql = format!("SELECT {CHUNK_COLUMNS} FROM chunks WHERE file_id = $1 ORDER BY ord");
    on_db!(db, pool => sqlx::query_as::<_, ChunkRow>(&sql).bind(file_id).fetch_all(pool).await)
        .map_err(db_err)
}

pub async fn chunks_by_ids(db: &Db, ids: &[i64]) -> Result<Vec<ChunkRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {CHUNK_COLUMNS} FROM chunks WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, ChunkRow>(&sql);
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(pool).await
    })
    .map_err(db_err)
}

// ---- change log -------------------------------------------------------------------------------

/// Appends a change for `file_id` inside `tx`, in commit order; returns its sequence number.
pub async fn record_change(tx: &mut Tx, file_id: &str, now: i64) -> Result<i64> {
    let sql = "INSERT INTO knowledge_changes (file_id, at) VALUES ($1, $2) RETURNING seq";
    match tx {
        Tx::Sqlite(t) => sqlx::query_scalar::<_, i64>(sql)
            .bind(file_id)
            .bind(now)
            .fetch_one(&mut **t)
            .await
            .map_err(db_err),
        Tx::Postgres(t) => {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHANGES_LOCK)
                .execute(&mut **t)
                .await
                .map_err(db_err)?;
            sqlx::query_scalar::<_, i64>(sql)
                .bind(file_id)
                .bind(now)
                .fetch_one(&mut **t)
                .await
                .map_err(db_err)
        }
    }
}

/// Changes after `seq`, oldest first.
pub async fn changes_since(db: &Db, seq: i64, limit: i64) -> Result<Vec<(i64, String)>> {
    on_db!(db, pool => sqlx::query_as::<_, (i64, String)>(
        "SELECT seq, file_id FROM knowledge_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(pool)
    .await)
    .map_err(db_err)
}

/// The newest change there has been (pruned ones included).
pub async fn last_change(db: &Db) -> Result<i64> {
    let newest = on_db!(db, pool => sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM knowledge_changes")
        .fetch_one(pool)
        .await)
    .map(|v| v.unwrap_or(0))
    .map_err(db_err)?;
    Ok(newest.max(pruned_through(db).await?))
}

/// Every file that contributes to search (for a full rebuild), with its chunks' owner data.
pub async fn indexable_files(db: &Db) -> Result<Vec<String>> {
    on_db!(db, pool => sqlx::query_scalar::<_, String>(
        "SELECT id FROM files WHERE status IN ('indexing', 'ready') ORDER BY id",
    )
    .fetch_all(pool)
    .await)
    .map_err(db_err)
}

fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deletes changes up to `through` that are older than `before` (epoch ms) and records how far
/// the log is now pruned; returns that point (0 when nothing was ever pruned).
pub async fn prune_changes(db: &Db, through: i64, before: i64) -> Result<i64> {
    let mut tx = db.begin().await?;
    let cut: Option<i64> = on_tx!(&mut tx, t => sqlx::query_scalar::<_, Option<i64>>(
        "SELECT MAX(seq) FROM knowledge_changes WHERE seq <= $1 AND at < $2",
    )
    .bind(through)
    .bind(before)
    .fetch_one(&mut **t)
    .await)
    .map_err(db_err)?;
    if let Some(cut) = cut {
        on_tx!(&mut tx, t => async {
            sqlx::query("DELETE FROM knowledge_changes WHERE seq <= $1")
                .bind(cut)
                .execute(&mut **t)
                .await?;
            sqlx::query(
                "INSERT INTO knowledge_state (key, value) VALUES ('pruned_through', $1)
                 ON CONFLICT (key) DO UPDATE SET value = CASE
                     WHEN excluded.value > knowledge_state.value THEN excluded.value
                     ELSE knowledge_state.value END",
            )
            .bind(cut)
            .execute(&mut **t)
            .await?;
            Ok::<_, sqlx::Error>(())
        }
        .await)
        .map_err(db_err)?;
    }
    tx.commit().await?;
    pruned_through(db).await
}

/// The last change sequence that has been pruned from the log (0: none).
pub async fn pruned_through(db: &Db) -> Result<i64> {
    on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT value FROM knowledge_state WHERE key = 'pruned_through'",
    )
    .fetch_optional(pool)
    .await)
    .map(|v| v.unwrap_or(0))
    .map_err(db_err)
}

// ---- vectors ------------------------------------------------------------------------------------

/// Rows per multi-row insert of vectors (three parameters each).
const VECTOR_BATCH: usize = 256;

/// Stores chunk embeddings made by `embedder` (little-endian f32 bytes), replacing whatever
/// each chunk had before.
pub async fn put_vectors(tx: &mut Tx, embedder: &str, vectors: &[(i64, Vec<u8>)]) -> Result<()> {
    on_tx!(tx, t => async {
        for batch in vectors.chunks(VECTOR_BATCH) {
            let mut b = sqlx::QueryBuilder::new("INSERT INTO chunk_vectors (chunk_id, embedder, vector) ");
            b.push_values(batch, |mut row, (id, v)| {
                row.push_bind(*id).push_bind(embedder).push_bind(v.as_slice());
            });
            b.push(
                " ON CONFLICT (chunk_id) DO UPDATE SET embedder = excluded.embedder, vector = excluded.vector",
            );
            b.build().execute(&mut **t).await?;
        }
        Ok::<_, sqlx::Error>(())
    }.await)
    .map_err(db_err)
}

/// `(chunk id, file id, vector bytes)` of the given files' chunks embedded by `embedder`.
pub async fn vectors_of_files(
    db: &Db,
    embedder: &str,
    file_ids: &[String],
) -> Result<Vec<(i64, String, Vec<u8>)>> {
    if file_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT v.chunk_id, c.file_id, v.vector FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id
         WHERE v.embedder = $1 AND c.file_id IN ({}) ORDER BY v.chunk_id",
        placeholders(2, file_ids.len())
    );
    on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, (i64, String, Vec<u8>)>(&sql).bind(embedder);
        for id in file_ids {
            q = q.bind(id);
        }
        q.fetch_all(pool).await
    })
    .map_err(db_err)
}

/// Chunks of ready files that have no vector from `embedder` yet, as `(chunk id, file id,
/// text)`, oldest first.
pub async fn chunks_without_vectors(
    db: &Db,
    embedder: &str,
    limit: i64,
) -> Result<Vec<(i64, String, String)>> {
    on_db!(db, pool => sqlx::query_as::<_, (i64, String, String)>(
        "SELECT c.id, c.file_id, c.text FROM chunks c
         JOIN files f ON f.id = c.file_id
         LEFT JOIN chunk_vectors v ON v.chunk_id = c.id AND v.embedder = $1
         WHERE f.status = 'ready' AND v.chunk_id IS NULL
         ORDER BY c.id LIMIT $2",
    )
    .bind(embedder)
    .bind(limit)
    .fetch_all(pool)
    .await)
    .map_err(db_err)
}

/// How many chunks of ready files have no vector from `embedder`.
pub async fn count_chunks_without_vectors(db: &Db, embedder: &str) -> Result<i64> {
    on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM chunks c
         JOIN files f ON f.id = c.file_id
         LEFT JOIN chunk_vectors v ON v.chunk_id = c.id AND v.embedder = $1
         WHERE f.status = 'ready' AND v.chunk_id IS NULL",
    )
    .bind(embedder)
    .fetch_one(pool)
    .await)
    .map_err(db_err)
}

/// `(chunk id, file id)` of the given files' chunks that have a vector from `embedder`.
pub async fn vector_ids_of_files(
    db: &Db,
    embedder: &str,
    file_ids: &[String],
) -> Result<Vec<(i64, String)>> {
    if file_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT v.chunk_id, c.file_id FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id
         WHERE v.embedder = $1 AND c.file_id IN ({})",
        placeholders(2, file_ids.len())
    );
    on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, (i64, String)>(&sql).bind(embedder);
        for id in file_ids {
            q = q.bind(id);
        }
        q.fetch_all(pool).await
    })
    .map_err(db_err)
}
