//! A real worker process killed with SIGKILL mid-job: a restarted one completes the job, and
//! it completes exactly once.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zentoria_core::Scope;
use zentoria_jobs::{EnqueueOptions, JobKind};

use crate::harness::TestDb;

/// The payload of `zentoria-bench`'s `bench.sleep` job.
#[derive(Serialize, Deserialize)]
struct Sleep {
    ms: u64,
    marker: String,
}

impl JobKind for Sleep {
    const KIND: &'static str = "bench.sleep";
    const SCOPE: Scope = Scope::Admin;
}

/// `zentoria-bench`, built beside this test binary by `cargo test --workspace`.
fn bench_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("zentoria-bench");
    assert!(
        bin.exists(),
        "{} is missing: run the suite with `cargo test --workspace` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

fn start_worker(db: &TestDb) -> Child {
    let mut child = Command::new(bench_bin())
        .arg("worker")
        .arg(db.data_dir())
        .arg(&db.url)
        .arg("4")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn zentoria-bench worker");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the worker did not start");
    child
}

fn marker_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_job_killed_with_its_worker_is_completed_once_after_restart() {
    let db = TestDb::new().await;
    let marker = db.data_dir().parent().unwrap().join("marker.txt");
    let mut config = zentoria_core::config::Config {
        data_dir: db.data_dir(),
        database_url: db.url.clone(),
        ..Default::default()
    };
    config.jobs.workers = false;
    let services = zentoria::Services::open(config).await.unwrap();

    let mut first = start_worker(&db);
    let job = services
        .jobs
        .queue()
        .enqueue(
            &Sleep {
                ms: 1500,
                marker: marker.display().to_string(),
            },
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    // Wait until the first worker is inside the job, then kill it outright.
    for _ in 0..400 {
        if marker_lines(&marker).contains(&"start 1".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(marker_lines(&marker), ["start 1"]);
    first.kill().unwrap(); // SIGKILL: no shutdown, no cleanup, the lease is left behind
    first.wait().unwrap();
    let orphan = services.jobs.get(None, &job.id).await.unwrap();
    assert_eq!(
        orphan.status, "running",
        "the killed worker's claim is still recorded"
    );

    let mut second = start_worker(&db);
    let mut done = None;
    for _ in 0..800 {
        let j = services.jobs.get(None, &job.id).await.unwrap();
        if j.status == "succeeded" {
            done = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let done = done.expect("the restarted worker never finished the job");
    assert_eq!(done.attempts, 2);
    assert_eq!(marker_lines(&marker), ["start 1", "start 2", "done"]);

    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(second.wait().unwrap().success(), "graceful stop on SIGTERM");
    services.close().await;
}

/// The payload of `zentoria-bench`'s `bench.noop` job.
#[derive(Serialize, Deserialize)]
struct Noop {
    n: u64,
}

impl JobKind for Noop {
    const KIND: &'static str = "bench.noop";
    const SCOPE: Scope = Scope::Admin;
}

#[tokio::test]
async fn a_schedule_fires_once_per_occurrence_across_two_worker_processes() {
    let db = TestDb::new().await;
    let mut config = zentoria_core::config::Config {
        data_dir: db.data_dir(),
        database_url: db.url.clone(),
        ..Default::default()
    };
    config.jobs.workers = false;
    let services = zentoria::Services::open(config).await.unwrap();
    let mut a = start_worker(&db);
    let mut b = start_worker(&db);
    let spec = zentoria_jobs::ScheduleSpec {
        name: "every-second".into(),
        cron: "* * * * * *".into(),
        timezone: "UTC".into(),
        missed: zentoria_jobs::Missed::Skip,
        owner_id: None,
    };
    let first = services
        .jobs
        .schedule(spec, &Noop { n: 0 })
        .await
        .unwrap()
        .next_run_at;
    let count = || async {
        zentoria_store::on_db!(&services.db, pool =>
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE kind = 'bench.noop' AND status = 'succeeded'")
                .fetch_one(pool)
                .await)
        .unwrap()
    };
    for _ in 0..400 {
        if count().await >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for w in [&mut a, &mut b] {
        Command::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status()
            .unwrap();
        assert!(w.wait().unwrap().success());
    }
    assert!(services.jobs.unschedule("every-second").await.unwrap());
    let (jobs, distinct, earliest, latest): (i64, i64, i64, i64) = zentoria_store::on_db!(&services.db, pool =>
        sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT run_at), MIN(run_at), MAX(run_at) FROM jobs WHERE kind = 'bench.noop'",
        )
        .fetch_one(pool)
        .await)
    .unwrap();
    assert!(jobs >= 4, "only {jobs} occurrences fired");
    assert_eq!(
        jobs, distinct,
        "an occurrence was enqueued by both processes"
    );
    assert_eq!(earliest, first);
    assert_eq!(
        (latest - earliest) / 1000 + 1,
        jobs,
        "an occurrence was skipped"
    );
    services.close().await;
}
