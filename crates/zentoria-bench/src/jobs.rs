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

/// Throughput and latency of the queue with no-op jobs, in one process:
/// 1. `n` jobs enqueued up front (1000 per transaction), then drained by the workers: jobs/s;
/// 2. jobs enqueued one by one at `rate` per second for `secs` seconds while workers run:
///    enqueue→start latency (p50, p99) from the jobs' own `created_at` and `started_at`.
pub async fn throughput(
    database_url: &str,
    n: u64,
    concurrency: usize,
    rate: u64,
    secs: u64,
) -> anyhow::Result<()> {
    use std::time::Instant;
    use zentoria_jobs::EnqueueOptions;

    let dir = tempfile::tempdir()?;
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: database_url.to_owned(),
        ..Config::default()
    };
    config.jobs.poll_interval = "100ms".into();
    config.database.max_connections = 16;
    config.log.level = "warn".into();
    let mut services = zentoria::Services::open_with(config, registry(concurrency)).await?;
    let queue = services.jobs.queue().clone();
    let db = services.db.clone();

    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut tx = db.begin().await?;
        for _ in 0..1000.min(n - i) {
            queue
                .enqueue_in(&mut tx, &Noop { n: i }, EnqueueOptions::default())
                .await?;
            i += 1;
        }
        tx.commit().await?;
    }
    let enqueue_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let workers = services.start_workers().expect("workers");
    wait_for(&db, "succeeded", n as i64).await?;
    let drain_s = t.elapsed().as_secs_f64();
    zentoria_store::on_db!(&db, pool => sqlx::query("DELETE FROM jobs").execute(pool).await.map(|_| ()))?;

    // Steady load: one job per enqueue call, paced.
    let total = rate * secs;
    let t = Instant::now();
    for k in 0..total {
        let due = Duration::from_secs_f64(k as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(t.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        queue
            .enqueue(&Noop { n: k }, EnqueueOptions::default())
            .await?;
    }
    let offered = total as f64 / t.elapsed().as_secs_f64();
    wait_for(&db, "succeeded", total as i64).await?;
    let mut lat: Vec<i64> = zentoria_store::on_db!(&db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT started_at - created_at FROM jobs WHERE status = 'succeeded'"
    ).fetch_all(pool).await)?;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{}",
        serde_json::json!({
            "backend": if database_url.starts_with("postgres") { "postgres" } else { "sqlite" },
            "jobs": n,
            "concurrency": concurrency,
            "enqueue_per_s": (n as f64 / enqueue_s).round(),
            "drain_jobs_per_s": (n as f64 / drain_s).round(),
            "steady_offered_per_s": offered.round(),
            "latency_p50_ms": pct(0.50),
            "latency_p99_ms": pct(0.99),
        })
    );
    workers.shutdown().await;
    services.close().await;
    Ok(())
}

async fn wait_for(db: &zentoria_store::Db, status: &str, n: i64) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let done: i64 = zentoria_store::on_db!(db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM jobs WHERE status = $1"
        ).bind(status).fetch_one(pool).await)?;
        if done >= n {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "jobs did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
