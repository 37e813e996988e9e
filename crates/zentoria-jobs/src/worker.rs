//! The worker pool: one dispatcher per process claims due jobs for kinds with free slots,
//! runs each under a lease kept alive by heartbeats, and records how it ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use zentoria_core::{id::new_id, time::now_ms};
use zentoria_store::Db;
use zentoria_store::repo::jobs::{self, Finish, JobRow};

use crate::kind::{Handler, Registered};
use crate::{JobContext, JobError, Queue, Registry};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How often to look for due jobs without being woken (the safety net).
    pub poll_interval: Duration,
    /// How long a claim lasts without a heartbeat; a dead worker's job is taken over after it.
    pub lease: Duration,
    /// The first retry delay; each later one doubles, with jitter, up to an hour.
    pub retry_base: Duration,
    /// Finished jobs are deleted this long after they end.
    pub retention: Duration,
    /// How long shutdown waits for running handlers before leaving them to lease expiry.
    pub shutdown_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            retry_base: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 86400),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Stops the workers on [`WorkerHandle::shutdown`].
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Stops claiming, waits up to the grace period for running jobs, then returns. Jobs still
    /// running are abandoned; their leases expire and another worker takes them over.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// How an attempt ended, owned, on its way to the finisher.
enum Ending {
    Succeeded,
    Retry { error: String, run_at: i64 },
    Failed { status: &'static str, error: String },
    Cancelled,
}

struct FinishRequest {
    id: String,
    token: String,
    ending: Ending,
    now: i64,
    /// Whether the lease was still held; `Err` when the database could not be reached.
    reply: tokio::sync::oneshot::Sender<Result<bool, ()>>,
}

type Finisher = tokio::sync::mpsc::Sender<FinishRequest>;

/// Records the ends of attempts in batches: one transaction (one commit) for every attempt
/// that ended while the previous batch was being written.
async fn finisher(db: Db, mut rx: tokio::sync::mpsc::Receiver<FinishRequest>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let items: Vec<(&str, &str, Finish<'_>, i64)> = batch
            .iter()
            .map(|r: &FinishRequest| {
                let how = match &r.ending {
                    Ending::Succeeded => Finish::Succeeded,
                    Ending::Retry { error, run_at } => Finish::Retry {
                        error,
                        run_at: *run_at,
                    },
                    Ending::Failed { status, error } => Finish::Failed { status, error },
                    Ending::Cancelled => Finish::Cancelled,
                };
                (r.id.as_str(), r.token.as_str(), how, r.now)
            })
            .collect();
        let result = jobs::finish_many(&db, &items).await;
        drop(items);
        match result {
            Ok(held) => {
                for (r, held) in batch.drain(..).zip(held) {
                    let _ = r.reply.send(Ok(held));
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, jobs = batch.len(), "cannot record the end of jobs");
                for r in batch.drain(..) {
                    let _ = r.reply.send(Err(()));
                }
            }
        }
    }
}

struct Kind {
    handler: Handler,
    meta: crate::KindMeta,
    slots: Arc<Semaphore>,
}

/// Starts this process's workers for every kind in `registry`.
pub fn start_workers(queue: &Queue, registry: Registry, settings: WorkerSettings) -> WorkerHandle {
    let kinds: HashMap<&'static str, Kind> = registry
        .kinds
        .into_iter()
        .map(|(name, Registered { meta, handler })| {
            let slots = Arc::new(Semaphore::new(meta.concurrency));
            (
                name,
                Kind {
                    handler,
                    meta,
                    slots,
                },
            )
        })
        .collect();
    let (stop, stop_rx) = watch::channel(false);
    if let Db::Postgres(pool) = &queue.db {
        tokio::spawn(listen_for_jobs(
            pool.clone(),
            queue.wake.clone(),
            stop_rx.clone(),
        ));
    }
    let task = tokio::spawn(dispatch(queue.clone(), kinds, settings, stop_rx));
    WorkerHandle { stop, task }
}

/// Wakes the dispatcher when another process enqueues (PostgreSQL `NOTIFY`).
async fn listen_for_jobs(pool: sqlx::PgPool, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut delay = Duration::from_millis(100);
    while !*stop.borrow() {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen("zentoria_jobs").await?;
            loop {
                l.recv().await?;
                wake.notify_one();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            res = listener => {
                if let Err(e) = res {
                    tracing::warn!(error = %e, "job notifications interrupted; polling until reconnected");
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn dispatch(
    queue: Queue,
    kinds: HashMap<&'static str, Kind>,
    settings: WorkerSettings,
    mut stop: watch::Receiver<bool>,
) {
    let freed = Arc::new(Notify::new());
    let (finish_tx, finish_rx) = tokio::sync::mpsc::channel(1024);
    let finisher_task = tokio::spawn(finisher(queue.db.clone(), finish_rx));
    let metas: HashMap<&'static str, crate::KindMeta> =
        kinds.iter().map(|(k, v)| (*k, v.meta.clone())).collect();
    let mut running = JoinSet::new();
    let mut last_maintenance = Instant::now() - settings.poll_interval;
    let mut last_prune = Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        if last_maintenance.elapsed() >= settings.poll_interval {
            last_maintenance = Instant::now();
            match crate::schedule::tick(&queue, &metas).await {
                Ok(n) if n > 0 => tracing::debug!(jobs = n, "enqueued scheduled jobs"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "cannot run due schedules"),
            }
            match jobs::recover_expired(&queue.db, now_ms()).await {
                Ok(n) if n > 0 => {
                    tracing::warn!(jobs = n, "recovered jobs whose worker stopped responding")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "cannot recover expired jobs"),
            }
            if last_prune.elapsed() >= Duration::from_secs(60) {
                last_prune = Instant::now();
                let before = now_ms() - settings.retention.as_millis() as i64;
                if let Err(e) = jobs::prune(&queue.db, before).await {
                    tracing::warn!(error = ?e, "cannot prune finished jobs");
                }
            }
        }
        let mut claimed_full_batch = false;
        for kind in kinds.values() {
            let free = kind.slots.available_permits();
            if free == 0 {
                continue;
            }
            let now = now_ms();
            let token = new_id();
            let rows = match jobs::claim(
                &queue.db,
                kind.meta.kind,
                free as i64,
                now,
                now + settings.lease.as_millis() as i64,
                &token,
            )
            .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = ?e, kind = kind.meta.kind, "cannot claim jobs");
                    continue;
                }
            };
            claimed_full_batch |= rows.len() == free;
            for row in rows {
                let Ok(permit) = kind.slots.clone().try_acquire_owned() else {
                    break;
                };
                let handler = kind.handler.clone();
                let meta = kind.meta.clone();
                let db = queue.db.clone();
                let events = queue.events.clone();
                let settings = settings.clone();
                let freed = freed.clone();
                let finish = finish_tx.clone();
                running.spawn(async move {
                    run_one(db, events, finish, row, handler, meta, settings).await;
                    drop(permit);
                    freed.notify_one();
                });
            }
        }
        // Reap finished tasks so the set does not grow.
        while running.try_join_next().is_some() {}
        if claimed_full_batch {
            // There may be more due work than free slots; look again as soon as one frees.
            tokio::select! {
                _ = freed.notified() => {}
                _ = tokio::time::sleep(settings.poll_interval) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            continue;
        }
        tokio::select! {
            _ = queue.wake.notified() => {}
            _ = freed.notified() => {}
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    // Graceful stop: give running handlers the grace period, then leave them to lease expiry.
    let drain = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(settings.shutdown_grace, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            "jobs still running at shutdown; they will be retried after their lease expires"
        );
        running.abort_all();
    }
    drop(finish_tx);
    let _ = finisher_task.await;
}

async fn run_one(
    db: Db,
    events: zentoria_events::EventBus,
    finish: Finisher,
    row: JobRow,
    handler: Handler,
    meta: crate::KindMeta,
    settings: WorkerSettings,
) {
    let token = row.lease_token.clone().unwrap_or_default();
    let started = Instant::now();
    let (cancel_tx, cancel_rx) = watch::channel(row.cancel_requested);
    let ctx = JobContext {
        id: row.id.clone(),
        attempt: row.attempts.max(1) as u32,
        token: token.clone(),
        db: db.clone(),
        cancel: cancel_rx,
        events: events.clone(),
        kind: meta.kind,
        scope: meta.scope,
        owner_id: row.owner_id.clone(),
    };
    publish(&events, &meta, &row, "job.started", None).await;
    let lease_lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heartbeat = tokio::spawn(heartbeat(
        db.clone(),
        row.id.clone(),
        token.clone(),
        settings.lease,
        cancel_tx,
        lease_lost.clone(),
    ));
    // The handler runs in its own task so a panic is an error, not a lost worker.
    let work = tokio::spawn(handler(row.payload.clone(), ctx.clone()));
    let abort = work.abort_handle();
    let outcome = match tokio::time::timeout(meta.timeout, work).await {
        Ok(Ok(res)) => res,
        Ok(Err(join)) if join.is_panic() => Err(JobError::transient("the job handler panicked")),
        Ok(Err(_)) => Err(JobError::transient("the job handler was aborted")),
        Err(_) => {
            abort.abort();
            Err(JobError::transient(format!(
                "the attempt took longer than {} s",
                meta.timeout.as_secs()
            )))
        }
    };
    heartbeat.abort();
    if lease_lost.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(job = %row.id, kind = meta.kind, "lost the lease on a job; its result is discarded");
        return;
    }
    let attempts = row.attempts.max(1) as u32;
    let (ending, label) = match outcome {
        Ok(()) => (Ending::Succeeded, "succeeded"),
        Err(_) if ctx.is_cancelled() => (Ending::Cancelled, "cancelled"),
        Err(JobError::Permanent(error)) => (
            Ending::Failed {
                status: "failed",
                error,
            },
            "failed",
        ),
        Err(JobError::Transient(error)) if attempts >= meta.max_attempts => (
            Ending::Failed {
                status: "dead",
                error,
            },
            "dead",
        ),
        Err(JobError::Transient(error)) => (
            Ending::Retry {
                error,
                run_at: now_ms() + backoff(settings.retry_base, attempts).as_millis() as i64,
            },
            "retried",
        ),
    };
    let error = match &ending {
        Ending::Retry { error, .. } | Ending::Failed { error, .. } => Some(error.clone()),
        _ => None,
    };
    if let Some(error) = &error {
        tracing::warn!(job = %row.id, kind = meta.kind, attempt = attempts, outcome = label, %error, "job attempt failed");
    }
    metrics::counter!("zentoria_jobs_finished_total", "kind" => meta.kind, "outcome" => label)
        .increment(1);
    metrics::histogram!("zentoria_job_duration_seconds", "kind" => meta.kind)
        .record(started.elapsed().as_secs_f64());
    // The result must not be lost to a passing database hiccup.
    let mut ending = Some(ending);
    let mut delay = Duration::from_millis(50);
    for _ in 0..8 {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let req = FinishRequest {
            id: row.id.clone(),
            token: token.clone(),
            ending: match ending.take() {
                Some(e) => e,
                None => return,
            },
            now: now_ms(),
            reply,
        };
        // Keep a copy to resend if this batch fails.
        let resend = clone_ending(&req.ending);
        if finish.send(req).await.is_err() {
            return;
        }
        match answer.await {
            Ok(Ok(true)) => {
                let name = match label {
                    "retried" => "job.retrying",
                    "succeeded" => "job.succeeded",
                    "failed" => "job.failed",
                    "dead" => "job.dead",
                    _ => "job.cancelled",
                };
                publish(&events, &meta, &row, name, error.as_deref()).await;
                return;
            }
            Ok(Ok(false)) => {
                tracing::warn!(job = %row.id, "the job's lease was taken over before it finished");
                return;
            }
            _ => {
                ending = Some(resend);
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    tracing::error!(job = %row.id, "gave up recording a job's end; it will be retried after its lease expires");
}

async fn publish(
    events: &zentoria_events::EventBus,
    meta: &crate::KindMeta,
    row: &JobRow,
    name: &str,
    error: Option<&str>,
) {
    events
        .publish(
            zentoria_events::NewEvent::new(
                name,
                Some(meta.scope),
                serde_json::json!({
                    "id": row.id, "kind": row.kind, "attempt": row.attempts, "error": error,
                }),
            )
            .owner(row.owner_id.clone()),
        )
        .await;
}

fn clone_ending(e: &Ending) -> Ending {
    match e {
        Ending::Succeeded => Ending::Succeeded,
        Ending::Retry { error, run_at } => Ending::Retry {
            error: error.clone(),
            run_at: *run_at,
        },
        Ending::Failed { status, error } => Ending::Failed {
            status,
            error: error.clone(),
        },
        Ending::Cancelled => Ending::Cancelled,
    }
}

/// Keeps the lease alive and passes cancellation requests to the handler.
async fn heartbeat(
    db: Db,
    id: String,
    token: String,
    lease: Duration,
    cancel: watch::Sender<bool>,
    lost: Arc<std::sync::atomic::AtomicBool>,
) {
    let every = (lease / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        let until = now_ms() + lease.as_millis() as i64;
        match jobs::heartbeat(&db, &id, &token, until).await {
            Ok(Some(requested)) => {
                if requested {
                    let _ = cancel.send(true);
                }
            }
            Ok(None) => {
                lost.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = cancel.send(true);
                return;
            }
            Err(e) => tracing::warn!(job = %id, error = ?e, "cannot renew a job's lease"),
        }
    }
}

/// Exponential backoff with jitter: base·2^(attempt−1), capped at an hour, scaled by a random
/// factor in [0.5, 1) so that many failing jobs do not retry in lockstep.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(Duration::from_secs(3600));
    capped.mul_f64(rand::thread_rng().gen_range(0.5..1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let base = Duration::from_secs(1);
        for attempt in 1..=5 {
            let d = backoff(base, attempt);
            let full = Duration::from_secs(1 << (attempt - 1));
            assert!(d >= full / 2 && d < full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(base, 40) <= Duration::from_secs(3600));
    }
}
