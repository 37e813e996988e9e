//! `zentoria ingest`, `zentoria search` and `zentoria reindex`: knowledge from the command
//! line, either on the local data dir (the same domain calls the server makes) or against a
//! running server over its HTTP API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use zentoria_knowledge::{SearchMode, SearchRequest, UploadMeta};
use zentoria_platform::{ClientInfo, Principal};

use crate::Services;

/// Where a command runs: on a remote server (with an API key) or on the local data dir (as a
/// user).
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// A running server's base URL, e.g. http://127.0.0.1:8080 (otherwise: the local data dir).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// API key for --url (or ZENTORIA_API_KEY).
    #[arg(long, env = "ZENTORIA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Without --url: the user who owns the files and whose files are searched.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files and folders (folders are walked; hidden entries are skipped).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Put the files in this collection (created if missing).
    #[arg(long)]
    collection: Option<String>,
    /// Comma-separated tags for every file.
    #[arg(long)]
    tags: Option<String>,
    /// Return once uploaded instead of waiting for ingestion to finish.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    query: String,
    /// keyword, semantic or hybrid.
    #[arg(long, default_value = "keyword")]
    mode: String,
    #[arg(long)]
    collection: Option<String>,
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Print the JSON answer instead of a list.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

/// What happened to one path.
enum Outcome {
    New { id: String },
    Duplicate,
    Refused(String),
}

struct Report {
    path: PathBuf,
    outcome: Outcome,
}

pub async fn ingest(
    args: IngestArgs,
    config: zentoria_core::config::Config,
) -> anyhow::Result<ExitCode> {
    let files = walk(&args.paths)?;
    if files.is_empty() {
        bail!("no files found under the given paths");
    }
    let tags: Vec<String> = args
        .tags
        .as_deref()
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let bar = progress(files.len() as u64, "uploading");
    let mut reports = Vec::new();
    let failed: Vec<(String, String)>;
    if let Some(url) = &args.target.url {
        let remote = Remote::new(url, args.target.api_key.as_deref())?;
        for path in &files {
            bar.set_message(path.display().to_string());
            let outcome = remote
                .upload(path, args.collection.as_deref(), &tags)
                .await?;
            reports.push(Report {
                path: path.clone(),
                outcome,
            });
            bar.inc(1);
        }
        bar.finish_and_clear();
        failed = if args.no_wait {
            Vec::new()
        } else {
            wait_all(&reports, |id| remote.file(id)).await?
        };
    } else {
        let user = args.target.user.as_deref().context(
            "say whose files these are: --user NAME (on this machine's data dir), or --url and --api-key (a running server)",
        )?;
        let mut services = Services::open(config).await?;
        let p = local_principal(&services, user).await?;
        let workers = (!args.no_wait).then(|| services.start_workers()).flatten();
        let indexer = services.knowledge.start_indexer();
        let k = services.knowledge.clone();
        let client = ClientInfo::cli();
        for path in &files {
            bar.set_message(path.display().to_string());
            let outcome = upload_local(&k, &p, path, &args, &tags, &client).await?;
            reports.push(Report {
                path: path.clone(),
                outcome,
            });
            bar.inc(1);
        }
        bar.finish_and_clear();
        failed = if args.no_wait {
            Vec::new()
        } else {
            wait_all(&reports, |id| {
                let k = k.clone();
                let p = p.clone();
                async move { Ok(serde_json::to_value(k.file(&p, &id).await?)?) }
            })
            .await?
        };
        if let Some(w) = workers {
            w.shutdown().await;
        }
        indexer.stop().await;
        services.close().await;
    }
    Ok(summary(&reports, &failed, args.no_wait))
}

async fn upload_local(
    k: &zentoria_knowledge::Knowledge,
    p: &Principal,
    path: &Path,
    args: &IngestArgs,
    tags: &[String],
    client: &ClientInfo,
) -> anyhow::Result<Outcome> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut up = match k.begin_upload(p, &name, None) {
        Ok(u) => u,
        Err(e) => return Ok(Outcome::Refused(e.to_string())),
    };
    let mut f = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        use tokio::io::AsyncReadExt;
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if let Err(e) = up.push(&buf[..n]).await {
            return Ok(Outcome::Refused(e.to_string()));
        }
    }
    let meta = UploadMeta {
        collection: args.collection.clone(),
        tags: tags.to_vec(),
    };
    Ok(match up.finish(meta, client).await {
        Ok(done) if done.created => Outcome::New { id: done.file.id },
        Ok(_) => Outcome::Duplicate,
        Err(e) => Outcome::Refused(e.to_string()),
    })
}

/// Waits until every new file is `ready` or `failed`; returns the failures with reasons.
async fn wait_all<F, Fut>(reports: &[Report], get: F) -> anyhow::Result<Vec<(String, String)>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    let mut pending: Vec<(String, String)> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::New { id } => Some((id.clone(), r.path.display().to_string())),
            _ => None,
        })
        .collect();
    let total = pending.len() as u64;
    let bar = progress(total, "ingesting");
    let mut failed = Vec::new();
    let mut delay = Duration::from_millis(100);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (id, path) in pending {
            let f = get(id.clone()).await?;
            match f["status"].as_str() {
                Some("ready") => bar.inc(1),
                Some("failed") => {
                    bar.inc(1);
                    failed.push((
                        path,
                        f["error"].as_str().unwrap_or("no reason given").to_owned(),
                    ));
                }
                Some(s) => {
                    bar.set_message(format!("{path}: {s}"));
                    still.push((id, path));
                }
                None => bail!("unexpected answer for file {id}: {f}"),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    bar.finish_and_clear();
    Ok(failed)
}

fn progress(len: u64, stage: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(stage);
    bar
}

fn summary(reports: &[Report], failed: &[(String, String)], no_wait: bool) -> ExitCode {
    let new = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::New { .. }))
        .count();
    let dup = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Duplicate))
        .count();
    let refused: Vec<_> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Refused(why) => Some((r.path.display().to_string(), why.clone())),
            _ => None,
        })
        .collect();
    let done = if no_wait { "uploaded" } else { "ingested" };
    println!(
        "{done} {} of {} files ({dup} already stored, {} refused, {} failed ingestion)",
        new - failed.len(),
        reports.len(),
        refused.len(),
        failed.len()
    );
    for (path, why) in refused.iter().chain(failed) {
        println!("  {path}: {why}");
    }
    if refused.is_empty() && failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    }
}

/// Every regular file under `paths` (recursively, hidden entries and symlinked folders
/// skipped), in a stable order.
fn walk(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            walk_dir(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk_dir(&e.path(), out)?;
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

pub async fn search(
    args: SearchArgs,
    config: zentoria_core::config::Config,
) -> anyhow::Result<ExitCode> {
    let mode = match args.mode.as_str() {
        "keyword" => SearchMode::Keyword,
        "semantic" => SearchMode::Semantic,
        "hybrid" => SearchMode::Hybrid,
        other => bail!("--mode must be keyword, semantic or hybrid, not {other:?}"),
    };
    let answer: Value = if let Some(url) = &args.target.url {
        let remote = Remote::new(url, args.target.api_key.as_deref())?;
        remote
            .post(
                "/api/v1/search",
                &json!({"query": args.query, "mode": args.mode, "collection": args.collection, "top_k": args.top_k}),
            )
            .await?
    } else {
        let user = args.target.user.as_deref().context(
            "say whose files to search: --user NAME (this machine's data dir), or --url and --api-key",
        )?;
        let services = Services::open(config).await?;
        let p = local_principal(&services, user).await?;
        // Bring the indexes up to date first (a server may have ingested since).
        services.knowledge.catch_up().await?;
        let req = SearchRequest {
            query: args.query.clone(),
            collection: args.collection.clone(),
            top_k: Some(args.top_k),
            mode,
            ..Default::default()
        };
        let out = services.knowledge.search(&p, req).await;
        services.close().await;
        serde_json::to_value(out?)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let hits = answer["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        println!("no matches");
    }
    for (i, h) in hits.iter().enumerate() {
        let c = &h["citation"];
        let mut place = Vec::new();
        if let Some(p) = c["page"].as_i64() {
            place.push(format!("p. {p}"));
        }
        if let Some(s) = c["heading"].as_str() {
            place.push(format!("§ {s}"));
        }
        place.push(format!(
            "chars {}–{}",
            c["start_char"].as_i64().unwrap_or(0),
            c["end_char"].as_i64().unwrap_or(0)
        ));
        println!(
            "{}. {} ({}) score {:.3}",
            i + 1,
            h["file_name"].as_str().unwrap_or("?"),
            place.join(", "),
            h["score"].as_f64().unwrap_or(0.0)
        );
        let text: String = h["text"]
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let snippet: String = text.chars().take(240).collect();
        let more = if text.chars().count() > 240 {
            "…"
        } else {
            ""
        };
        println!("   {snippet}{more}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn reindex(config: zentoria_core::config::Config) -> anyhow::Result<ExitCode> {
    let services = Services::open(config).await?;
    let started = Instant::now();
    let result = services.knowledge.rebuild_indexes().await;
    services.close().await;
    let (chunks, vectors) = result?;
    println!(
        "full-text index rebuilt from the database: {chunks} chunks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(n) = vectors {
        println!("vector index rebuilt from the stored vectors: {n} vectors");
    }
    Ok(ExitCode::SUCCESS)
}

async fn local_principal(services: &Services, user: &str) -> anyhow::Result<Principal> {
    let u = services
        .platform
        .user_by_name(user)
        .await
        .with_context(|| format!("no user {user:?} in this database"))?;
    if u.disabled {
        bail!("the user {user:?} is disabled");
    }
    Ok(Principal::cli_user(&u))
}

/// A running server, reached over its HTTP API.
struct Remote {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Remote {
    fn new(url: &str, key: Option<&str>) -> anyhow::Result<Remote> {
        let key = key.context("--url needs an API key: --api-key KEY or ZENTORIA_API_KEY")?;
        Ok(Remote {
            base: url.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    async fn upload(
        &self,
        path: &Path,
        collection: Option<&str>,
        tags: &[String],
    ) -> anyhow::Result<Outcome> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        let len = file.metadata().await?.len();
        let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::from(file), len)
            .file_name(name);
        let mut form = reqwest::multipart::Form::new();
        if let Some(c) = collection {
            form = form.text("collection", c.to_owned());
        }
        if !tags.is_empty() {
            form = form.text("tags", tags.join(","));
        }
        form = form.part("file", part);
        let r = self
            .http
            .post(format!("{}/api/v1/files", self.base))
            .header("X-API-Key", &self.key)
            .multipart(form)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        Ok(match status.as_u16() {
            201 => Outcome::New {
                id: body["file"]["id"].as_str().unwrap_or_default().to_owned(),
            },
            200 => Outcome::Duplicate,
            401 | 403 => bail!(
                "the server refused the key: {}",
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("no reason given")
            ),
            _ => Outcome::Refused(
                body["error"]["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP {status}")),
            ),
        })
    }

    async fn file(&self, id: String) -> anyhow::Result<Value> {
        self.get(&format!("/api/v1/files/{id}")).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("X-API-Key", &self.key)
            .send()
            .await?;
        answer(r).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-API-Key", &self.key)
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        answer(r).await
    }
}

async fn answer(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "the server answered {status}: {}",
            body["error"]["message"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    Ok(body)
}
