use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use zentoria_core::Scope;
use zentoria_store::Db;
use zentoria_store::repo::jobs;

/// A kind of job: its payload type and how it is run.
pub trait JobKind: Serialize + DeserializeOwned + Send + 'static {
    /// Dotted name, stored with each job (e.g. `knowledge.ingest`).
    const KIND: &'static str;
    /// The scope needed to see and manage jobs of this kind.
    const SCOPE: Scope;
    /// Higher runs first.
    const PRIORITY: i32 = 0;
    /// Attempts before the job is `dead`.
    const MAX_ATTEMPTS: u32 = 5;
    /// Longest one attempt may take; past it the attempt fails transiently.
    const TIMEOUT: Duration = Duration::from_secs(300);

    /// Jobs with the same key collapse into one while it is queued or running.
    fn dedupe_key(&self) -> Option<String> {
        None
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying later (a timeout, an unreachable service).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (bad input): the job fails at once.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    pub fn transient(e: impl std::fmt::Display) -> Self {
        JobError::Transient(e.to_string())
    }

    pub fn permanent(e: impl std::fmt::Display) -> Self {
        JobError::Permanent(e.to_string())
    }
}

/// What a running handler can see and do.
#[derive(Clone)]
pub struct JobContext {
    pub id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub(crate) token: String,
    pub(crate) db: Db,
    pub(crate) cancel: watch::Receiver<bool>,
    pub(crate) events: zentoria_events::EventBus,
    pub(crate) kind: &'static str,
    pub(crate) scope: Scope,
    pub(crate) owner_id: Option<String>,
}

impl JobContext {
    /// Whether cancellation was asked; long handlers check it between steps.
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Resolves once cancellation is asked, for `select!` against the work.
    pub async fn cancelled(&self) {
        let mut rx = self.cancel.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Records progress (0–100) and a message, and announces it as a `job.progress` event.
    pub async fn progress(&self, percent: u8, message: Option<&str>) -> zentoria_core::Result<()> {
        let percent = percent.min(100);
        jobs::progress(
            &self.db,
            &self.id,
            &self.token,
            percent as i32,
            message,
            zentoria_core::time::now_ms(),
        )
        .await?;
        self.events
            .publish(
                zentoria_events::NewEvent::new(
                    "job.progress",
                    Some(self.scope),
                    serde_json::json!({
                        "id": self.id, "kind": self.kind, "progress": percent, "message": message,
                    }),
                )
                .owner(self.owner_id.clone()),
            )
            .await;
        Ok(())
    }

    /// Runs CPU-heavy work on the blocking pool, off the async executor.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| JobError::transient(format!("blocking work failed: {e}")))
    }
}

/// What the queue knows about a kind without running it.
#[derive(Debug, Clone)]
pub struct KindMeta {
    pub kind: &'static str,
    pub scope: Scope,
    pub priority: i32,
    pub max_attempts: u32,
    pub timeout: Duration,
    pub concurrency: usize,
}

type BoxFut = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(String, JobContext) -> BoxFut + Send + Sync>;

pub(crate) struct Registered {
    pub meta: KindMeta,
    pub handler: Handler,
}

/// Every job kind this process runs, registered once at startup.
#[derive(Default)]
pub struct Registry {
    pub(crate) kinds: HashMap<&'static str, Registered>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the handler for `J`, running at most `concurrency` at once in this process.
    pub fn register<J, F, Fut>(&mut self, concurrency: usize, handler: F)
    where
        J: JobKind,
        F: Fn(J, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |payload: String, ctx: JobContext| {
            let handler = handler.clone();
            Box::pin(async move {
                let job: J = serde_json::from_str(&payload).map_err(|e| {
                    JobError::permanent(format!("the payload is not a valid {}: {e}", J::KIND))
                })?;
                handler(job, ctx).await
            }) as BoxFut
        });
        let meta = KindMeta {
            kind: J::KIND,
            scope: J::SCOPE,
            priority: J::PRIORITY,
            max_attempts: J::MAX_ATTEMPTS.max(1),
            timeout: J::TIMEOUT,
            concurrency: concurrency.max(1),
        };
        if self
            .kinds
            .insert(
                J::KIND,
                Registered {
                    meta,
                    handler: erased,
                },
            )
            .is_some()
        {
            panic!("job kind {} is registered twice", J::KIND);
        }
    }

    pub fn metas(&self) -> HashMap<&'static str, KindMeta> {
        self.kinds
            .iter()
            .map(|(k, r)| (*k, r.meta.clone()))
            .collect()
    }
}
