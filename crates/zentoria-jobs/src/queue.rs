use std::sync::Arc;

use tokio::sync::Notify;
use zentoria_core::{Error, Result, id::new_id, time::now_ms};
use zentoria_store::repo::jobs::{self, NewJob};
use zentoria_store::{Db, Tx};

use crate::JobKind;

/// Where jobs are enqueued. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pub(crate) db: Db,
    pub(crate) wake: Arc<Notify>,
    pub(crate) events: zentoria_events::EventBus,
}

#[derive(Debug, Default, Clone)]
pub struct EnqueueOptions {
    /// The user the job works for (who may see and cancel it).
    pub owner_id: Option<String>,
    /// Not before this time (epoch ms); default now.
    pub run_at: Option<i64>,
}

pub(crate) struct RawJob<'a> {
    pub kind: &'a str,
    pub payload: &'a str,
    pub priority: i32,
    pub max_attempts: u32,
    pub dedupe_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: String,
    /// `false` when a live duplicate absorbed this job.
    pub created: bool,
}

impl Queue {
    pub fn new(db: Db, events: zentoria_events::EventBus) -> Self {
        Queue {
            db,
            wake: Arc::new(Notify::new()),
            events,
        }
    }

    /// Enqueues `job` in its own transaction.
    pub async fn enqueue<J: JobKind>(&self, job: &J, opts: EnqueueOptions) -> Result<Enqueued> {
        let mut tx = self.db.begin().await?;
        let out = self.enqueue_in(&mut tx, job, opts).await?;
        self.commit(tx).await?;
        Ok(out)
    }

    /// Enqueues `job` inside `tx`, so it exists exactly when the write it belongs to does.
    /// Finish with [`Queue::commit`] so local workers wake at once.
    pub async fn enqueue_in<J: JobKind>(
        &self,
        tx: &mut Tx,
        job: &J,
        opts: EnqueueOptions,
    ) -> Result<Enqueued> {
        let payload = serde_json::to_string(job).map_err(Error::internal)?;
        let raw = RawJob {
            kind: J::KIND,
            payload: &payload,
            priority: J::PRIORITY,
            max_attempts: J::MAX_ATTEMPTS,
            dedupe_key: job.dedupe_key(),
        };
        self.enqueue_raw_in(tx, raw, opts).await
    }

    /// Enqueues a job given as its kind and JSON payload (for schedules, which store both).
    pub(crate) async fn enqueue_raw_in(
        &self,
        tx: &mut Tx,
        job: RawJob<'_>,
        opts: EnqueueOptions,
    ) -> Result<Enqueued> {
        let now = now_ms();
        let id = new_id();
        let (id, created) = jobs::insert(
            tx,
            &NewJob {
                id: &id,
                kind: job.kind,
                payload: job.payload,
                priority: job.priority,
                max_attempts: job.max_attempts.max(1) as i32,
                run_at: opts.run_at.unwrap_or(now),
                dedupe_key: job.dedupe_key.as_deref(),
                owner_id: opts.owner_id.as_deref(),
                now,
            },
        )
        .await?;
        if created {
            metrics::counter!("zentoria_jobs_enqueued_total", "kind" => job.kind.to_owned())
                .increment(1);
        }
        Ok(Enqueued { id, created })
    }

    /// Commits `tx` and wakes this process's workers.
    pub async fn commit(&self, tx: Tx) -> Result<()> {
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}
