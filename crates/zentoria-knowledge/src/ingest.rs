//! The `knowledge.ingest` job: extract → chunk → store chunks → index → ready. Every step is
//! idempotent, so a crash anywhere means the job's lease runs out and the next attempt redoes
//! the work from the stored blob.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zentoria_core::time::now_ms;
use zentoria_core::{Error, Scope};
use zentoria_extract::{ChunkOptions, Document, Kind, Limits};
use zentoria_jobs::{JobContext, JobError, JobKind};
use zentoria_store::repo::knowledge::{self as repo, NewChunk};

use crate::Knowledge;
use crate::sandbox::{Sandbox, SandboxError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ingest {
    pub file_id: String,
}

impl JobKind for Ingest {
    const KIND: &'static str = "knowledge.ingest";
    const SCOPE: Scope = Scope::FilesWrite;
    const MAX_ATTEMPTS: u32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(30 * 60);

    fn dedupe_key(&self) -> Option<String> {
        Some(self.file_id.clone())
    }
}

/// How long an ingestion waits for the index to take its chunks.
const INDEX_WAIT: Duration = Duration::from_secs(120);
/// Chunks embedded between progress reports (the embedder batches within).
const EMBED_STEP: usize = 64;

impl Knowledge {
    pub(crate) async fn ingest(&self, job: Ingest, ctx: JobContext) -> Result<(), JobError> {
        let result = self.ingest_steps(&job.file_id, &ctx).await;
        if let Err(e) = &result {
            let last = matches!(e, JobError::Permanent(_)) || ctx.attempt >= Ingest::MAX_ATTEMPTS;
            let (status, message) = if last {
                ("failed", e.to_string())
            } else {
                ("queued", format!("retrying after: {e}"))
            };
            let _ = self.set_status(&job.file_id, status, Some(&message)).await;
            if last {
                self.publish_status(&job.file_id, "failed", Some(&message))
                    .await;
            }
        }
        result
    }

    async fn ingest_steps(&self, file_id: &str, ctx: &JobContext) -> Result<(), JobError> {
        let Some(file) = repo::file(&self.inner.db, file_id)
            .await
            .map_err(transient)?
        else {
            // Deleted while queued: nothing to do.
            return Ok(());
        };
        let kind: Kind = file
            .kind
            .parse()
            .map_err(|_| JobError::permanent(format!("unknown file kind {:?}", file.kind)))?;

        self.set_status(file_id, "extracting", None)
            .await
            .map_err(transient)?;
        let _ = ctx.progress(10, Some("extracting text")).await;
        let doc = self.extract(&file.sha256, kind, &file.name).await?;
        if ctx.is_cancelled() {
            return Err(JobError::permanent("cancelled"));
        }

        let _ = ctx.progress(40, Some("chunking")).await;
        let s = &self.inner.settings;
        let opts = ChunkOptions {
            max_tokens: s.chunk_tokens.max(16),
            overlap_tokens: s.chunk_overlap.min(s.chunk_tokens / 2),
        };
        let pages = (!doc.pages.is_empty()).then_some(doc.pages.len() as i32);
        let chunks = ctx
            .blocking(move || zentoria_extract::chunk(&doc, &opts))
            .await?;

        let embedder = self.inner.embedder.clone();
        let stage = if embedder.is_some() {
            "embedding"
        } else {
            "indexing"
        };
        let _ = ctx.progress(50, Some(stage)).await;
        let rows: Vec<NewChunk> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| NewChunk {
                ord: i as i32,
                text: &c.text,
                start_char: c.start_char as i64,
                end_char: c.end_char as i64,
                page: c.page.map(|p| p as i32),
                heading: c.heading.as_deref(),
                tokens: c.tokens as i32,
            })
            .collect();
        let chunk_count = rows.len();
        let now = now_ms();
        let mut tx = self.inner.db.begin().await.map_err(transient)?;
        repo::replace_chunks(&mut tx, file_id, &rows, pages, stage, now)
            .await
            .map_err(transient)?;
        // Without an embedder this change makes the chunks searchable. With one, it makes the
        // indexes drop what they held for a file indexed before (a re-index) until its new
        // chunks are embedded; a file never indexed needs no such change (and no index commit).
        let mut seq = 0;
        if stage == "indexing" || file.chunk_count > 0 {
            seq = repo::record_change(&mut tx, file_id, now)
                .await
                .map_err(transient)?;
        }
        tx.commit().await.map_err(transient)?;
        self.publish_status(file_id, stage, None).await;

        if let Some(embedder) = embedder {
            let stored = repo::chunks_of_file(&self.inner.db, file_id)
                .await
                .map_err(transient)?;
            let mut vectors = Vec::with_capacity(stored.len());
            for (i, batch) in stored.chunks(EMBED_STEP).enumerate() {
                if ctx.is_cancelled() {
                    return Err(JobError::permanent("cancelled"));
                }
                let texts: Vec<String> = batch.iter().map(|c| c.text.clone()).collect();
                let embedded = embedder.embed(&texts).await.map_err(embed_error)?;
                vectors.extend(
                    batch
                        .iter()
                        .zip(embedded)
                        .map(|(c, v)| (c.id, crate::vectors::encode(&v))),
                );
                let done = ((i + 1) * EMBED_STEP).min(stored.len());
                let pct = 50 + (40 * done / stored.len().max(1)) as u8;
                let _ = ctx
                    .progress(
                        pct,
                        Some(&format!("embedded {done} of {} chunks", stored.len())),
                    )
                    .await;
            }
            let now = now_ms();
            let mut tx = self.inner.db.begin().await.map_err(transient)?;
            repo::put_vectors(&mut tx, &embedder.id(), &vectors)
                .await
                .map_err(transient)?;
            repo::set_status_in(&mut tx, file_id, "indexing", now)
                .await
                .map_err(transient)?;
            seq = repo::record_change(&mut tx, file_id, now)
                .await
                .map_err(transient)?;
            tx.commit().await.map_err(transient)?;
            self.publish_status(file_id, "indexing", None).await;
        }

        let _ = ctx.progress(90, Some("indexing")).await;
        self.inner
            .fulltext
            .wait_for(seq, INDEX_WAIT)
            .await
            .map_err(transient)?;
        if let Some(v) = &self.inner.vectors {
            v.wait_for(seq, INDEX_WAIT).await.map_err(transient)?;
        }
        self.set_status(file_id, "ready", None)
            .await
            .map_err(transient)?;
        let _ = ctx.progress(100, Some("ready")).await;
        self.publish(
            "file.ready",
            Some(&file.owner_id),
            serde_json::json!({"id": file_id, "name": file.name, "chunks": chunk_count}),
        )
        .await;
        metrics::counter!("zentoria_files_ingested_total", "kind" => file.kind.clone())
            .increment(1);
        metrics::counter!("zentoria_chunks_ingested_total").increment(chunk_count as u64);
        Ok(())
    }

    async fn extract(&self, sha256: &str, kind: Kind, name: &str) -> Result<Document, JobError> {
        let limits = Limits::default();
        let s = &self.inner.settings;
        if matches!(kind, Kind::Pdf | Kind::Docx) {
            let path = self.inner.blobs.local_path(sha256).map_err(transient)?;
            let sandbox = Sandbox {
                program: s.extractor.clone(),
                timeout: s.extract_timeout,
                memory_mb: s.extract_memory_mb,
                max_text_bytes: limits.max_text_bytes,
            };
            return sandbox.extract(&path, kind).await.map_err(|e| match e {
                SandboxError::Rejected(m) => JobError::permanent(format!("{name}: {m}")),
                SandboxError::Failed(m) => JobError::transient(m),
            });
        }
        // Text formats are parsed in-process by linear, bounded code.
        let bytes = self
            .inner
            .blobs
            .read(sha256, s.max_upload_bytes)
            .await
            .map_err(transient)?;
        let ft = zentoria_extract::FileType::of(kind);
        let timeout = s.extract_timeout;
        let work =
            tokio::task::spawn_blocking(move || zentoria_extract::extract(&bytes, &ft, &limits));
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(Ok(doc))) => Ok(doc),
            Ok(Ok(Err(e))) => Err(JobError::permanent(format!("{name}: {e}"))),
            Ok(Err(e)) => Err(JobError::permanent(format!(
                "{name}: extraction failed: {e}"
            ))),
            Err(_) => Err(JobError::permanent(format!(
                "{name}: text extraction took longer than {} s",
                timeout.as_secs()
            ))),
        }
    }

    async fn set_status(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
    ) -> zentoria_core::Result<()> {
        repo::set_status(&self.inner.db, id, status, error, now_ms()).await?;
        if error.is_none() {
            self.publish_status(id, status, None).await;
        }
        Ok(())
    }

    async fn publish_status(&self, id: &str, status: &str, error: Option<&str>) {
        let owner = repo::file(&self.inner.db, id)
            .await
            .ok()
            .flatten()
            .map(|f| f.owner_id);
        self.publish(
            "file.status",
            owner.as_deref(),
            serde_json::json!({"id": id, "status": status, "error": error}),
        )
        .await;
    }
}

fn transient(e: Error) -> JobError {
    JobError::transient(e)
}

/// A misconfigured embedder will not heal by retrying; an unreachable or failing one may.
pub(crate) fn embed_error(e: zentoria_embed::EmbedError) -> JobError {
    match e {
        zentoria_embed::EmbedError::Config(_) | zentoria_embed::EmbedError::Invalid(_) => {
            JobError::permanent(format!("embedding failed: {e}"))
        }
        _ => JobError::transient(format!("embedding failed: {e}")),
    }
}
