//! Layered configuration: defaults → TOML file (`--config` or `ZENTORIA_CONFIG`) →
//! `ZENTORIA_*` environment → command-line flags; the later wins. Secrets also accept a
//! `*_FILE` variant naming a file that holds the value. This is the only place that reads the
//! environment, and it is handed the variables rather than reaching for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use zentoria_core::config::Config;

/// Values given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

type Setter = fn(&mut Config, String) -> anyhow::Result<()>;

/// Every environment variable Zentoria reads, what it sets, and whether it is a secret
/// (secrets may come from `<NAME>_FILE`).
const ENV: &[(&str, bool, Setter)] = &[
    ("ZENTORIA_LISTEN", false, |c, v| {
        c.listen = v;
        Ok(())
    }),
    ("ZENTORIA_DATA_DIR", false, |c, v| {
        c.data_dir = v.into();
        Ok(())
    }),
    ("ZENTORIA_DATABASE_URL", true, |c, v| {
        c.database_url = v;
        Ok(())
    }),
    ("ZENTORIA_MASTER_KEY", true, |c, v| {
        c.master_key = v;
        Ok(())
    }),
    ("ZENTORIA_DATABASE_MAX_CONNECTIONS", false, |c, v| {
        c.database.max_connections = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_ACCESS_TOKEN_TTL", false, |c, v| {
        c.auth.access_token_ttl = v;
        Ok(())
    }),
    ("ZENTORIA_REFRESH_TOKEN_TTL", false, |c, v| {
        c.auth.refresh_token_ttl = v;
        Ok(())
    }),
    ("ZENTORIA_ALLOW_REGISTRATION", false, |c, v| {
        c.auth.allow_registration = boolean(&v)?;
        Ok(())
    }),
    ("ZENTORIA_LOGIN_FAILURES_PER_MINUTE", false, |c, v| {
        c.auth.login_failures_per_minute = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_KEY_CACHE_TTL", false, |c, v| {
        c.auth.key_cache_ttl = v;
        Ok(())
    }),
    ("ZENTORIA_RATE_LIMIT_PER_MINUTE", false, |c, v| {
        c.http.rate_limit_per_minute = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_RATE_LIMIT_BURST", false, |c, v| {
        c.http.rate_limit_burst = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_BODY_LIMIT_BYTES", false, |c, v| {
        c.http.body_limit_bytes = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_REQUEST_TIMEOUT", false, |c, v| {
        c.http.request_timeout = v;
        Ok(())
    }),
    ("ZENTORIA_CORS_ORIGINS", false, |c, v| {
        c.http.cors_origins = list(&v);
        Ok(())
    }),
    ("ZENTORIA_METRICS_REQUIRE_AUTH", false, |c, v| {
        c.http.metrics_require_auth = boolean(&v)?;
        Ok(())
    }),
    ("ZENTORIA_HSTS", false, |c, v| {
        c.http.hsts = boolean(&v)?;
        Ok(())
    }),
    ("ZENTORIA_TRUSTED_PROXIES", false, |c, v| {
        c.http.trusted_proxies = list(&v);
        Ok(())
    }),
    ("ZENTORIA_HTTP_THREADS", false, |c, v| {
        c.http.threads = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_JOBS_WORKERS", false, |c, v| {
        c.jobs.workers = boolean(&v)?;
        Ok(())
    }),
    ("ZENTORIA_JOBS_POLL_INTERVAL", false, |c, v| {
        c.jobs.poll_interval = v;
        Ok(())
    }),
    ("ZENTORIA_JOBS_LEASE", false, |c, v| {
        c.jobs.lease = v;
        Ok(())
    }),
    ("ZENTORIA_JOBS_RETRY_BASE", false, |c, v| {
        c.jobs.retry_base = v;
        Ok(())
    }),
    ("ZENTORIA_JOBS_RETENTION", false, |c, v| {
        c.jobs.retention = v;
        Ok(())
    }),
    ("ZENTORIA_MAX_UPLOAD_BYTES", false, |c, v| {
        c.knowledge.max_upload_bytes = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_CHUNK_TOKENS", false, |c, v| {
        c.knowledge.chunk_tokens = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_CHUNK_OVERLAP", false, |c, v| {
        c.knowledge.chunk_overlap = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_EXTRACT_TIMEOUT", false, |c, v| {
        c.knowledge.extract_timeout = v;
        Ok(())
    }),
    ("ZENTORIA_EXTRACT_MEMORY_MB", false, |c, v| {
        c.knowledge.extract_memory_mb = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_EXTRACTOR", false, |c, v| {
        c.knowledge.extractor = v;
        Ok(())
    }),
    ("ZENTORIA_INGEST_CONCURRENCY", false, |c, v| {
        c.knowledge.ingest_concurrency = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_EMBEDDER", false, |c, v| {
        c.knowledge.embedder = v;
        Ok(())
    }),
    ("ZENTORIA_EMBEDDER_MODEL", false, |c, v| {
        c.knowledge.embedder_model = v;
        Ok(())
    }),
    ("ZENTORIA_EMBEDDER_URL", false, |c, v| {
        c.knowledge.embedder_url = v;
        Ok(())
    }),
    ("ZENTORIA_EMBEDDER_API_KEY", true, |c, v| {
        c.knowledge.embedder_api_key = v;
        Ok(())
    }),
    ("ZENTORIA_EMBEDDER_BATCH", false, |c, v| {
        c.knowledge.embedder_batch = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_HYBRID_KEYWORD_WEIGHT", false, |c, v| {
        c.knowledge.hybrid_keyword_weight = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_HYBRID_SEMANTIC_WEIGHT", false, |c, v| {
        c.knowledge.hybrid_semantic_weight = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_DEFAULT_MODEL", false, |c, v| {
        c.ai.default_model = v;
        Ok(())
    }),
    ("ZENTORIA_OLLAMA_URL", false, |c, v| {
        c.ai.ollama_url = v;
        Ok(())
    }),
    ("ZENTORIA_OPENAI_BASE_URL", false, |c, v| {
        c.ai.openai_base_url = v;
        Ok(())
    }),
    ("ZENTORIA_OPENAI_API_KEY", true, |c, v| {
        c.ai.openai_api_key = v;
        Ok(())
    }),
    ("ZENTORIA_ANTHROPIC_BASE_URL", false, |c, v| {
        c.ai.anthropic_base_url = v;
        Ok(())
    }),
    ("ZENTORIA_ANTHROPIC_API_KEY", true, |c, v| {
        c.ai.anthropic_api_key = v;
        Ok(())
    }),
    ("ZENTORIA_CONTEXT_TOKENS", false, |c, v| {
        c.ai.context_tokens = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_MAX_ANSWER_TOKENS", false, |c, v| {
        c.ai.max_answer_tokens = num(&v)?;
        Ok(())
    }),
    ("ZENTORIA_SYSTEM_PROMPT", false, |c, v| {
        c.ai.system_prompt = v;
        Ok(())
    }),
    ("ZENTORIA_INJECTION_SCREENING", false, |c, v| {
        c.ai.injection_screening = v;
        Ok(())
    }),
    ("ZENTORIA_LOG_FORMAT", false, |c, v| {
        c.log.format = v;
        Ok(())
    }),
    ("ZENTORIA_LOG_LEVEL", false, |c, v| {
        c.log.level = v;
        Ok(())
    }),
];

/// Variables that are read elsewhere (the config path) or by the test suite, not settings.
const ALSO_KNOWN: &[&str] = &[
    "ZENTORIA_CONFIG",
    "ZENTORIA_TEST_DATABASE_URL",
    "ZENTORIA_TEST_MODEL_DIR",
];

fn num<T: std::str::FromStr>(v: &str) -> anyhow::Result<T> {
    v.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("expected a whole number, got {v:?}"))
}

fn boolean(v: &str) -> anyhow::Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => bail!("expected true or false, got {v:?}"),
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The finished configuration and the warnings met on the way (for the log).
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    pub file: Option<PathBuf>,
}

pub fn load(overrides: &Overrides, env: &BTreeMap<String, String>) -> anyhow::Result<Loaded> {
    let mut warnings = Vec::new();
    let file = overrides
        .config
        .clone()
        .or_else(|| env.get("ZENTORIA_CONFIG").map(PathBuf::from));
    let mut config = match &file {
        Some(path) => read_file(path)?,
        None => Config::default(),
    };

    for (name, secret, set) in ENV {
        let file_var = format!("{name}_FILE");
        let value = match (env.get(*name), env.get(&file_var)) {
            (Some(_), Some(_)) if *secret => {
                bail!("both {name} and {file_var} are set; keep one")
            }
            (Some(v), _) => Some(v.clone()),
            (None, Some(path)) if *secret => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("{file_var}: cannot read {path}"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
            _ => None,
        };
        if let Some(v) = value {
            set(&mut config, v).with_context(|| format!("environment variable {name}"))?;
        }
    }
    for name in env.keys().filter(|k| k.starts_with("ZENTORIA_")) {
        let known = ENV
            .iter()
            .any(|(n, secret, _)| name == n || (*secret && name.strip_suffix("_FILE") == Some(n)))
            || ALSO_KNOWN.contains(&name.as_str());
        if !known {
            warnings.push(format!(
                "ignoring unknown environment variable {name}; see docs/CONFIGURATION.md"
            ));
        }
    }

    if let Some(v) = &overrides.listen {
        config.listen = v.clone();
    }
    if let Some(v) = &overrides.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = &overrides.database_url {
        config.database_url = v.clone();
    }
    config.validate().context("invalid configuration")?;
    Ok(Loaded {
        config,
        warnings,
        file,
    })
}

fn read_file(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid config file", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_with_nothing_set() {
        let l = load(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(l.config, Config::default());
        assert_eq!(l.config.listen, "127.0.0.1:8080");
        assert!(
            l.config
                .effective_database_url()
                .ends_with("data/zentoria.db")
        );
    }

    #[test]
    fn file_then_env_then_flags_later_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1111\"\ndata_dir = \"/from/file\"\n[http]\nrate_limit_per_minute = 7\n[log]\nlevel = \"debug\"\n",
        )
        .unwrap();
        let e = env(&[
            ("ZENTORIA_CONFIG", path.to_str().unwrap()),
            ("ZENTORIA_LISTEN", "127.0.0.1:2222"),
            ("ZENTORIA_RATE_LIMIT_PER_MINUTE", "9"),
        ]);
        let l = load(&Overrides::default(), &e).unwrap();
        assert_eq!(l.file.as_deref(), Some(path.as_path()));
        assert_eq!(l.config.listen, "127.0.0.1:2222", "env beats file");
        assert_eq!(
            l.config.data_dir,
            PathBuf::from("/from/file"),
            "file beats default"
        );
        assert_eq!(l.config.http.rate_limit_per_minute, 9);
        assert_eq!(l.config.log.level, "debug");

        let flags = Overrides {
            listen: Some("127.0.0.1:3333".into()),
            data_dir: Some("/from/flag".into()),
            ..Default::default()
        };
        let l = load(&flags, &e).unwrap();
        assert_eq!(l.config.listen, "127.0.0.1:3333", "flag beats env");
        assert_eq!(l.config.data_dir, PathBuf::from("/from/flag"));
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\n").unwrap();
        let l = load(
            &Overrides::default(),
            &env(&[("ZENTORIA_MASTER_KEY_FILE", key_file.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(
            l.config.master_key,
            "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
        );
        assert!(l.warnings.is_empty());

        let both = env(&[
            ("ZENTORIA_MASTER_KEY_FILE", key_file.to_str().unwrap()),
            ("ZENTORIA_MASTER_KEY", "x"),
        ]);
        assert!(load(&Overrides::default(), &both).is_err());
        // Non-secrets have no _FILE form.
        let l = load(
            &Overrides::default(),
            &env(&[("ZENTORIA_LISTEN_FILE", "/x")]),
        )
        .unwrap();
        assert_eq!(l.warnings.len(), 1);
    }

    #[test]
    fn unknown_variables_are_warned_about_and_bad_values_refused() {
        let l = load(
            &Overrides::default(),
            &env(&[("ZENTORIA_LISTN", "x"), ("HOME", "/root")]),
        )
        .unwrap();
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].contains("ZENTORIA_LISTN"));

        let err = load(
            &Overrides::default(),
            &env(&[("ZENTORIA_RATE_LIMIT_PER_MINUTE", "lots")]),
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("ZENTORIA_RATE_LIMIT_PER_MINUTE"));
        let err = load(
            &Overrides::default(),
            &env(&[("ZENTORIA_ACCESS_TOKEN_TTL", "soon")]),
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("access_token_ttl"));
    }

    #[test]
    fn the_documented_file_is_valid_and_matches_the_defaults() {
        let doc = include_str!("../../../docs/CONFIGURATION.md");
        let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let block = &doc[start..start + doc[start..].find("```").unwrap()];
        let parsed: Config = toml::from_str(block).expect("docs/CONFIGURATION.md parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let flags = Overrides {
            config: Some(path),
            ..Default::default()
        };
        let err = load(&flags, &env(&[])).err().unwrap();
        assert!(format!("{err:#}").contains("lisen"));
    }
}
