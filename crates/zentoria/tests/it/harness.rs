//! Starts the real server on port 0 over a fresh database: SQLite in a temp dir by default,
//! or a new PostgreSQL database (created here, dropped afterwards) when
//! `ZENTORIA_TEST_DATABASE_URL` names a PostgreSQL server.

use std::path::PathBuf;

use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::oneshot;
use zentoria::Services;
use zentoria_core::Role;
use zentoria_core::config::Config;
use zentoria_platform::{Actor, ClientInfo, NewKeyRequest};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A database for one test.
pub struct TestDb {
    pub url: String,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match std::env::var("ZENTORIA_TEST_DATABASE_URL") {
            Ok(base) if base.starts_with("postgres") => {
                let name = format!("zt_test_{}", uuid_simple());
                let mut conn = sqlx::PgConnection::connect(&base)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("ZENTORIA_TEST_DATABASE_URL={base} does not answer: {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let url = with_database(&base, &name);
                TestDb {
                    url,
                    dir,
                    pg: Some((base, name)),
                }
            }
            Ok(other) if !other.is_empty() => {
                panic!("ZENTORIA_TEST_DATABASE_URL must be a postgres:// URL, not {other:?}")
            }
            _ => TestDb {
                url: format!("sqlite://{}", dir.path().join("zentoria.db").display()),
                dir,
                pg: None,
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg.take() {
            // Drop runs outside any runtime we can block on, so use a thread with its own.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

fn uuid_simple() -> String {
    zentoria_core::id::new_id().replace('-', "")
}

/// Replaces the database name in a PostgreSQL URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The configuration every test server starts from (quick job timings, the test binary as
/// the extractor).
fn test_config(test_db: &TestDb) -> Config {
    let mut config = Config {
        data_dir: test_db.data_dir(),
        database_url: test_db.url.clone(),
        ..Config::default()
    };
    config.log.level = "warn".into();
    config.http.rate_limit_per_minute = 100_000;
    config.http.rate_limit_burst = 10_000;
    config.jobs.poll_interval = "50ms".into();
    config.jobs.lease = "1s".into();
    config.jobs.retry_base = "10ms".into();
    config.jobs.shutdown_grace = "2s".into();
    config.knowledge.extractor = env!("CARGO_BIN_EXE_zentoria").into();
    config
}

/// A server serving on a fresh port.
struct Running {
    url: String,
    db: zentoria_store::Db,
    platform: zentoria_platform::Platform,
    jobs: zentoria_jobs::Jobs,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn launch(services: Services) -> Running {
        let jobs = services.jobs.clone();
        let platform = services.platform.clone();
        let db = services.db.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(zentoria::serve(services, listener, async move {
            let _ = rx.await;
        }));
        Running {
            url,
            db,
            platform,
            jobs,
            shutdown: tx,
            task,
        }
    }
}

/// A running server with an admin user and an admin key.
pub struct TestServer {
    pub url: String,
    pub http: reqwest::Client,
    pub admin_key: String,
    pub db: zentoria_store::Db,
    pub platform: zentoria_platform::Platform,
    pub jobs: zentoria_jobs::Jobs,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Dropped last: the database outlives the server.
    pub test_db: TestDb,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_with_jobs(tweak, zentoria::builtin_jobs()).await
    }

    /// A server running the given job kinds, with quick job timings for tests.
    pub async fn start_with_jobs(
        tweak: impl FnOnce(&mut Config),
        registry: zentoria_jobs::Registry,
    ) -> TestServer {
        let test_db = TestDb::new().await;
        let mut config = test_config(&test_db);
        tweak(&mut config);
        let services = Services::open_with(config, registry)
            .await
            .expect("services open");
        let platform = services.platform.clone();
        let admin = platform
            .create_user(
                ADMIN,
                ADMIN_PASSWORD.into(),
                Role::Admin,
                Some(Actor::cli()),
                &ClientInfo::cli(),
            )
            .await
            .expect("admin user");
        let admin_key = platform
            .create_key(
                &admin,
                Role::Admin.scopes(),
                NewKeyRequest {
                    name: "test admin".into(),
                    scopes: Role::Admin.scopes(),
                    expires_in: None,
                    limits: Default::default(),
                },
                None,
                &ClientInfo::cli(),
            )
            .await
            .expect("admin key")
            .key;
        let running = Running::launch(services).await;
        TestServer {
            url: running.url,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            admin_key,
            db: running.db,
            platform: running.platform,
            jobs: running.jobs,
            shutdown: Some(running.shutdown),
            task: Some(running.task),
            test_db,
        }
    }

    /// Stops the server gracefully and starts a new one on the same database and data dir,
    /// with the test configuration changed by `tweak` (the admin key stays valid).
    pub async fn restart_with(&mut self, tweak: impl FnOnce(&mut Config)) {
        self.stop_running().await;
        let mut config = test_config(&self.test_db);
        tweak(&mut config);
        let services = Services::open_with(config, zentoria::builtin_jobs())
            .await
            .expect("services open");
        let running = Running::launch(services).await;
        self.url = running.url;
        self.db = running.db;
        self.platform = running.platform;
        self.jobs = running.jobs;
        self.shutdown = Some(running.shutdown);
        self.task = Some(running.task);
    }

    /// Stops the server gracefully, keeping its database and data dir for `restart_with`.
    pub async fn stop_running(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Stops the server gracefully and waits for it (audit flushed, database closed).
    pub async fn stop(mut self) {
        self.stop_running().await;
    }

    /// Creates a user with the given role (password `password-<name>`).
    pub async fn user(&self, name: &str, role: Role) -> zentoria_platform::User {
        self.platform
            .create_user(
                name,
                format!("password-{name}"),
                role,
                None,
                &ClientInfo::cli(),
            )
            .await
            .expect("create user")
    }

    /// A key for `user` with exactly `scopes`, created through the domain (not the API).
    pub async fn key_for(&self, user: &zentoria_platform::User, scopes: &str) -> String {
        self.platform
            .create_key(
                user,
                user.role.scopes(),
                NewKeyRequest {
                    name: format!("{scopes} key"),
                    scopes: zentoria_core::Scopes::parse_list(scopes).unwrap(),
                    expires_in: None,
                    limits: Default::default(),
                },
                None,
                &ClientInfo::cli(),
            )
            .await
            .expect("create key")
            .key
    }

    /// `GET path`, with `key` in `X-API-Key` when given.
    pub async fn get(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.at(path));
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        req.send().await.unwrap()
    }

    /// `GET path` with `key`, as JSON (whatever the status: assert on the body).
    pub async fn get_json(&self, path: &str, key: &str) -> Value {
        self.get(path, Some(key)).await.json().await.unwrap()
    }

    /// `POST path` with a JSON body, with `key` in `X-API-Key` when given.
    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self.http.post(self.at(path)).json(body);
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        req.send().await.unwrap()
    }

    /// Uploads `bytes` as `name` to `path` (multipart field `file`, plus `fields`).
    pub async fn upload_to(
        &self,
        path: &str,
        key: &str,
        name: &str,
        content_type: Option<&str>,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        if let Some(ct) = content_type {
            part = part.mime_str(ct).unwrap();
        }
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        form = form.part("file", part);
        self.http
            .post(self.at(path))
            .header("X-API-Key", key)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Uploads to `/api/v1/files` and returns the file's JSON, asserting 201.
    pub async fn upload(
        &self,
        key: &str,
        name: &str,
        bytes: &[u8],
        fields: &[(&str, &str)],
    ) -> Value {
        let r = self
            .upload_to("/api/v1/files", key, name, None, bytes.to_vec(), fields)
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "upload of {name}: {body}");
        body["file"].clone()
    }

    /// Polls the file until its status is `ready` or `failed` (30 s at most) and returns it.
    pub async fn settled(&self, key: &str, id: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let f: Value = self
                .get(&format!("/api/v1/files/{id}"), Some(key))
                .await
                .json()
                .await
                .unwrap();
            if f["status"] == "ready" || f["status"] == "failed" {
                return f;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "file {id} never settled: {f}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Polls a job through the API until `done` holds (a hang guard, not a timing check).
    pub async fn wait_job(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..1200 {
            let j = self
                .get_json(&format!("/api/v1/jobs/{id}"), &self.admin_key)
                .await;
            if done(&j) {
                return j;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("job {id} never reached the expected state");
    }

    pub async fn login(&self, user: &str, password: &str) -> reqwest::Response {
        self.http
            .post(self.at("/api/v1/auth/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns the token pair.
    pub async fn tokens(&self, user: &str, password: &str) -> Value {
        let r = self.login(user, password).await;
        assert_eq!(r.status(), 200, "login of {user} failed");
        r.json().await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts the shared error shape and returns the body.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let header_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "error content type was {ct:?}"
    );
    let body: Value = resp.json().await.unwrap();
    let err = &body["error"];
    assert_eq!(err["code"], code, "body: {body}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    let id = err["request_id"].as_str().expect("request_id");
    assert_eq!(
        Some(id.to_owned()),
        header_id,
        "request id in body and header"
    );
    body
}
