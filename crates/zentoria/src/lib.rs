//! The composition root: reads the finished configuration, picks each backend once, builds
//! the services and hands them to the front ends (HTTP server, CLI). Startup takes its
//! listener and shutdown signal as arguments, so tests run the real startup on port 0.

pub mod cli;
pub mod config;
mod knowledge_cli;
mod server;

use std::future::Future;
use std::net::IpAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use zentoria_core::config::Config;
use zentoria_core::crypto::MasterKey;
use zentoria_jobs::{Jobs, Queue, Registry, WorkerSettings};
use zentoria_platform::audit::AuditWriter;
use zentoria_platform::{AuditLog, Platform, Settings};
use zentoria_store::Db;

/// The services of one process, opened on the configured database.
pub struct Services {
    pub config: Config,
    pub db: Db,
    pub platform: Platform,
    pub jobs: Jobs,
    pub knowledge: zentoria_knowledge::Knowledge,
    pub ai: zentoria_ai::Ai,
    pub chat: zentoria_ai::Chat,
    pub commands: zentoria_ai::Commands,
    pub events: zentoria_events::EventBus,
    /// The job handlers this process runs; taken when the workers start.
    registry: Option<Registry>,
    audit_writer: AuditWriter,
}

/// The job kinds every Zentoria process runs. Modules add theirs here as they arrive.
pub fn builtin_jobs() -> Registry {
    Registry::new()
}

impl Services {
    /// Opens the data dir and database, applies migrations, loads (or creates) the master key
    /// and starts the audit writer.
    pub async fn open(config: Config) -> anyhow::Result<Services> {
        Self::open_with(config, builtin_jobs()).await
    }

    /// Like [`Services::open`], with the given job kinds (tests add their own).
    pub async fn open_with(config: Config, mut registry: Registry) -> anyhow::Result<Services> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
        let master_key = if config.master_key.is_empty() {
            let (key, created) = MasterKey::load_or_create(&config.data_dir)?;
            if created {
                tracing::info!(
                    path = %config.data_dir.join("master.key").display(),
                    "generated a new master key; back it up: without it, stored secrets cannot be read"
                );
            }
            key
        } else {
            MasterKey::from_base64(&config.master_key)?
        };
        let url = config.effective_database_url();
        let db = Db::connect(&url, config.database.max_connections).await?;
        if let Some(backup) = db.migrate().await? {
            tracing::info!(backup = %backup.display(), "database upgraded; the previous version is kept");
        }
        let (audit, audit_writer) = AuditLog::start(db.clone(), master_key.clone());
        let settings = Settings {
            access_token_ttl: config.access_token_ttl(),
            refresh_token_ttl: config.refresh_token_ttl(),
            allow_registration: config.auth.allow_registration,
            login_failures_per_minute: config.auth.login_failures_per_minute,
            key_cache_ttl: config.key_cache_ttl(),
        };
        let events = zentoria_events::EventBus::with_db(
            config.events.history,
            config.events.buffer,
            db.clone(),
        );
        let platform = Platform::new(
            db.clone(),
            &master_key,
            settings,
            audit.clone(),
            events.clone(),
        );
        let queue = Queue::new(db.clone(), events.clone());
        let knowledge = zentoria_knowledge::Knowledge::open(
            db.clone(),
            queue.clone(),
            audit.clone(),
            events.clone(),
            knowledge_settings(&config)?,
        )?;
        knowledge.register_jobs(&mut registry);
        let ai = zentoria_ai::Ai::new(ai_settings(&config)?)?
            .with_usage(zentoria_ai::usage::UsageLog::start(db.clone()));
        ai.attach_store(db.clone(), master_key.clone(), audit.clone())
            .await?;
        let chat = zentoria_ai::Chat::new(
            ai.clone(),
            db.clone(),
            knowledge.clone(),
            audit.clone(),
            chat_settings(&config)?,
        );
        let commands = zentoria_ai::Commands::new(
            ai.clone(),
            knowledge.clone(),
            platform.clone(),
            zentoria_ai::CommandSettings {
                max_rounds: config.ai.command_max_rounds,
                max_answer_tokens: config.ai.max_answer_tokens,
                screening: chat.settings().screening,
            },
        );
        let jobs = Jobs::new(queue, registry.metas(), audit);
        Ok(Services {
            config,
            db,
            platform,
            jobs,
            knowledge,
            ai,
            chat,
            commands,
            events,
            registry: Some(registry),
            audit_writer,
        })
    }

    /// Starts this process's job workers (once); `None` when `jobs.workers` is off.
    pub fn start_workers(&mut self) -> Option<zentoria_jobs::WorkerHandle> {
        if !self.config.jobs.workers {
            return None;
        }
        let registry = self.registry.take()?;
        let c = &self.config;
        let settings = WorkerSettings {
            poll_interval: c.jobs_poll_interval(),
            lease: c.jobs_lease(),
            retry_base: c.jobs_retry_base(),
            retention: c.jobs_retention(),
            shutdown_grace: c.jobs_shutdown_grace(),
        };
        Some(zentoria_jobs::start_workers(
            self.jobs.queue(),
            registry,
            settings,
        ))
    }

    /// Writes what is buffered (usage, the audit log) and closes the database.
    pub async fn close(self) {
        if let Some(usage) = self.ai.usage()
            && let Err(e) = usage.flush().await
        {
            tracing::warn!(error = ?e, "cannot write the last usage counts");
        }
        self.audit_writer.shutdown().await;
        self.db.close().await;
    }

    fn http_settings(&self) -> anyhow::Result<zentoria_http::HttpSettings> {
        let c = &self.config;
        let trusted_proxies = c
            .http
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<IpAddr>()
                    .with_context(|| format!("http.trusted_proxies: {p:?} is not an IP address"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(zentoria_http::HttpSettings {
            rate_limit_per_minute: c.http.rate_limit_per_minute,
            rate_limit_burst: c.http.rate_limit_burst,
            body_limit_bytes: c.http.body_limit_bytes,
            request_timeout: c.request_timeout(),
            cors_origins: c.http.cors_origins.clone(),
            metrics_require_auth: c.http.metrics_require_auth,
            hsts: c.http.hsts,
            trusted_proxies,
        })
    }
}

/// Serves HTTP on `listener` until `shutdown` resolves, then drains in-flight requests,
/// flushes the audit log and closes the database.
pub async fn serve(
    mut services: Services,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = zentoria_http::AppState::new(
        services.platform.clone(),
        services.jobs.clone(),
        services.knowledge.clone(),
        services.events.clone(),
        services.db.clone(),
        services.http_settings()?,
    )
    .with_chat(services.chat.clone(), services.commands.clone());
    let workers = services.start_workers();
    let indexer = services.knowledge.start_indexer();
    let app = zentoria_http::served(state);
    let watcher = services
        .platform
        .watch_revocations(std::time::Duration::from_secs(1));
    let provider_watch = services
        .ai
        .watch_providers(std::time::Duration::from_secs(2));
    let addr = listener.local_addr()?;
    let threads = services.config.http_threads();
    let mut server = server::Server::start(listener, app, threads)?;
    tracing::info!(%addr, threads, version = env!("CARGO_PKG_VERSION"), "zentoria is listening");
    shutdown.await;
    let drained = server.drain().await;
    tracing::info!("shutting down");
    if let Some(w) = workers {
        w.shutdown().await;
    }
    watcher.abort();
    provider_watch.abort();
    indexer.stop().await;
    services.close().await;
    server.finish().await;
    drained.context("the HTTP server failed")
}

fn knowledge_settings(c: &Config) -> anyhow::Result<zentoria_knowledge::KnowledgeSettings> {
    let extractor = if c.knowledge.extractor.is_empty() {
        std::env::current_exe().context("cannot find this executable to run the extractor")?
    } else {
        c.knowledge.extractor.clone().into()
    };
    Ok(zentoria_knowledge::KnowledgeSettings {
        data_dir: c.data_dir.clone(),
        max_upload_bytes: c.knowledge.max_upload_bytes,
        chunk_tokens: c.knowledge.chunk_tokens,
        chunk_overlap: c.knowledge.chunk_overlap,
        extract_timeout: c.extract_timeout(),
        extract_memory_mb: c.knowledge.extract_memory_mb,
        extractor,
        ingest_concurrency: c.knowledge.ingest_concurrency,
        embedder: embedder(c)?,
        hybrid: zentoria_knowledge::HybridSettings {
            rrf_k: c.knowledge.hybrid_rrf_k,
            keyword_weight: c.knowledge.hybrid_keyword_weight,
            semantic_weight: c.knowledge.hybrid_semantic_weight,
        },
    })
}

fn chat_settings(c: &Config) -> anyhow::Result<zentoria_ai::ChatSettings> {
    let a = &c.ai;
    if a.context_tokens < 256 {
        anyhow::bail!("ai.context_tokens must be at least 256");
    }
    if a.max_answer_tokens == 0 || a.max_answer_tokens as usize >= a.context_tokens {
        anyhow::bail!("ai.max_answer_tokens must be at least 1 and below ai.context_tokens");
    }
    if !(1..=50).contains(&a.command_max_rounds) {
        anyhow::bail!("ai.command_max_rounds must be between 1 and 50");
    }
    if !(1..=50).contains(&a.rag_top_k) {
        anyhow::bail!("ai.rag_top_k must be between 1 and 50");
    }
    if !(-1.0..=1.0).contains(&a.rag_min_similarity) {
        anyhow::bail!("ai.rag_min_similarity must be between -1 and 1");
    }
    Ok(zentoria_ai::ChatSettings {
        context_tokens: a.context_tokens,
        max_answer_tokens: a.max_answer_tokens,
        system_prompt: Some(a.system_prompt.trim().to_owned()).filter(|s| !s.is_empty()),
        rag_top_k: a.rag_top_k,
        rag_min_similarity: a.rag_min_similarity,
        history_limit: 200,
        screening: a
            .injection_screening
            .parse()
            .map_err(|e| anyhow::anyhow!("ai.injection_screening: {e}"))?,
    })
}

/// The model providers: the built-in `ollama` (on `ai.ollama_url`), `openai` and `anthropic`
/// when their keys (or URL) are set, and the named instances of `ai.providers`, which win over
/// a built-in of the same name.
fn ai_settings(c: &Config) -> anyhow::Result<zentoria_ai::AiSettings> {
    use zentoria_ai::{ProviderKind, ProviderSettings};
    let a = &c.ai;
    let some = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
    let mut providers: Vec<ProviderSettings> = Vec::new();
    for p in &a.providers {
        providers.push(ProviderSettings {
            name: p.name.clone(),
            kind: p
                .kind
                .parse::<ProviderKind>()
                .map_err(|e| anyhow::anyhow!("ai.providers.{}: {e}", p.name))?,
            base_url: some(&p.base_url),
            api_key: some(&p.api_key),
        });
    }
    let mut builtin = |name: &str, kind, base_url: Option<String>, api_key: Option<String>| {
        if !providers.iter().any(|p| p.name == name) {
            providers.push(ProviderSettings {
                name: name.to_owned(),
                kind,
                base_url,
                api_key,
            });
        }
    };
    builtin("ollama", ProviderKind::Ollama, some(&a.ollama_url), None);
    if some(&a.openai_api_key).is_some() || some(&a.openai_base_url).is_some() {
        builtin(
            "openai",
            ProviderKind::OpenAi,
            some(&a.openai_base_url),
            some(&a.openai_api_key),
        );
    }
    if some(&a.anthropic_api_key).is_some() {
        builtin(
            "anthropic",
            ProviderKind::Anthropic,
            some(&a.anthropic_base_url),
            some(&a.anthropic_api_key),
        );
    }
    Ok(zentoria_ai::AiSettings {
        providers,
        default_model: some(&a.default_model),
        aliases: a.aliases.clone(),
        fallbacks: a.fallbacks.clone(),
        options: Default::default(),
    })
}

/// The configured embedder (loading a local model now, so a bad one stops startup).
fn embedder(c: &Config) -> anyhow::Result<Option<zentoria_knowledge::Embedder>> {
    use zentoria_embed::{LocalBert, LocalOptions, RemoteEmbedder, RemoteOptions};
    let k = &c.knowledge;
    let or = |v: &str, default: &str| {
        if v.trim().is_empty() {
            default.to_owned()
        } else {
            v.trim().to_owned()
        }
    };
    let remote = RemoteOptions {
        batch_size: k.embedder_batch,
        ..RemoteOptions::default()
    };
    let e = match k.embedder.as_str() {
        "" => return Ok(None),
        "local" => {
            let started = std::time::Instant::now();
            let model = LocalBert::load_with(
                std::path::Path::new(k.embedder_model.trim()),
                LocalOptions {
                    batch_size: Some(k.embedder_batch),
                    ..LocalOptions::default()
                },
            )
            .context("knowledge.embedder_model")?;
            tracing::info!(model = %model.id(), dimension = model.dimension(), ms = started.elapsed().as_millis() as u64, "embedding model loaded");
            model.into()
        }
        "ollama" => RemoteEmbedder::ollama(
            &or(&k.embedder_url, RemoteEmbedder::OLLAMA_BASE_URL),
            &or(&k.embedder_model, RemoteEmbedder::OLLAMA_MODEL),
            remote,
        )?
        .into(),
        "openai" => {
            let key = (!k.embedder_api_key.is_empty()).then_some(k.embedder_api_key.as_str());
            RemoteEmbedder::openai(
                &or(&k.embedder_url, RemoteEmbedder::OPENAI_BASE_URL),
                key,
                &or(&k.embedder_model, "text-embedding-3-small"),
                remote,
            )?
            .into()
        }
        other => anyhow::bail!("knowledge.embedder: unknown embedder {other:?}"),
    };
    Ok(Some(e))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
