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
    let mut child = zentoria(db)
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
    let out = child.wait_with_output().unwrap();
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
    let id = listed[0]["id"].as_str().unwrap().to_owned();
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
