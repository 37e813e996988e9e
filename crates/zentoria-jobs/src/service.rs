//! What callers may see and do with jobs: owners see their own jobs, admins every job, and
//! only of kinds whose scope they hold.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use zentoria_core::{Error, Result, time::now_ms};
use zentoria_platform::{AuditEvent, ClientInfo, Outcome, Principal};
use zentoria_store::repo::jobs::{self, JobFilter, JobRow};

use crate::{KindMeta, Queue};

/// Jobs as the API and CLI show them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    /// queued, running, succeeded, failed (permanent error), dead (attempts exhausted), cancelled.
    pub status: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub priority: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub run_at: i64,
    pub progress: Option<i32>,
    pub progress_message: Option<String>,
    pub last_error: Option<String>,
    pub cancel_requested: bool,
    pub owner_id: Option<String>,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "zentoria_core::time::rfc3339_ms::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<i64>,
    #[serde(with = "zentoria_core::time::rfc3339_ms::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
}

impl From<JobRow> for JobView {
    fn from(r: JobRow) -> Self {
        JobView {
            payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
            id: r.id,
            kind: r.kind,
            status: r.status,
            priority: r.priority,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            run_at: r.run_at,
            progress: r.progress,
            progress_message: r.progress_message,
            last_error: r.last_error,
            cancel_requested: r.cancel_requested,
            owner_id: r.owner_id,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct ListJobs {
    pub kind: Option<String>,
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: i64,
}

const STATUSES: &[&str] = &[
    "queued",
    "running",
    "succeeded",
    "failed",
    "dead",
    "cancelled",
];

/// The jobs service. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    queue: Queue,
    kinds: Arc<HashMap<&'static str, KindMeta>>,
    audit: zentoria_platform::AuditLog,
}

impl Jobs {
    pub fn new(
        queue: Queue,
        kinds: HashMap<&'static str, KindMeta>,
        audit: zentoria_platform::AuditLog,
    ) -> Self {
        Jobs {
            queue,
            kinds: Arc::new(kinds),
            audit,
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Whether `p` may see this job: its kind's scope, and ownership unless admin.
    fn visible(&self, p: &Principal, row: &JobRow) -> bool {
        let scope_ok = match self.kinds.get(row.kind.as_str()) {
            Some(meta) => p.scopes.allows(meta.scope),
            // Kinds this process does not run (left by another version): admins only.
            None => p.is_admin(),
        };
        scope_ok && (p.is_admin() || row.owner_id.as_deref() == Some(p.user_id.as_str()))
    }

    /// Jobs visible to `p`, newest first.
    pub async fn list(&self, p: Option<&Principal>, q: ListJobs) -> Result<Vec<JobView>> {
        if !(1..=500).contains(&q.limit) {
            return Err(Error::invalid("limit must be between 1 and 500"));
        }
        if let Some(s) = &q.status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(Error::invalid(format!(
                "status must be one of {}",
                STATUSES.join(", ")
            )));
        }
        let filter = JobFilter {
            kind: q.kind,
            status: q.status,
            owner_id: p.filter(|p| !p.is_admin()).map(|p| p.user_id.clone()),
            before_id: q.cursor,
            limit: q.limit,
        };
        let rows = jobs::list(self.queue.db(), &filter).await?;
        Ok(rows
            .into_iter()
            .filter(|r| p.is_none_or(|p| self.visible(p, r)))
            .map(JobView::from)
            .collect())
    }

    /// One job, if `p` may see it (`None` is the CLI on the server's machine).
    pub async fn get(&self, p: Option<&Principal>, id: &str) -> Result<JobView> {
        self.row(p, id).await.map(JobView::from)
    }

    async fn row(&self, p: Option<&Principal>, id: &str) -> Result<JobRow> {
        let not_found = || Error::not_found(format!("no job with id {id:?}"));
        if !zentoria_core::id::is_valid_id(id) {
            return Err(not_found());
        }
        let row = jobs::get(self.queue.db(), id)
            .await?
            .ok_or_else(not_found)?;
        match p {
            Some(p) if !self.visible(p, &row) => Err(not_found()),
            _ => Ok(row),
        }
    }

    /// Cancels a queued job at once, or asks a running one to stop.
    pub async fn cancel(
        &self,
        p: Option<&Principal>,
        id: &str,
        client: &ClientInfo,
    ) -> Result<JobView> {
        let row = self.row(p, id).await?;
        if !matches!(row.status.as_str(), "queued" | "running") {
            return Err(Error::Conflict(format!(
                "the job is {}; only queued or running jobs can be cancelled",
                row.status
            )));
        }
        jobs::cancel(self.queue.db(), id, now_ms()).await?;
        self.audited("job.cancelled", p, &row, client).await;
        self.get(p, id).await
    }

    /// Puts a failed, dead or cancelled job back in the queue with fresh attempts.
    pub async fn retry(
        &self,
        p: Option<&Principal>,
        id: &str,
        client: &ClientInfo,
    ) -> Result<JobView> {
        let row = self.row(p, id).await?;
        if !jobs::retry(self.queue.db(), id, now_ms()).await? {
            return Err(Error::Conflict(format!(
                "the job is {}; only failed, dead or cancelled jobs can be retried",
                row.status
            )));
        }
        self.queue.wake.notify_one();
        self.audited("job.retried", p, &row, client).await;
        self.get(p, id).await
    }

    /// Records a caller's action on a job in the audit log.
    async fn audited(
        &self,
        action: &str,
        p: Option<&Principal>,
        row: &JobRow,
        client: &ClientInfo,
    ) {
        self.audit
            .record(
                AuditEvent::new(action, Outcome::Success, client)
                    .actor(p.map(Principal::actor))
                    .resource("job", &row.id)
                    .details(serde_json::json!({"kind": row.kind, "was": row.status})),
            )
            .await;
    }
}
