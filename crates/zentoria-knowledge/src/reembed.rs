//! The `knowledge.reembed` job: gives every chunk of a ready file a vector from the current
//! embedder. It runs when the embedder changes (or one is configured for files ingested
//! without), in the background: search keeps answering from what is already embedded, and
//! each batch becomes searchable as it commits.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zentoria_core::time::now_ms;
use zentoria_core::{Error, Scope};
use zentoria_jobs::{EnqueueOptions, JobContext, JobError, JobKind};
use zentoria_store::repo::knowledge as repo;

use crate::Knowledge;
use crate::ingest::embed_error;

/// Chunks embedded and committed together.
const BATCH: i64 = 128;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reembed {
    /// The embedder the vectors are for; a job for an embedder no longer configured stops.
    pub embedder: String,
}

impl JobKind for Reembed {
    const KIND: &'static str = "knowledge.reembed";
    const SCOPE: Scope = Scope::FilesWrite;
    const MAX_ATTEMPTS: u32 = 5;
    const TIMEOUT: Duration = Duration::from_secs(24 * 3600);

    fn dedupe_key(&self) -> Option<String> {
        Some(self.embedder.clone())
    }
}

impl Knowledge {
    /// Queues a re-embedding when ready files have chunks without a vector from the current
    /// embedder; returns the job id if one was queued (or already was).
    pub async fn reembed_if_needed(&self) -> zentoria_core::Result<Option<String>> {
        let Some(embedder) = &self.inner.embedder else {
            return Ok(None);
        };
        let id = embedder.id();
        let missing = repo::count_chunks_without_vectors(&self.inner.db, &id).await?;
        if missing == 0 {
            return Ok(None);
        }
        tracing::info!(
            chunks = missing,
            embedder = %id,
            "chunks have no vector from the current embedder; re-embedding them in the background"
        );
        let job = self
            .inner
            .queue
            .enqueue(&Reembed { embedder: id }, EnqueueOptions::default())
            .await?;
        Ok(Some(job.id))
    }

    pub(crate) async fn reembed(&self, job: Reembed, ctx: JobContext) -> Result<(), JobError> {
        let Some(embedder) = self.inner.embedder.clone() else {
            return Ok(());
        };
        let id = embedder.id();
        if id != job.embedder {
            return Ok(());
        }
        let db = &self.inner.db;
        let total = repo::count_chunks_without_vectors(db, &id)
            .await
            .map_err(transient)?
            .max(1);
        let mut done = 0i64;
        loop {
            if ctx.is_cancelled() {
                return Err(JobError::permanent("cancelled"));
            }
            let batch = repo::chunks_without_vectors(db, &id, BATCH)
                .await
                .map_err(transient)?;
            if batch.is_empty() {
                break;
            }
            let texts: Vec<String> = batch.iter().map(|(_, _, t)| t.clone()).collect();
            let vectors = embedder.embed(&texts).await.map_err(embed_error)?;
            let rows: Vec<(i64, Vec<u8>)> = batch
                .iter()
                .zip(&vectors)
                .map(|((chunk, _, _), v)| (*chunk, crate::vectors::encode(v)))
                .collect();
            let files: BTreeSet<&str> = batch.iter().map(|(_, f, _)| f.as_str()).collect();
            let now = now_ms();
            let mut tx = db.begin().await.map_err(transient)?;
            repo::put_vectors(&mut tx, &id, &rows)
                .await
                .map_err(transient)?;
            for f in files {
                repo::record_change(&mut tx, f, now)
                    .await
                    .map_err(transient)?;
            }
            tx.commit().await.map_err(transient)?;
            if let Some(v) = &self.inner.vectors {
                v.nudge();
            }
            done += batch.len() as i64;
            let pct = (100 * done / total.max(done)).min(99) as u8;
            let _ = ctx
                .progress(pct, Some(&format!("embedded {done} chunks")))
                .await;
        }
        let _ = ctx.progress(100, Some("done")).await;
        Ok(())
    }
}

fn transient(e: Error) -> JobError {
    JobError::transient(e)
}
