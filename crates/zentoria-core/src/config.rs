//! Configuration types. Loading them (defaults → TOML file → `ZENTORIA_*` environment → CLI
//! flags) is the binary's job; everything else receives a finished [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: String,
    /// Where the SQLite database, the master key and (later) blobs and indexes live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; empty means `sqlite://<data_dir>/zentoria.db`.
    pub database_url: String,
    /// Base64 of 32 bytes; empty means `<data_dir>/master.key`, generated on first start.
    pub master_key: String,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub database: DatabaseConfig,
    pub jobs: JobsConfig,
    pub events: EventsConfig,
    pub knowledge: KnowledgeConfig,
    pub ai: AiConfig,
}

/// Model providers and how model names reach them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AiConfig {
    /// The model used when a request names none, as `provider/model`; empty: requests must
    /// name one.
    pub default_model: String,
    /// Short names for models: `alias = "provider/model"`.
    pub aliases: std::collections::BTreeMap<String, String>,
    /// Models to try, in order, when a model cannot be reached (connection failures,
    /// timeouts, 429, 5xx, an open circuit): `"openai/gpt-4o-mini" = ["anthropic/…", "ollama/…"]`.
    pub fallbacks: std::collections::BTreeMap<String, Vec<String>>,
    /// The built-in `ollama` provider's address.
    pub ollama_url: String,
    /// With an API key or base URL, a built-in `openai` provider (any OpenAI-compatible server).
    pub openai_base_url: String,
    /// A secret.
    pub openai_api_key: String,
    /// With an API key, a built-in `anthropic` provider.
    pub anthropic_base_url: String,
    /// A secret.
    pub anthropic_api_key: String,
    /// More named provider instances.
    pub providers: Vec<ProviderConfig>,
    /// The context window assumed for every model, in tokens: the system prompt, retrieved
    /// passages, history and the answer must fit in it.
    pub context_tokens: usize,
    /// The longest answer asked for when a request names no `max_tokens`.
    pub max_answer_tokens: u32,
    /// The system prompt of chat sessions that have none of their own; empty: none.
    pub system_prompt: String,
    /// Passages retrieved for an answer from documents.
    pub rag_top_k: usize,
    /// With an embedder: passages less similar to the question than this (cosine) are not
    /// relevant.
    pub rag_min_similarity: f32,
    /// What prompt-injection screening does with a suspicious question or passage: `off`,
    /// `warn` (record it and tell the caller) or `block` (record it, refuse the question, leave
    /// the passage out).
    pub injection_screening: String,
    /// Rounds of tool calls an AI command may take before it is stopped.
    pub command_max_rounds: usize,
}

impl Default for AiConfig {
    fn default() -> Self {
        AiConfig {
            default_model: String::new(),
            aliases: Default::default(),
            fallbacks: Default::default(),
            ollama_url: "http://127.0.0.1:11434".into(),
            openai_base_url: String::new(),
            openai_api_key: String::new(),
            anthropic_base_url: String::new(),
            anthropic_api_key: String::new(),
            providers: Vec::new(),
            context_tokens: 8192,
            max_answer_tokens: 1024,
            system_prompt: String::new(),
            rag_top_k: 5,
            rag_min_similarity: 0.3,
            injection_screening: "warn".into(),
            command_max_rounds: 5,
        }
    }
}

/// One named provider instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// How models are addressed: `name/model`.
    pub name: String,
    /// `ollama`, `openai` (any OpenAI-compatible server) or `anthropic`.
    pub kind: String,
    /// Empty: the kind's default (local Ollama, api.openai.com, api.anthropic.com).
    #[serde(default)]
    pub base_url: String,
    /// A secret.
    #[serde(default)]
    pub api_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// Largest file an upload may carry.
    pub max_upload_bytes: u64,
    /// Target chunk size, in estimated tokens.
    pub chunk_tokens: usize,
    /// How much of the previous chunk a chunk repeats, in estimated tokens.
    pub chunk_overlap: usize,
    /// Longest one file's text extraction may take before it is stopped.
    pub extract_timeout: String,
    /// Memory an extraction process may use, in MiB.
    pub extract_memory_mb: u64,
    /// Files ingested at once by this process.
    pub ingest_concurrency: usize,
    /// The program run (as `PROGRAM __extract …`) to extract PDF and DOCX text in a
    /// resource-limited child process; empty means this very executable.
    pub extractor: String,
    /// What turns text into vectors for semantic and hybrid search: `""` (none: keyword
    /// search only), `local`, `ollama` or `openai` (any OpenAI-compatible `/v1/embeddings`).
    pub embedder: String,
    /// `local`: the model directory (config.json, tokenizer.json, model.safetensors).
    /// `ollama` / `openai`: the model name (default nomic-embed-text / text-embedding-3-small).
    pub embedder_model: String,
    /// `ollama` / `openai`: the server (default http://127.0.0.1:11434 / https://api.openai.com).
    pub embedder_url: String,
    /// `openai`: the API key, if the server wants one (a secret).
    pub embedder_api_key: String,
    /// Texts per embedding request (or per local batch).
    pub embedder_batch: usize,
    /// Hybrid search: the `k` of reciprocal-rank fusion (`Σ weight / (k + rank)`).
    pub hybrid_rrf_k: f32,
    /// Hybrid search: the weight of the keyword ranking.
    pub hybrid_keyword_weight: f32,
    /// Hybrid search: the weight of the semantic ranking.
    pub hybrid_semantic_weight: f32,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            max_upload_bytes: 100 * 1024 * 1024,
            chunk_tokens: 512,
            chunk_overlap: 64,
            extract_timeout: "60s".into(),
            extract_memory_mb: 1024,
            ingest_concurrency: 2,
            extractor: String::new(),
            embedder: String::new(),
            embedder_model: String::new(),
            embedder_url: String::new(),
            embedder_api_key: String::new(),
            embedder_batch: 32,
            hybrid_rrf_k: 60.0,
            hybrid_keyword_weight: 1.0,
            hybrid_semantic_weight: 1.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Recent events kept for clients resuming with `Last-Event-ID`.
    pub history: usize,
    /// How far a subscriber may fall behind before it is disconnected.
    pub buffer: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            history: 4096,
            buffer: 8192,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Whether this process runs job workers (a server that only serves HTTP can turn it off).
    pub workers: bool,
    /// How often workers look for due jobs when nothing woke them.
    pub poll_interval: String,
    /// How long a claimed job stays claimed without a heartbeat; after a crash, its job is
    /// taken over when this runs out.
    pub lease: String,
    /// The first retry delay; later ones double (with jitter) up to an hour.
    pub retry_base: String,
    /// How long finished jobs are kept.
    pub retention: String,
    /// How long shutdown waits for running jobs.
    pub shutdown_grace: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            workers: true,
            poll_interval: "1s".into(),
            lease: "30s".into(),
            retry_base: "1s".into(),
            retention: "7d".into(),
            shutdown_grace: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of JWT access tokens, e.g. `15m`.
    pub access_token_ttl: String,
    /// Lifetime of refresh tokens, e.g. `7d`.
    pub refresh_token_ttl: String,
    /// Whether `POST /api/v1/auth/register` creates accounts (as role `user`).
    pub allow_registration: bool,
    /// Failed logins allowed per minute for one client address, and for one username.
    pub login_failures_per_minute: u32,
    /// How long a verified API key is trusted from memory before it is looked up again.
    pub key_cache_ttl: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Requests per minute for each API key, each user and each client address (0 = no limit).
    pub rate_limit_per_minute: u32,
    /// Requests that may arrive at once before the per-minute rate applies.
    pub rate_limit_burst: u32,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest time one request may take, e.g. `30s`.
    pub request_timeout: String,
    /// Origins allowed by CORS; empty means no cross-origin access.
    pub cors_origins: Vec<String>,
    /// Whether `/metrics` needs credentials (scope `admin`).
    pub metrics_require_auth: bool,
    /// Send `Strict-Transport-Security`: set when Zentoria is reached over HTTPS.
    pub hsts: bool,
    /// Peers whose `X-Forwarded-For` is believed (e.g. a local reverse proxy).
    pub trusted_proxies: Vec<String>,
    /// Threads serving HTTP connections, each with a runtime of its own; 0 = one per core.
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `pretty` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `zentoria=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub max_connections: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            master_key: String::new(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            database: DatabaseConfig::default(),
            jobs: JobsConfig::default(),
            events: EventsConfig::default(),
            knowledge: KnowledgeConfig::default(),
            ai: AiConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_token_ttl: "15m".into(),
            refresh_token_ttl: "7d".into(),
            allow_registration: false,
            login_failures_per_minute: 5,
            key_cache_ttl: "10s".into(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            rate_limit_per_minute: 600,
            rate_limit_burst: 100,
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout: "30s".into(),
            cors_origins: Vec::new(),
            metrics_require_auth: false,
            hsts: false,
            trusted_proxies: Vec::new(),
            threads: 0,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "pretty".into(),
            level: "info".into(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            max_connections: 16,
        }
    }
}

impl Config {
    /// The database URL in force: the configured one, or SQLite inside the data dir.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("zentoria.db").display())
        } else {
            self.database_url.clone()
        }
    }

    /// Checks every value that has a shape, so a bad setting stops startup with a clear
    /// message instead of failing later.
    pub fn validate(&self) -> crate::Result<()> {
        let durations = [
            ("auth.access_token_ttl", &self.auth.access_token_ttl),
            ("auth.refresh_token_ttl", &self.auth.refresh_token_ttl),
            ("auth.key_cache_ttl", &self.auth.key_cache_ttl),
            ("http.request_timeout", &self.http.request_timeout),
            ("jobs.poll_interval", &self.jobs.poll_interval),
            ("jobs.lease", &self.jobs.lease),
            ("jobs.retry_base", &self.jobs.retry_base),
            ("jobs.retention", &self.jobs.retention),
            ("jobs.shutdown_grace", &self.jobs.shutdown_grace),
            ("knowledge.extract_timeout", &self.knowledge.extract_timeout),
        ];
        for (name, value) in durations {
            crate::time::parse_duration(value)
                .map_err(|e| crate::Error::invalid(format!("{name}: {e}")))?;
        }
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return Err(crate::Error::invalid(format!(
                "log.format must be \"pretty\" or \"json\", not {:?}",
                self.log.format
            )));
        }
        let k = &self.knowledge;
        if !matches!(k.embedder.as_str(), "" | "local" | "ollama" | "openai") {
            return Err(crate::Error::invalid(format!(
                "knowledge.embedder must be \"\" (none), \"local\", \"ollama\" or \"openai\", not {:?}",
                k.embedder
            )));
        }
        if k.embedder == "local" && k.embedder_model.trim().is_empty() {
            return Err(crate::Error::invalid(
                "knowledge.embedder = \"local\" needs knowledge.embedder_model: the directory of a \
                 sentence-transformers model (config.json, tokenizer.json, model.safetensors)",
            ));
        }
        if k.embedder_batch == 0 || k.embedder_batch > 2048 {
            return Err(crate::Error::invalid(
                "knowledge.embedder_batch must be between 1 and 2048",
            ));
        }
        if !(k.hybrid_rrf_k.is_finite() && k.hybrid_rrf_k >= 0.0) {
            return Err(crate::Error::invalid(
                "knowledge.hybrid_rrf_k must be a number ≥ 0",
            ));
        }
        for (name, w) in [
            ("knowledge.hybrid_keyword_weight", k.hybrid_keyword_weight),
            ("knowledge.hybrid_semantic_weight", k.hybrid_semantic_weight),
        ] {
            if !(0.0..=100.0).contains(&w) {
                return Err(crate::Error::invalid(format!(
                    "{name} must be between 0 and 100"
                )));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for p in &self.ai.providers {
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(crate::Error::invalid(format!(
                    "ai.providers: the name {:?} must be letters, digits, - or _",
                    p.name
                )));
            }
            if !names.insert(p.name.as_str()) {
                return Err(crate::Error::invalid(format!(
                    "ai.providers: {:?} is named twice",
                    p.name
                )));
            }
            if !matches!(p.kind.as_str(), "ollama" | "openai" | "anthropic") {
                return Err(crate::Error::invalid(format!(
                    "ai.providers.{}: kind must be ollama, openai or anthropic, not {:?}",
                    p.name, p.kind
                )));
            }
        }
        for (alias, target) in &self.ai.aliases {
            if !target.contains('/') {
                return Err(crate::Error::invalid(format!(
                    "ai.aliases.{alias}: {target:?} must be provider/model"
                )));
            }
        }
        if !self.ai.default_model.is_empty()
            && !self.ai.default_model.contains('/')
            && !self.ai.aliases.contains_key(&self.ai.default_model)
        {
            return Err(crate::Error::invalid(format!(
                "ai.default_model: {:?} must be provider/model or an alias",
                self.ai.default_model
            )));
        }
        let url = self.effective_database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(crate::Error::invalid(
                "database_url must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        Ok(())
    }

    pub fn extract_timeout(&self) -> Duration {
        dur(&self.knowledge.extract_timeout)
    }

    pub fn access_token_ttl(&self) -> Duration {
        dur(&self.auth.access_token_ttl)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        dur(&self.auth.refresh_token_ttl)
    }

    pub fn key_cache_ttl(&self) -> Duration {
        dur(&self.auth.key_cache_ttl)
    }

    pub fn request_timeout(&self) -> Duration {
        dur(&self.http.request_timeout)
    }

    /// The HTTP serving threads to start: `http.threads`, or one per core when 0.
    pub fn http_threads(&self) -> usize {
        match self.http.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub fn jobs_poll_interval(&self) -> Duration {
        dur(&self.jobs.poll_interval)
    }

    pub fn jobs_lease(&self) -> Duration {
        dur(&self.jobs.lease)
    }

    pub fn jobs_retry_base(&self) -> Duration {
        dur(&self.jobs.retry_base)
    }

    pub fn jobs_retention(&self) -> Duration {
        dur(&self.jobs.retention)
    }

    pub fn jobs_shutdown_grace(&self) -> Duration {
        dur(&self.jobs.shutdown_grace)
    }
}

/// Durations are checked by [`Config::validate`]; an unchecked bad one falls back to zero.
fn dur(s: &str) -> Duration {
    crate::time::parse_duration(s).unwrap_or_default()
}
