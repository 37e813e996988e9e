//! The job queue through the real server: job kinds registered as a module would, workers
//! running in the server, the API and the database on both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zentoria_core::{Role, Scope};
use zentoria_jobs::{EnqueueOptions, JobError, JobKind, Registry};

use crate::harness::{TestServer, assert_error};

#[derive(Serialize, Deserialize)]
struct Echo {
    text: String,
}
impl JobKind for Echo {
    const KIND: &'static str = "test.echo";
    const SCOPE: Scope = Scope::Chat;
}

/// Fails transiently until its attempt number exceeds `fail_times`.
#[derive(Serialize, Deserialize)]
struct Flaky {
    fail_times: u32,
}
impl JobKind for Flaky {
    const KIND: &'static str = "test.flaky";
    const SCOPE: Scope = Scope::Chat;
    const MAX_ATTEMPTS: u32 = 3;
}

#[derive(Serialize, Deserialize)]
struct Broken;
impl JobKind for Broken {
    const KIND: &'static str = "test.broken";
    const SCOPE: Scope = Scope::Chat;
}

/// Runs until cancelled, reporting progress.
#[derive(Serialize, Deserialize)]
struct UntilCancelled;
impl JobKind for UntilCancelled {
    const KIND: &'static str = "test.until_cancelled";
    const SCOPE: Scope = Scope::Chat;
}

#[derive(Serialize, Deserialize)]
struct Unique {
    key: String,
}
impl JobKind for Unique {
    const KIND: &'static str = "test.unique";
    const SCOPE: Scope = Scope::Deploy;
    fn dedupe_key(&self) -> Option<String> {
        Some(self.key.clone())
    }
}

#[derive(Serialize, Deserialize)]
struct Panics;
impl JobKind for Panics {
    const KIND: &'static str = "test.panics";
    const SCOPE: Scope = Scope::Chat;
    const MAX_ATTEMPTS: u32 = 2;
}

/// Counts handler runs and the most that ran at once.
#[derive(Default)]
struct Counters {
    runs: AtomicU32,
    running: AtomicU32,
    max_running: AtomicU32,
}

fn registry(c: Arc<Counters>) -> Registry {
    let mut r = Registry::new();
    let c1 = c.clone();
    r.register::<Echo, _, _>(1, move |job, ctx| {
        let c = c1.clone();
        async move {
            c.runs.fetch_add(1, Ordering::SeqCst);
            let now = c.running.fetch_add(1, Ordering::SeqCst) + 1;
            c.max_running.fetch_max(now, Ordering::SeqCst);
            ctx.progress(50, Some(&format!("echoing {}", job.text)))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    });
    r.register::<Flaky, _, _>(2, |job, ctx| async move {
        if ctx.attempt <= job.fail_times {
            Err(JobError::transient(format!(
                "flaked on attempt {}",
                ctx.attempt
            )))
        } else {
            Ok(())
        }
    });
    r.register::<Broken, _, _>(2, |_, _| async {
        Err(JobError::permanent("this cannot work"))
    });
    r.register::<UntilCancelled, _, _>(2, |_, ctx| async move {
        ctx.progress(10, Some("waiting to be cancelled"))
            .await
            .unwrap();
        ctx.cancelled().await;
        Err(JobError::transient("stopped"))
    });
    r.register::<Unique, _, _>(2, |_, _| async { Ok(()) });
    r.register::<Panics, _, _>(1, |_, _| async { panic!("handler bug") });
    r
}

async fn server() -> (TestServer, Arc<Counters>) {
    let c = Arc::new(Counters::default());
    let s = TestServer::start_with_jobs(|_| {}, registry(c.clone())).await;
    (s, c)
}

fn owned_by(user: &zentoria_platform::User) -> EnqueueOptions {
    EnqueueOptions {
        owner_id: Some(user.id.clone()),
        run_at: None,
    }
}

fn later() -> EnqueueOptions {
    EnqueueOptions {
        owner_id: None,
        run_at: Some(zentoria_core::time::now_ms() + 3_600_000),
    }
}

fn status_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |j| j["status"] == s
}

#[tokio::test]
async fn a_job_runs_once_and_its_owner_sees_it() {
    let (s, c) = server().await;
    let alice = s.user("alice", Role::User).await;
    let bob = s.user("bob", Role::User).await;
    let q = s.jobs.queue();
    let job = q
        .enqueue(&Echo { text: "hi".into() }, owned_by(&alice))
        .await
        .unwrap();
    assert!(job.created);
    let done = s.wait_job(&job.id, status_is("succeeded")).await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["progress"], 100);
    assert_eq!(done["payload"], json!({"text": "hi"}));
    assert_eq!(done["owner_id"], alice.id.as_str());
    assert_eq!(c.runs.load(Ordering::SeqCst), 1);

    let alice_key = s.key_for(&alice, "chat").await;
    let bob_key = s.key_for(&bob, "chat").await;
    let mine: Value = s
        .get("/api/v1/jobs", Some(&alice_key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let r = s
        .get(&format!("/api/v1/jobs/{}", job.id), Some(&bob_key))
        .await;
    assert_error(r, 404, "not_found").await;
    let theirs: Value = s
        .get("/api/v1/jobs", Some(&bob_key))
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs.as_array().unwrap().is_empty());
    // Without the kind's scope, not even the owner sees it.
    let files_key = s.key_for(&alice, "files:read").await;
    let none: Value = s
        .get("/api/v1/jobs", Some(&files_key))
        .await
        .json()
        .await
        .unwrap();
    assert!(none.as_array().unwrap().is_empty());

    let filtered: Value = s
        .get(
            "/api/v1/jobs?kind=test.echo&status=succeeded",
            Some(&s.admin_key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let r = s
        .get("/api/v1/jobs?status=finished", Some(&s.admin_key))
        .await;
    assert_error(r, 400, "invalid_request").await;
    let r = s.get("/api/v1/jobs/nope", Some(&s.admin_key)).await;
    assert_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn transient_failures_are_retried_until_they_succeed() {
    let (s, _) = server().await;
    let job = s
        .jobs
        .queue()
        .enqueue(&Flaky { fail_times: 2 }, EnqueueOptions::default())
        .await
        .unwrap();
    let done = s.wait_job(&job.id, status_is("succeeded")).await;
    assert_eq!(done["attempts"], 3);
}

#[tokio::test]
async fn exhausted_jobs_are_dead_and_can_be_retried() {
    let (s, _) = server().await;
    let job = s
        .jobs
        .queue()
        .enqueue(&Flaky { fail_times: 10 }, EnqueueOptions::default())
        .await
        .unwrap();
    let dead = s.wait_job(&job.id, status_is("dead")).await;
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["last_error"], "flaked on attempt 3");
    assert!(dead["finished_at"].is_string());

    let r = s
        .post(
            &format!("/api/v1/jobs/{}/retry", job.id),
            Some(&s.admin_key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let again = s
        .wait_job(&job.id, |j| j["status"] == "dead" && j["attempts"] == 3)
        .await;
    assert_eq!(again["last_error"], "flaked on attempt 3");
    // A job that is not finished-unsuccessfully cannot be retried.
    let ok = s
        .jobs
        .queue()
        .enqueue(&Echo { text: "x".into() }, EnqueueOptions::default())
        .await
        .unwrap();
    s.wait_job(&ok.id, status_is("succeeded")).await;
    let r = s
        .post(
            &format!("/api/v1/jobs/{}/retry", ok.id),
            Some(&s.admin_key),
            &json!({}),
        )
        .await;
    assert_error(r, 409, "conflict").await;
}

#[tokio::test]
async fn permanent_errors_fail_at_once_and_panics_count_as_failures() {
    let (s, _) = server().await;
    let q = s.jobs.queue();
    let broken = q.enqueue(&Broken, EnqueueOptions::default()).await.unwrap();
    let failed = s.wait_job(&broken.id, status_is("failed")).await;
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["last_error"], "this cannot work");

    let panics = q.enqueue(&Panics, EnqueueOptions::default()).await.unwrap();
    let dead = s.wait_job(&panics.id, status_is("dead")).await;
    assert_eq!(dead["attempts"], 2);
    assert!(dead["last_error"].as_str().unwrap().contains("panicked"));
    // The workers are still alive.
    let ok = q
        .enqueue(
            &Echo {
                text: "after".into(),
            },
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    s.wait_job(&ok.id, status_is("succeeded")).await;
}

#[tokio::test]
async fn queued_and_running_jobs_can_be_cancelled() {
    let (s, c) = server().await;
    let q = s.jobs.queue();
    let waiting = q
        .enqueue(
            &Echo {
                text: "never".into(),
            },
            later(),
        )
        .await
        .unwrap();
    let r = s
        .post(
            &format!("/api/v1/jobs/{}/cancel", waiting.id),
            Some(&s.admin_key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["status"], "cancelled");

    let running = q
        .enqueue(&UntilCancelled, EnqueueOptions::default())
        .await
        .unwrap();
    let j = s
        .wait_job(&running.id, |j| {
            j["status"] == "running" && j["progress"] == 10
        })
        .await;
    assert_eq!(j["progress_message"], "waiting to be cancelled");
    let r = s
        .post(
            &format!("/api/v1/jobs/{}/cancel", running.id),
            Some(&s.admin_key),
            &json!({}),
        )
        .await;
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["cancel_requested"], true);
    let done = s.wait_job(&running.id, status_is("cancelled")).await;
    assert_eq!(done["attempts"], 1);
    // Finished jobs cannot be cancelled.
    let r = s
        .post(
            &format!("/api/v1/jobs/{}/cancel", running.id),
            Some(&s.admin_key),
            &json!({}),
        )
        .await;
    assert_error(r, 409, "conflict").await;
    assert_eq!(
        c.runs.load(Ordering::SeqCst),
        0,
        "the cancelled echo never ran"
    );
}

#[tokio::test]
async fn duplicates_collapse_while_live_and_enqueue_joins_the_transaction() {
    let (s, _) = server().await;
    let q = s.jobs.queue();
    let a = q
        .enqueue(&Unique { key: "k1".into() }, later())
        .await
        .unwrap();
    let b = q
        .enqueue(&Unique { key: "k1".into() }, later())
        .await
        .unwrap();
    assert!(a.created);
    assert_eq!(
        b,
        zentoria_jobs::Enqueued {
            id: a.id.clone(),
            created: false
        }
    );
    let c = q
        .enqueue(&Unique { key: "k2".into() }, later())
        .await
        .unwrap();
    assert_ne!(c.id, a.id);

    // Rolled back with the write it belonged to: the job never existed.
    let mut tx = s.db.begin().await.unwrap();
    let gone = q
        .enqueue_in(
            &mut tx,
            &Echo {
                text: "rolled back".into(),
            },
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(s.jobs.get(None, &gone.id).await.is_err());
    // Committed: it runs.
    let mut tx = s.db.begin().await.unwrap();
    let kept = q
        .enqueue_in(
            &mut tx,
            &Echo {
                text: "committed".into(),
            },
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    q.commit(tx).await.unwrap();
    s.wait_job(&kept.id, status_is("succeeded")).await;
}

#[tokio::test]
async fn a_kind_never_runs_more_at_once_than_its_concurrency() {
    let (s, c) = server().await;
    let q = s.jobs.queue();
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            q.enqueue(
                &Echo {
                    text: i.to_string(),
                },
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .id,
        );
    }
    for id in &ids {
        s.wait_job(id, status_is("succeeded")).await;
    }
    assert_eq!(
        c.runs.load(Ordering::SeqCst),
        8,
        "each job ran exactly once"
    );
    assert_eq!(c.max_running.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_taken_over_and_completed_once() {
    let (s, c) = server().await;
    let job = s
        .jobs
        .queue()
        .enqueue(
            &Echo {
                text: "orphan".into(),
            },
            later(),
        )
        .await
        .unwrap();
    // Another worker claimed it and died: its lease is already over. (Claiming "as of" two
    // hours ahead takes the future job before our own workers could.)
    let now = zentoria_core::time::now_ms();
    let claimed = zentoria_store::repo::jobs::claim(
        &s.db,
        "test.echo",
        1,
        now + 7_200_000,
        now - 1,
        "dead-worker",
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 1);
    let j = s.wait_job(&job.id, status_is("succeeded")).await;
    assert_eq!(j["attempts"], 2, "the dead worker's attempt counts");
    assert_eq!(
        c.runs.load(Ordering::SeqCst),
        1,
        "run exactly once by the live worker"
    );
    // The dead worker's late report is refused: its lease is gone.
    let late = zentoria_store::repo::jobs::finish(
        &s.db,
        &job.id,
        "dead-worker",
        zentoria_store::repo::jobs::Finish::Succeeded,
        zentoria_core::time::now_ms(),
    )
    .await
    .unwrap();
    assert!(!late);
}

#[tokio::test]
async fn finished_jobs_are_pruned_after_retention() {
    let (s, _) = server().await;
    let q = s.jobs.queue();
    let old = q
        .enqueue(&Echo { text: "old".into() }, EnqueueOptions::default())
        .await
        .unwrap();
    s.wait_job(&old.id, status_is("succeeded")).await;
    let live = q
        .enqueue(
            &Echo {
                text: "live".into(),
            },
            later(),
        )
        .await
        .unwrap();
    let n = zentoria_store::repo::jobs::prune(&s.db, zentoria_core::time::now_ms() + 1)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(s.jobs.get(None, &old.id).await.is_err());
    assert!(
        s.jobs.get(None, &live.id).await.is_ok(),
        "queued jobs are never pruned"
    );
}

#[derive(Serialize, Deserialize)]
struct Tick;
impl JobKind for Tick {
    const KIND: &'static str = "test.tick";
    const SCOPE: Scope = Scope::Admin;
}

fn tick_registry(c: Arc<Counters>) -> Registry {
    let mut r = Registry::new();
    r.register::<Tick, _, _>(4, move |_, _| {
        let c = c.clone();
        async move {
            c.runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    r
}

async fn count_jobs(s: &TestServer, kind: &str) -> i64 {
    zentoria_store::on_db!(&s.db, pool =>
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE kind = $1").bind(kind).fetch_one(pool).await)
    .unwrap()
}

#[tokio::test]
async fn each_occurrence_is_enqueued_once_by_two_processes_sharing_the_database() {
    let c = Arc::new(Counters::default());
    let s = TestServer::start_with_jobs(|_| {}, tick_registry(c.clone())).await;
    // A second Zentoria on the same database, with its own scheduler and workers.
    let mut config = zentoria_core::config::Config {
        data_dir: s.test_db.data_dir(),
        database_url: s.test_db.url.clone(),
        ..Default::default()
    };
    config.jobs.poll_interval = "50ms".into();
    let mut other = zentoria::Services::open_with(config, tick_registry(c.clone()))
        .await
        .unwrap();
    let other_workers = other.start_workers().unwrap();

    let spec = zentoria_jobs::ScheduleSpec {
        name: "test.every-second".into(),
        cron: "* * * * * *".into(),
        timezone: "UTC".into(),
        missed: zentoria_jobs::Missed::Skip,
        owner_id: None,
    };
    let first = s.jobs.schedule(spec, &Tick).await.unwrap().next_run_at;
    for _ in 0..400 {
        if count_jobs(&s, "test.tick").await >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    other_workers.shutdown().await;
    other.close().await;
    assert!(s.jobs.unschedule("test.every-second").await.unwrap());
    // A scheduled job's run_at is the occurrence it stands for: no occurrence twice, none
    // skipped between the first and the last.
    let (jobs, distinct, earliest, latest): (i64, i64, i64, i64) = zentoria_store::on_db!(&s.db, pool =>
        sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT run_at), MIN(run_at), MAX(run_at) FROM jobs WHERE kind = 'test.tick'",
        )
        .fetch_one(pool)
        .await)
    .unwrap();
    assert!(jobs >= 3);
    assert_eq!(jobs, distinct, "an occurrence was enqueued twice");
    assert_eq!(earliest, first);
    assert_eq!(
        (latest - earliest) / 1000 + 1,
        jobs,
        "an occurrence was skipped"
    );
    // Each ran once, on one server or the other.
    for _ in 0..400 {
        if c.runs.load(Ordering::SeqCst) as i64 >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(c.runs.load(Ordering::SeqCst) as i64, jobs);
}

#[tokio::test]
async fn missed_occurrences_follow_the_schedules_policy() {
    let c = Arc::new(Counters::default());
    let s = TestServer::start_with_jobs(|c| c.jobs.workers = false, tick_registry(c.clone())).await;
    for (name, missed) in [
        ("skipper", zentoria_jobs::Missed::Skip),
        ("catcher", zentoria_jobs::Missed::RunOnce),
    ] {
        let spec = zentoria_jobs::ScheduleSpec {
            name: name.into(),
            cron: "0 0 1 1 *".into(),
            timezone: "UTC".into(),
            missed,
            owner_id: None,
        };
        s.jobs.schedule(spec, &Tick).await.unwrap();
    }
    // The server was down over several occurrences: the due time is long past.
    let long_ago = zentoria_core::time::now_ms() - 3 * 365 * 86_400_000;
    zentoria_store::on_db!(&s.db, pool =>
        sqlx::query("UPDATE schedules SET next_run_at = $1").bind(long_ago).execute(pool).await.map(|_| ()))
    .unwrap();
    // Start a scheduler (workers included) on the same database.
    let mut config = zentoria_core::config::Config {
        data_dir: s.test_db.data_dir(),
        database_url: s.test_db.url.clone(),
        ..Default::default()
    };
    config.jobs.poll_interval = "50ms".into();
    let mut other = zentoria::Services::open_with(config, tick_registry(c.clone()))
        .await
        .unwrap();
    let workers = other.start_workers().unwrap();
    for _ in 0..400 {
        let views = s.jobs.schedules().await.unwrap();
        if views
            .iter()
            .all(|v| v.next_run_at > zentoria_core::time::now_ms())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    workers.shutdown().await;
    other.close().await;
    let views = s.jobs.schedules().await.unwrap();
    assert!(
        views
            .iter()
            .all(|v| v.next_run_at > zentoria_core::time::now_ms()),
        "{views:?}"
    );
    let catcher = views.iter().find(|v| v.name == "catcher").unwrap();
    let skipper = views.iter().find(|v| v.name == "skipper").unwrap();
    assert!(catcher.last_run_at.is_some());
    assert!(skipper.last_run_at.is_none());
    assert_eq!(
        count_jobs(&s, "test.tick").await,
        1,
        "one run for all missed occurrences"
    );
}
