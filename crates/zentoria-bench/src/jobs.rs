//! Job kinds for benchmarks and crash tests, and the worker host that runs them.

use std::io::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zentoria_core::Scope;
use zentoria_core::config::Config;
use zentoria_jobs::{JobError, JobKind, Registry};

/// Does nothing: measures the queue itself.
#[derive(Serialize, Deserialize)]
pub struct Noop {
    pub n: u64,
}

impl JobKind for Noop {
    const KIND: &'static str = "bench.noop";
    const SCOPE: Scope = Scope::Admin;
}

/// Sleeps, writing `start <attempt>` and `done` lines to a marker file, so a test can see how
/// often it started and finished.
#[derive(Serialize, Deserialize)]
pub struct Sleep {
    pub ms: u64,
    pub marker: String,
}

impl JobKind for Sleep {
    const KIND: &'static str = "bench.sleep";
    const SCOPE: Scope = Scope::Admin;
}

fn mark(path: &str, line: &str) -> Result<(), JobError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(JobError::transient)?;
    writeln!(f, "{line}").map_err(JobError::transient)?;
    f.sync_all().map_err(JobError::transient)
}

pub fn registry(concurrency: usize) -> Registry {
    let mut r = Registry::new();
    r.register::<Noop, _, _>(concurrency, |_, _| async { Ok(()) });
    r.register::<Sleep, _, _>(concurrency, |job, ctx| async move {
        mark(&job.marker, &format!("start {}", ctx.attempt))?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(job.ms)) => {}
            _ = ctx.cancelled() => return Err(JobError::transient("cancelled")),
        }
        mark(&job.marker, "done")
    });
    r
}

/// Runs workers on the database until SIGINT/SIGTERM. Prints `ready` once they run.
pub async fn worker(data_dir: &str, database_url: &str, concurrency: usize) -> anyhow::Result<()> {
    let mut config = Config {
        data_dir: data_dir.into(),
        database_url: database_url.to_owned(),
        ..Config::default()
    };
    config.jobs.poll_interval = "200ms".into();
    config.jobs.lease = "2s".into();
    config.database.max_connections = 8;
    let mut services = zentoria::Services::open_with(config, registry(concurrency)).await?;
    let workers = services
        .start_workers()
        .ok_or_else(|| anyhow::anyhow!("workers are disabled"))?;
    println!("ready");
    std::io::stdout().flush()?;
    zentoria::shutdown_signal().await;
    workers.shutdown().await;
    services.close().await;
    Ok(())
}
