//! The real binary as a user runs it: subcommands on the same database as a running server.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::TestDb;

fn zentoria(db: &TestDb) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zentoria"));
    cmd.arg("--data-dir")
        .arg(db.data_dir())
        .arg("--database-url")
        .arg(&db.url)
        .env("ZENTORIA_LOG_LEVEL", "warn")
        .env_remove("ZENTORIA_CONFIG");
    cmd
}

fn run(db: &TestDb, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    run_with(db, &[], args, stdin)
}

/// `run` with extra environment variables.
fn run_with(
    db: &TestDb,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut child = zentoria(db)
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zentoria");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    // A command that hangs fails the test instead of hanging the suite.
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            return true;
        }
        false
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    assert!(
        !watchdog.join().unwrap(),
        "zentoria {args:?} did not finish within 120 s and was killed"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `zentoria serve` on port 0 and returns the child and its address.
fn serve(db: &TestDb, envs: &[(&str, &str)]) -> (Child, String) {
    let mut child = zentoria(db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ZENTORIA_LOG_FORMAT", "json")
        .env("ZENTORIA_LOG_LEVEL", "info")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zentoria serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent
                && let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "zentoria is listening"
            {
                let _ = tx.send(v["addr"].as_str().unwrap().to_owned());
                sent = true;
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("zentoria serve did not report its address");
    (child, format!("http://{addr}"))
}

fn terminate(child: &mut Child) -> i32 {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn help_lists_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_zentoria"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "migrate", "users", "keys", "audit", "jobs"] {
        assert!(text.contains(sub), "{sub} missing from --help:\n{text}");
    }
}

#[tokio::test]
async fn users_keys_and_audit_from_the_command_line_against_a_running_server() {
    let db = TestDb::new().await;
    let (code, _, err) = run(&db, &["migrate"], None);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        &db,
        &[
            "users",
            "create",
            "--username",
            "root",
            "--admin",
            "--password-stdin",
        ],
        Some("a-strong-password\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    let (code, _, err) = run(
        &db,
        &["users", "create", "--username", "root", "--password-stdin"],
        Some("another-password\n"),
    );
    assert_ne!(code, 0);
    assert!(err.contains("taken"), "{err}");

    let (code, out, err) = run(
        &db,
        &[
            "keys",
            "create",
            "--user",
            "root",
            "--name",
            "ops",
            "--scopes",
            "keys:manage,audit:read",
            "--expires-in",
            "30d",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let key = out.trim_end().to_owned();
    assert_eq!(
        out.lines().count(),
        1,
        "stdout is the key and nothing else: {out:?}"
    );
    assert!(
        regex::Regex::new(r"^znt_live_sk_[0-9A-Za-z]{43}$")
            .unwrap()
            .is_match(&key)
    );

    let (code, _, err) = run(
        &db,
        &[
            "keys", "create", "--user", "root", "--name", "x", "--scopes", "sudo",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("unknown scope"), "{err}");

    // Keys limited to some models and a monthly token budget.
    let (code, _, err) = run(
        &db,
        &[
            "keys",
            "create",
            "--user",
            "root",
            "--name",
            "metered",
            "--scopes",
            "keys:manage",
            "--models",
            "mini, openai/*",
            "--monthly-token-budget",
            "5000",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        &db,
        &[
            "keys",
            "create",
            "--user",
            "root",
            "--name",
            "bad",
            "--scopes",
            "keys:manage",
            "--models",
            "open*ai",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("pattern"), "{err}");

    // The default key cache (10 s) is in force: the server must notice the CLI's revocation.
    let (child, url) = serve(&db, &[]);
    let mut child = child;
    let http = reqwest::Client::new();
    let me: Value = http
        .get(format!("{url}/api/v1/auth/me"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "root");
    assert_eq!(
        me["scopes"],
        serde_json::json!(["keys:manage", "audit:read"])
    );

    let (code, out, _) = run(&db, &["keys", "list", "--json"], None);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let named = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .cloned()
            .unwrap()
    };
    let metered = named("metered");
    assert_eq!(metered["models"], serde_json::json!(["mini", "openai/*"]));
    assert_eq!(metered["monthly_token_budget"], 5000);
    let id = named("ops")["id"].as_str().unwrap().to_owned();
    assert!(!out.contains(&key));
    let (code, table, _) = run(&db, &["keys", "list"], None);
    assert_eq!(code, 0);
    assert!(table.contains(&id) && table.contains("active"));

    // Revoked from the CLI (another process), refused by the running server within about a
    // second of the revocation watcher, well before the key cache would expire.
    let (code, _, err) = run(&db, &["keys", "revoke", &id], None);
    assert_eq!(code, 0, "{err}");
    let revoked_at = std::time::Instant::now();
    loop {
        let r = http
            .get(format!("{url}/api/v1/auth/me"))
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "the server still accepts a key revoked by the CLI"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Graceful shutdown on SIGTERM flushes the audit log.
    assert_eq!(terminate(&mut child), 0);
    let (code, out, err) = run(&db, &["audit", "verify"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact"), "{out}");

    // Jobs and schedules are listed from the same database (none exist yet).
    let (code, out, err) = run(&db, &["jobs", "list", "--json"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!([])
    );
    let (code, out, _) = run(&db, &["jobs", "schedules"], None);
    assert_eq!(code, 0);
    assert!(out.starts_with("NAME"));
    let (code, _, err) = run(&db, &["jobs", "list", "--status", "sleeping"], None);
    assert_ne!(code, 0);
    assert!(err.contains("status must be one of"), "{err}");

    // Tampering is found, with a distinct exit code.
    let mut conn_db = zentoria_store::Db::connect(&db.url, 1).await.unwrap();
    zentoria_store::on_db!(&conn_db, pool =>
        sqlx::query("UPDATE audit_log SET action = 'nothing.happened' WHERE seq = 1").execute(pool).await.map(|_| ()))
    .unwrap();
    conn_db.close().await;
    conn_db = zentoria_store::Db::connect(&db.url, 1).await.unwrap();
    conn_db.close().await;
    let (code, out, _) = run(&db, &["audit", "verify"], None);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("TAMPERED"), "{out}");
}

#[tokio::test]
async fn first_start_generates_a_private_master_key() {
    let db = TestDb::new().await;
    let (code, _, err) = run(&db, &["migrate"], None);
    assert_eq!(code, 0, "{err}");
    let path = db.data_dir().join("master.key");
    let meta = std::fs::metadata(&path).expect("master.key exists");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // A given master key is used instead, and a malformed one stops startup clearly.
    let mut cmd = zentoria(&db);
    let out = cmd
        .arg("migrate")
        .env("ZENTORIA_MASTER_KEY", "too-short")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("master key"));
}

#[tokio::test]
async fn bad_configuration_stops_startup_with_a_clear_message() {
    let db = TestDb::new().await;
    let out = zentoria(&db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ZENTORIA_REQUEST_TIMEOUT", "eventually")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("request_timeout"));
}

#[tokio::test]
async fn an_ingestion_cut_by_a_crash_completes_after_restart() {
    let db = TestDb::new().await;
    let (code, _, err) = run(
        &db,
        &[
            "users",
            "create",
            "--username",
            "admin",
            "--admin",
            "--password-stdin",
        ],
        Some("admin-password-1\n"),
    );
    assert_eq!(code, 0, "{err}");
    let (code, key, err) = run(
        &db,
        &[
            "keys", "create", "--user", "admin", "--name", "t", "--scopes", "admin",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let key = key.trim().to_owned();
    // The first server's extractor hangs, so the crash comes mid-extraction.
    let script = db.data_dir().parent().unwrap().join("slow-extractor.sh");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 20\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let quick = [
        ("ZENTORIA_JOBS_LEASE", "1s"),
        ("ZENTORIA_JOBS_POLL_INTERVAL", "100ms"),
        ("ZENTORIA_JOBS_RETRY_BASE", "100ms"),
    ];
    let mut envs = quick.to_vec();
    let script_s = script.display().to_string();
    envs.push(("ZENTORIA_EXTRACTOR", script_s.as_str()));
    let (mut first, url) = serve(&db, &envs);
    let http = reqwest::Client::new();
    let pdf = crate::files::tiny_pdf(&["The lighthouse keeper logs every storm"]);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(pdf).file_name("log.pdf"),
    );
    let r = http
        .post(format!("{url}/api/v1/files"))
        .header("X-API-Key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let f: Value = r.json().await.unwrap();
    let id = f["file"]["id"].as_str().unwrap().to_owned();
    let status = |url: String| {
        let http = http.clone();
        let key = key.clone();
        let id = id.clone();
        async move {
            let f: Value = http
                .get(format!("{url}/api/v1/files/{id}"))
                .header("X-API-Key", &key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            f
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while status(url.clone()).await["status"] != "extracting" {
        assert!(
            std::time::Instant::now() < deadline,
            "ingestion never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();

    // A new server (with the real extractor) takes the job over once its lease runs out.
    let (mut second, url) = serve(&db, &quick);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let f = loop {
        let f = status(url.clone()).await;
        if f["status"] == "ready" || f["status"] == "failed" {
            break f;
        }
        assert!(std::time::Instant::now() < deadline, "never finished: {f}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(f["status"], "ready", "{f}");
    let v: Value = http
        .post(format!("{url}/api/v1/search"))
        .header("X-API-Key", &key)
        .json(&serde_json::json!({"query": "lighthouse storm"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["hits"][0]["file_id"], id.as_str(), "{v}");
    assert_eq!(terminate(&mut second), 0);
}

#[tokio::test]
async fn ingest_search_and_reindex_from_the_command_line() {
    let db = TestDb::new().await;
    let (code, _, err) = run(
        &db,
        &[
            "users",
            "create",
            "--username",
            "admin",
            "--admin",
            "--password-stdin",
        ],
        Some("admin-password-1\n"),
    );
    assert_eq!(code, 0, "{err}");
    let docs = db.data_dir().parent().unwrap().join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(
        docs.join("a.md"),
        "# Otters\n\nSea otters hold hands while sleeping.\n",
    )
    .unwrap();
    std::fs::write(docs.join("sub/b.txt"), "Beavers build dams from branches.").unwrap();
    std::fs::write(docs.join(".hidden.txt"), "secret otter plans").unwrap();
    std::fs::write(
        docs.join("bad.pdf"),
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
    )
    .unwrap();
    let docs_s = docs.display().to_string();

    // Local: the data dir directly, as a named user; one refusal makes the exit code 4.
    let (code, out, err) = run(
        &db,
        &[
            "ingest",
            &docs_s,
            "--user",
            "admin",
            "--collection",
            "Animals",
        ],
        None,
    );
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(out.contains("ingested 2 of 3 files"), "{out}");
    assert!(
        out.contains("bad.pdf") && out.contains("executable"),
        "{out}"
    );
    assert!(!out.contains(".hidden"), "{out}");

    let (code, out, err) = run(&db, &["search", "otters sleeping", "--user", "admin"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1. a.md (§ Otters"), "{out}");
    let (code, out, _) = run(
        &db,
        &[
            "search",
            "beaver dams",
            "--user",
            "admin",
            "--json",
            "--collection",
            "Animals",
        ],
        None,
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hits"][0]["file_name"], "b.txt");

    // The index is derived: wiped and rebuilt from the database, search still answers.
    let (code, out, err) = run(&db, &["reindex"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rebuilt from the database: 2 chunks"), "{out}");
    let (_, out, _) = run(&db, &["search", "beaver", "--user", "admin"], None);
    assert!(out.starts_with("1. b.txt"), "{out}");
    let (code, _, err) = run(&db, &["search", "x"], None);
    assert_eq!(code, 1);
    assert!(err.contains("--user"), "{err}");

    // Remote: the same through a running server's API.
    let (code, key, _) = run(
        &db,
        &[
            "keys",
            "create",
            "--user",
            "admin",
            "--name",
            "cli",
            "--scopes",
            "files:read,files:write",
        ],
        None,
    );
    assert_eq!(code, 0);
    let (mut server, url) = serve(&db, &[]);
    let extra = db.data_dir().parent().unwrap().join("c.txt");
    std::fs::write(&extra, "Walruses use their tusks to climb onto ice.").unwrap();
    let extra_s = extra.display().to_string();
    let (code, out, err) = run(
        &db,
        &["ingest", &extra_s, "--url", &url, "--api-key", key.trim()],
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("ingested 1 of 1 files"), "{out}");
    let (code, out, err) = run(
        &db,
        &[
            "search",
            "walrus tusks",
            "--url",
            &url,
            "--api-key",
            key.trim(),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1. c.txt"), "{out}");
    assert_eq!(terminate(&mut server), 0);
}

#[tokio::test]
async fn an_index_behind_the_pruned_change_log_is_rebuilt() {
    let db = TestDb::new().await;
    let (code, _, err) = run(
        &db,
        &[
            "users",
            "create",
            "--username",
            "admin",
            "--admin",
            "--password-stdin",
        ],
        Some("admin-password-1\n"),
    );
    assert_eq!(code, 0, "{err}");
    let doc = db.data_dir().parent().unwrap().join("moths.txt");
    std::fs::write(&doc, "Moths navigate by the moon.").unwrap();
    let doc_s = doc.display().to_string();
    let (code, out, err) = run(&db, &["ingest", &doc_s, "--user", "admin"], None);
    assert_eq!(code, 0, "{out}{err}");
    // Prune the whole log, then lose the index: a new one must not tail from the start.
    let store = zentoria_store::Db::connect(&db.url, 2).await.unwrap();
    let last = zentoria_store::repo::knowledge::last_change(&store)
        .await
        .unwrap();
    let pruned = zentoria_store::repo::knowledge::prune_changes(&store, last, i64::MAX)
        .await
        .unwrap();
    assert_eq!(pruned, last);
    assert!(
        zentoria_store::repo::knowledge::changes_since(&store, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
    std::fs::remove_dir_all(db.data_dir().join("index")).unwrap();
    let (code, out, err) = run(&db, &["search", "moon moths", "--user", "admin"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1. moths.txt"), "{out}");
}

/// The CLI on a data dir with an embedder: ingestion embeds, semantic search loads the vector
/// index from the stored vectors, and `reindex` rebuilds it without embedding anything again.
/// (Multi-threaded runtime: the fake embedder answers while the test waits on the CLI.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_search_and_reindex_from_the_command_line() {
    let up = crate::upstream::FakeUpstream::start().await;
    let db = TestDb::new().await;
    let (code, _, err) = run(
        &db,
        &[
            "users",
            "create",
            "--username",
            "admin",
            "--admin",
            "--password-stdin",
        ],
        Some("admin-password-1\n"),
    );
    assert_eq!(code, 0, "{err}");
    let docs = db.data_dir().parent().unwrap().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("otters.md"),
        "# Otters\n\nSea otters hold hands while sleeping.\n",
    )
    .unwrap();
    std::fs::write(docs.join("dams.txt"), "Beavers build dams from branches.").unwrap();
    let docs_s = docs.display().to_string();
    let env = [
        ("ZENTORIA_EMBEDDER", "openai"),
        ("ZENTORIA_EMBEDDER_URL", up.url.as_str()),
    ];
    let (code, out, err) = run_with(&db, &env, &["ingest", &docs_s, "--user", "admin"], None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("ingested 2 of 2 files"), "{out}");
    let embedded = up.texts();
    assert_eq!(embedded, 2, "one chunk per file");

    let search = |mode: &str, query: &str| {
        let (code, out, err) = run_with(
            &db,
            &env,
            &["search", query, "--user", "admin", "--mode", mode, "--json"],
            None,
        );
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let v = search("semantic", "otters sleeping hands");
    assert_eq!(v["mode"], "semantic");
    assert_eq!(v["hits"][0]["file_name"], "otters.md", "{v}");
    let v = search("hybrid", "beavers branches");
    assert_eq!(v["hits"][0]["file_name"], "dams.txt", "{v}");

    let (code, out, err) = run_with(&db, &env, &["reindex"], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("vector index rebuilt from the stored vectors: 2 vectors"),
        "{out}"
    );
    let v = search("semantic", "otters sleeping hands");
    assert_eq!(v["hits"][0]["file_name"], "otters.md", "{v}");
    assert_eq!(
        up.texts(),
        embedded + 3,
        "only the three queries were embedded"
    );

    // Without the embedder the CLI says how to enable semantic search.
    let (code, _, err) = run(
        &db,
        &["search", "otters", "--user", "admin", "--mode", "semantic"],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("knowledge.embedder"), "{err}");
}
