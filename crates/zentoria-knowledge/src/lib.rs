//! Knowledge: files, their ingestion into searchable chunks, and search with citations.
//!
//! Upload streams the body to a staging file while hashing it and checking its magic bytes;
//! the file row and its `knowledge.ingest` job commit together, and the blob is moved into
//! the content-addressed store before that commit. The job extracts text (PDF and DOCX in a
//! resource-limited child process), chunks it, stores the chunks and records a change; the
//! full-text index tails those changes. With an embedder configured, the job also embeds the
//! chunks (vectors stored in the database) and the vector index tails the same changes;
//! search then answers by meaning, or both ways fused. Every rule lives here: the HTTP handlers, the CLI and
//! (later) MCP tools all call these functions.

pub mod blobs;
mod follow;
pub mod fulltext;
mod ingest;
mod reembed;
pub mod sandbox;
mod search;
mod upload;
pub mod vectors;
pub mod views;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use zentoria_core::time::now_ms;
use zentoria_core::{Error, Result, Scope};
use zentoria_events::{EventBus, NewEvent};
use zentoria_jobs::{EnqueueOptions, Queue, Registry};
use zentoria_platform::{AuditEvent, AuditLog, ClientInfo, Outcome, Principal};
use zentoria_store::Db;
use zentoria_store::repo::knowledge as repo;

pub use blobs::Blobs;
pub use fulltext::FullText;
pub use ingest::Ingest;
pub use reembed::Reembed;
pub use upload::{Upload, UploadMeta};
pub use vectors::Vectors;
pub use views::*;
pub use zentoria_embed::Embedder;

/// Which chunks a search may return: all conditions hold, and within a list any value does.
#[derive(Debug, Default, Clone)]
pub struct ChunkFilter {
    /// Only this owner's chunks (`None`: everyone's, for admins).
    pub owner: Option<String>,
    pub collection: Option<String>,
    pub kinds: Vec<String>,
    pub tags: Vec<String>,
    pub file_ids: Vec<String>,
}

/// Settings the composition root hands over.
#[derive(Debug, Clone)]
pub struct KnowledgeSettings {
    pub data_dir: PathBuf,
    pub max_upload_bytes: u64,
    pub chunk_tokens: usize,
    pub chunk_overlap: usize,
    pub extract_timeout: Duration,
    pub extract_memory_mb: u64,
    /// The program run as `<program> __extract …` for sandboxed extraction.
    pub extractor: PathBuf,
    pub ingest_concurrency: usize,
    /// Turns chunks and queries into vectors; `None`: keyword search only.
    pub embedder: Option<Embedder>,
    /// How hybrid search fuses its two rankings.
    pub hybrid: HybridSettings,
}

/// Weighted reciprocal-rank fusion: a chunk scores `Σ weight / (rrf_k + rank)` over the
/// rankings it appears in (rank from 1).
#[derive(Debug, Clone, Copy)]
pub struct HybridSettings {
    pub rrf_k: f32,
    pub keyword_weight: f32,
    pub semantic_weight: f32,
}

impl Default for HybridSettings {
    fn default() -> Self {
        HybridSettings {
            rrf_k: 60.0,
            keyword_weight: 1.0,
            semantic_weight: 1.0,
        }
    }
}

/// The knowledge service. Cheap to clone.
#[derive(Clone)]
pub struct Knowledge {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    blobs: Blobs,
    fulltext: FullText,
    /// Present when an embedder is configured.
    vectors: Option<Vectors>,
    embedder: Option<Embedder>,
    queue: Queue,
    audit: AuditLog,
    events: EventBus,
    settings: KnowledgeSettings,
    /// Serialises "store blob + commit row" against "delete row + drop unused blob" in this
    /// process, so a blob is never removed while an upload of the same content commits.
    blob_lock: tokio::sync::Mutex<()>,
}

/// Applied changes older than this are pruned from the log, about once an hour.
const CHANGE_RETENTION: Duration = Duration::from_secs(24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The background tasks that keep the indexes current.
pub struct Indexer {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    vectors: Option<Vectors>,
}

impl Indexer {
    /// Stops the tasks and saves the vector index, so a restart replays nothing.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(v) = self.vectors
            && let Err(e) = v.save().await
        {
            tracing::warn!(error = %e, "saving the vector index at shutdown failed");
        }
    }
}

const MAX_TAGS: usize = 32;
const MAX_TAG_LEN: usize = 64;

impl Knowledge {
    /// Opens the blob store and the full-text index in the data dir.
    pub fn open(
        db: Db,
        queue: Queue,
        audit: AuditLog,
        events: EventBus,
        settings: KnowledgeSettings,
    ) -> Result<Knowledge> {
        let blobs = Blobs::local(&settings.data_dir)?;
        let fulltext = FullText::open(&settings.data_dir, db.clone())?;
        let embedder = settings.embedder.clone();
        let vectors = match &embedder {
            Some(e) => Some(Vectors::open(&settings.data_dir, db.clone(), e.id())?),
            None => None,
        };
        Ok(Knowledge {
            inner: Arc::new(Inner {
                db,
                blobs,
                fulltext,
                vectors,
                embedder,
                queue,
                audit,
                events,
                settings,
                blob_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Adds the ingestion job to this process's workers.
    pub fn register_jobs(&self, registry: &mut Registry) {
        let this = self.clone();
        registry.register::<Ingest, _, _>(
            self.inner.settings.ingest_concurrency.max(1),
            move |job, ctx| {
                let this = this.clone();
                async move { this.ingest(job, ctx).await }
            },
        );
        let this = self.clone();
        registry.register::<Reembed, _, _>(1, move |job, ctx| {
            let this = this.clone();
            async move { this.reembed(job, ctx).await }
        });
    }

    /// Keeps the indexes in step with the database, prunes the change log they share, and
    /// queues a re-embedding when the embedder changed; [`Indexer::stop`] ends it all.
    pub fn start_indexer(&self) -> Indexer {
        let every = Duration::from_millis(500);
        let mut tasks = vec![self.inner.fulltext.start(every)];
        if let Some(v) = &self.inner.vectors {
            tasks.push(v.start(every));
        }
        let this = self.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = this.reembed_if_needed().await {
                tracing::warn!(error = %e, "checking for chunks to re-embed failed");
            }
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = this.prune_changes(CHANGE_RETENTION).await {
                    tracing::warn!(error = %e, "pruning the change log failed");
                }
            }
        }));
        Indexer {
            tasks,
            vectors: self.inner.vectors.clone(),
        }
    }

    /// Drops changes every local index applied more than `retention` ago (only the process
    /// maintaining the full-text index prunes); returns how far the log is pruned.
    pub async fn prune_changes(&self, retention: Duration) -> Result<i64> {
        let mut through = self.inner.fulltext.applied();
        if let Some(v) = &self.inner.vectors {
            through = through.min(v.applied());
        }
        self.inner.fulltext.prune(through, retention).await
    }

    pub fn fulltext(&self) -> &FullText {
        &self.inner.fulltext
    }

    /// The vector index, when an embedder is configured.
    pub fn vectors(&self) -> Option<&Vectors> {
        self.inner.vectors.as_ref()
    }

    pub fn embedder(&self) -> Option<&Embedder> {
        self.inner.embedder.as_ref()
    }

    /// Brings every index up to date with the database now (for processes that do not run
    /// [`Knowledge::start_indexer`], such as the CLI).
    pub async fn catch_up(&self) -> Result<()> {
        while self.inner.fulltext.sync().await? {}
        if let Some(v) = &self.inner.vectors {
            v.catch_up().await?;
        }
        Ok(())
    }

    /// Rebuilds every index from the database: returns the chunks in the full-text index and
    /// the vectors in the vector index (if an embedder is configured).
    pub async fn rebuild_indexes(&self) -> Result<(usize, Option<usize>)> {
        let chunks = self.inner.fulltext.rebuild().await?;
        let vectors = match &self.inner.vectors {
            Some(v) => {
                let n = v.rebuild().await?;
                if !v.save().await? {
                    return Err(Error::Conflict(
                        "another process holds the vector index; stop it (or rebuild there)".into(),
                    ));
                }
                Some(n)
            }
            None => None,
        };
        Ok((chunks, vectors))
    }

    /// Tells every index to look for changes now.
    pub(crate) fn nudge(&self) {
        self.inner.fulltext.nudge();
        if let Some(v) = &self.inner.vectors {
            v.nudge();
        }
    }

    pub fn settings(&self) -> &KnowledgeSettings {
        &self.inner.settings
    }

    // ---- files ------------------------------------------------------------------------------

    /// Starts an upload; feed it with [`Upload::push`] and end with [`Upload::finish`].
    pub fn begin_upload(
        &self,
        p: &Principal,
        filename: &str,
        declared_type: Option<&str>,
    ) -> Result<Upload> {
        p.require(Scope::FilesWrite)?;
        Upload::new(self.clone(), p, filename, declared_type)
    }

    pub async fn list_files(&self, p: &Principal, q: &FileQuery) -> Result<FilePage> {
        p.require(Scope::FilesRead)?;
        let limit = q.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Error::invalid("limit must be between 1 and 500"));
        }
        let offset = q.offset.unwrap_or(0);
        if offset < 0 {
            return Err(Error::invalid("offset must not be negative"));
        }
        let (sort_key, descending) = match q.sort.as_deref().unwrap_or("-created_at") {
            s if s.starts_with('-') => (&s[1..], true),
            s => (s, false),
        };
        let sort = match sort_key {
            "created_at" => "created_at",
            "updated_at" => "updated_at",
            "name" => "name",
            "size" => "size",
            other => {
                return Err(Error::invalid(format!(
                    "cannot sort by {other:?}; use created_at, updated_at, name or size (prefix - for descending)"
                )));
            }
        };
        if let Some(s) = &q.status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(Error::invalid(format!(
                "unknown status {s:?}; one of {}",
                STATUSES.join(", ")
            )));
        }
        if let Some(k) = &q.kind
            && k.parse::<zentoria_extract::Kind>().is_err()
        {
            return Err(Error::invalid(format!(
                "unknown type {k:?}; one of text, markdown, html, pdf, docx, csv, json, code"
            )));
        }
        let collection_id = match &q.collection {
            Some(c) => Some(self.resolve_collection(p, c).await?.id),
            None => None,
        };
        let filter = repo::FileFilter {
            owner_id: owner_filter(p),
            collection_id,
            tag: q.tag.clone(),
            kind: q.kind.clone(),
            status: q.status.clone(),
            sort,
            descending,
            limit,
            offset,
        };
        let (rows, total) = repo::list_files(&self.inner.db, &filter).await?;
        let files = self.with_tags(rows).await?;
        Ok(FilePage {
            files,
            total,
            limit,
            offset,
        })
    }

    pub async fn file(&self, p: &Principal, id: &str) -> Result<FileView> {
        p.require(Scope::FilesRead)?;
        let row = self.visible_file(p, id).await?;
        Ok(self.with_tags(vec![row]).await?.remove(0))
    }

    /// The file's text as ingestion extracted it (rebuilt from its chunks, overlaps
    /// removed), at most `max_chars` characters; `true` when it was cut there. Empty until
    /// the file is ready.
    pub async fn file_text(
        &self,
        p: &Principal,
        id: &str,
        max_chars: usize,
    ) -> Result<(FileView, String, bool)> {
        let file = self.file(p, id).await?;
        let chunks = repo::chunks_of_file(&self.inner.db, id).await?;
        let mut text = String::new();
        let mut count = 0usize;
        let mut end = 0i64;
        for c in chunks {
            if c.start_char > end && !text.is_empty() {
                text.push('\n');
            }
            let overlap = (end - c.start_char).max(0) as usize;
            for ch in c.text.chars().skip(overlap) {
                if count == max_chars {
                    return Ok((file, text, true));
                }
                text.push(ch);
                count += 1;
            }
            end = end.max(c.end_char);
        }
        Ok((file, text, false))
    }

    /// The file and a reader over `len` bytes of its content from `start`.
    pub async fn open_content(
        &self,
        p: &Principal,
        id: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
        p.require(Scope::FilesRead)?;
        let row = self.visible_file(p, id).await?;
        self.inner.blobs.open_range(&row.sha256, start, len).await
    }

    pub async fn update_file(
        &self,
        p: &Principal,
        id: &str,
        patch: FilePatch,
        client: &ClientInfo,
    ) -> Result<FileView> {
        p.require(Scope::FilesWrite)?;
        let row = self.visible_file(p, id).await?;
        let name = match &patch.name {
            Some(n) => {
                Some(zentoria_extract::sanitize_filename(n).map_err(|r| Error::invalid(r.reason))?)
            }
            None => None,
        };
        let tags = patch.tags.as_deref().map(normalize_tags).transpose()?;
        let collection = match patch.collection.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(c) => Some(Some(
                self.resolve_collection_of(&row.owner_id, p, c).await?.id,
            )),
        };
        let now = now_ms();
        let mut tx = self.inner.db.begin().await?;
        repo::update_file_meta(
            &mut tx,
            id,
            name.as_deref(),
            collection.as_ref().map(|c| c.as_deref()),
            now,
        )
        .await?;
        if let Some(tags) = &tags {
            repo::set_tags(&mut tx, id, tags).await?;
        }
        // Tags and collections are search filters: the index picks the change up.
        repo::record_change(&mut tx, id, now).await?;
        tx.commit().await?;
        self.nudge();
        self.audit(
            p,
            client,
            "file.update",
            id,
            serde_json::json!({"name": name, "tags": tags, "collection": patch.collection}),
        )
        .await;
        self.file(p, id).await
    }

    pub async fn delete_file(&self, p: &Principal, id: &str, client: &ClientInfo) -> Result<()> {
        p.require(Scope::FilesWrite)?;
        let row = self.visible_file(p, id).await?;
        self.delete_rows(
            &[(row.id.clone(), row.sha256.clone())],
            Some(&row.owner_id),
            None,
        )
        .await?;
        self.audit(
            p,
            client,
            "file.delete",
            id,
            serde_json::json!({"name": row.name, "sha256": row.sha256}),
        )
        .await;
        Ok(())
    }

    /// Queues the file for ingestion again (after a failure, or to pick up new settings).
    pub async fn reindex_file(
        &self,
        p: &Principal,
        id: &str,
        client: &ClientInfo,
    ) -> Result<Uploaded> {
        p.require(Scope::FilesWrite)?;
        let row = self.visible_file(p, id).await?;
        let mut tx = self.inner.db.begin().await?;
        repo::requeue(&mut tx, id, now_ms()).await?;
        let job = self
            .inner
            .queue
            .enqueue_in(
                &mut tx,
                &Ingest {
                    file_id: id.to_owned(),
                },
                EnqueueOptions {
                    owner_id: Some(row.owner_id.clone()),
                    run_at: None,
                },
            )
            .await?;
        self.inner.queue.commit(tx).await?;
        self.audit(
            p,
            client,
            "file.reindex",
            id,
            serde_json::json!({"job_id": job.id}),
        )
        .await;
        Ok(Uploaded {
            file: self.file(p, id).await?,
            created: false,
            job_id: Some(job.id),
        })
    }

    // ---- collections ------------------------------------------------------------------------

    pub async fn create_collection(
        &self,
        p: &Principal,
        new: NewCollection,
        client: &ClientInfo,
    ) -> Result<CollectionView> {
        p.require(Scope::FilesWrite)?;
        let c = self
            .create_collection_for(&p.user_id, &new.name, &new.description)
            .await?;
        self.audit(
            p,
            client,
            "collection.create",
            &c.id,
            serde_json::json!({"name": c.name}),
        )
        .await;
        Ok(c)
    }

    pub async fn collections(&self, p: &Principal) -> Result<Vec<CollectionView>> {
        p.require(Scope::FilesRead)?;
        let rows = repo::collections(&self.inner.db, owner_filter(p).as_deref()).await?;
        Ok(rows.into_iter().map(CollectionView::from).collect())
    }

    /// Deletes the collection and every file in it (blobs, chunks and index entries too).
    pub async fn delete_collection(
        &self,
        p: &Principal,
        id_or_name: &str,
        client: &ClientInfo,
    ) -> Result<usize> {
        p.require(Scope::FilesWrite)?;
        let c = self.resolve_collection(p, id_or_name).await?;
        let mut tx = self.inner.db.begin().await?;
        let files = repo::files_in_collection(&mut tx, &c.id).await?;
        tx.rollback().await?;
        let n = files.len();
        self.delete_rows(&files, Some(&c.owner_id), Some(&c.id))
            .await?;
        self.audit(
            p,
            client,
            "collection.delete",
            &c.id,
            serde_json::json!({"name": c.name, "files_deleted": n}),
        )
        .await;
        Ok(n)
    }

    // ---- internals ----------------------------------------------------------------------------

    async fn create_collection_for(
        &self,
        owner_id: &str,
        name: &str,
        description: &str,
    ) -> Result<CollectionView> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "a collection name must have 1 to 100 characters and no control characters",
            ));
        }
        if description.chars().count() > 2000 {
            return Err(Error::invalid(
                "a collection description is at most 2000 characters",
            ));
        }
        let id = zentoria_core::id::new_id();
        repo::insert_collection(&self.inner.db, &id, owner_id, name, description, now_ms())
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => {
                    Error::Conflict(format!("a collection named {name:?} exists"))
                }
                e => e,
            })?;
        let row = repo::collection(&self.inner.db, &id)
            .await?
            .ok_or_else(|| Error::bug("collection vanished after insert"))?;
        Ok(row.into())
    }

    /// A collection the caller may read, by id or (their own) name.
    pub async fn collection(&self, p: &Principal, c: &str) -> Result<CollectionView> {
        p.require(Scope::FilesRead)?;
        self.resolve_collection(p, c).await
    }

    /// A collection the caller may use, by id or (their own) name.
    async fn resolve_collection(&self, p: &Principal, c: &str) -> Result<CollectionView> {
        self.resolve_collection_of(&p.user_id, p, c).await
    }

    /// Like `resolve_collection`, looking names up among `owner_id`'s collections.
    async fn resolve_collection_of(
        &self,
        owner_id: &str,
        p: &Principal,
        c: &str,
    ) -> Result<CollectionView> {
        let row = match repo::collection(&self.inner.db, c).await? {
            Some(r) => Some(r),
            None => repo::collection_by_name(&self.inner.db, owner_id, c).await?,
        };
        match row {
            Some(r) if r.owner_id == owner_id || p.is_admin() => Ok(r.into()),
            _ => Err(Error::not_found(format!("no collection {c:?}"))),
        }
    }

    /// The collection an upload goes to: an existing one by id or name, else a new one.
    pub(crate) async fn collection_for_upload(
        &self,
        p: &Principal,
        c: &str,
    ) -> Result<CollectionView> {
        match self.resolve_collection(p, c).await {
            Ok(c) => Ok(c),
            Err(Error::NotFound(_)) => match self.create_collection_for(&p.user_id, c, "").await {
                // Another upload created it first.
                Err(Error::Conflict(_)) => self.resolve_collection(p, c).await,
                other => other,
            },
            Err(e) => Err(e),
        }
    }

    async fn visible_file(&self, p: &Principal, id: &str) -> Result<repo::FileRow> {
        match repo::file(&self.inner.db, id).await? {
            Some(r) if r.owner_id == p.user_id || p.is_admin() => Ok(r),
            _ => Err(Error::not_found(format!("no file {id:?}"))),
        }
    }

    async fn with_tags(&self, rows: Vec<repo::FileRow>) -> Result<Vec<FileView>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let tags = repo::tags_of(&self.inner.db, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let t = tags
                    .iter()
                    .filter(|(id, _)| *id == r.id)
                    .map(|(_, t)| t.clone())
                    .collect();
                FileView::from_row(r, t)
            })
            .collect())
    }

    /// Deletes file rows (and the collection, if given) in one transaction, records the
    /// changes for the index, then drops blobs no file uses any more.
    async fn delete_rows(
        &self,
        files: &[(String, String)],
        owner_id: Option<&str>,
        collection_id: Option<&str>,
    ) -> Result<()> {
        let _guard = self.inner.blob_lock.lock().await;
        let now = now_ms();
        let mut tx = self.inner.db.begin().await?;
        for (id, _) in files {
            repo::delete_file(&mut tx, id).await?;
            repo::record_change(&mut tx, id, now).await?;
        }
        if let Some(c) = collection_id {
            repo::delete_collection(&mut tx, c).await?;
        }
        tx.commit().await?;
        self.nudge();
        for (id, sha) in files {
            if !repo::blob_in_use(&self.inner.db, sha).await? {
                self.inner.blobs.delete(sha).await?;
            }
            self.publish("file.deleted", owner_id, serde_json::json!({"id": id}))
                .await;
        }
        Ok(())
    }

    pub(crate) async fn publish(&self, name: &str, owner: Option<&str>, data: serde_json::Value) {
        self.inner
            .events
            .publish(
                NewEvent::new(name, Some(Scope::FilesRead), data).owner(owner.map(str::to_owned)),
            )
            .await;
    }

    pub(crate) async fn audit(
        &self,
        p: &Principal,
        client: &ClientInfo,
        action: &str,
        id: &str,
        details: serde_json::Value,
    ) {
        let kind = if action.starts_with("collection.") {
            "collection"
        } else {
            "file"
        };
        self.inner
            .audit
            .record(
                AuditEvent::new(action, Outcome::Success, client)
                    .actor(Some(p.actor()))
                    .resource(kind, id)
                    .details(details),
            )
            .await;
    }
}

const STATUSES: &[&str] = &[
    "queued",
    "extracting",
    "embedding",
    "indexing",
    "ready",
    "failed",
];

/// Everyone's files for admins, else the caller's own.
fn owner_filter(p: &Principal) -> Option<String> {
    if p.is_admin() {
        None
    } else {
        Some(p.user_id.clone())
    }
}

/// Trims, drops empties and duplicates, and bounds count and length.
pub(crate) fn normalize_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > MAX_TAG_LEN || t.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "a tag has at most {MAX_TAG_LEN} characters and no control characters"
            )));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(Error::invalid(format!(
            "a file has at most {MAX_TAGS} tags"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_deduplicated_and_bounded() {
        let t = normalize_tags(&[" a ".into(), "".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(t, vec!["a", "b"]);
        assert!(normalize_tags(&["x".repeat(65)]).is_err());
        assert!(normalize_tags(&(0..33).map(|i| i.to_string()).collect::<Vec<_>>()).is_err());
        assert!(normalize_tags(&["bad\ntag".into()]).is_err());
    }
}
