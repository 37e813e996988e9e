//! Embedding servers reached over HTTP — Ollama and OpenAI-compatible — through the model
//! providers' clients ([`zentoria_providers::Provider::embed`]): the same timeouts, retries,
//! circuit breaker, proxy rules and redirect refusal as chat. This module adds what semantic
//! search needs on top: batching, a fixed dimension, and unit-length vectors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use zentoria_providers::{ClientConfig, Provider, ProviderError, ProviderKind, ProviderOptions};

use crate::{EmbedError, l2_normalize};

/// How a remote embedder batches and checks, and (for [`RemoteEmbedder::ollama`] and
/// [`RemoteEmbedder::openai`], which make their own client) how it talks to the server.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Texts per request (default 64).
    pub batch_size: usize,
    /// The vector dimension, when known in advance; otherwise it is learnt from the first
    /// answer. Answers of another dimension are rejected.
    pub dimension: Option<usize>,
    /// Timeouts (`first_token_timeout` bounds each whole request), retries with backoff
    /// (connection failures, 408, 429 and 5xx; timeouts are not retried) and the circuit
    /// breaker of the client the embedder makes. Unused by [`RemoteEmbedder::over`], which
    /// shares a provider's client and its settings.
    pub client: ProviderOptions,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            batch_size: 64,
            dimension: None,
            client: ProviderOptions::default(),
        }
    }
}

/// Vectors, and the tokens the server counted in the texts — `None` when any batch's answer
/// did not say.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: Option<u64>,
}

impl Counted {
    fn with_capacity(n: usize) -> Counted {
        Counted {
            vectors: Vec::with_capacity(n),
            tokens: Some(0),
        }
    }

    fn add(&mut self, vectors: Vec<Vec<f32>>, tokens: Option<u64>) {
        self.vectors.extend(vectors);
        self.tokens = self.tokens.zip(tokens).map(|(a, b)| a.saturating_add(b));
    }
}

/// An embedding model on an Ollama (`POST /api/embed`) or OpenAI-compatible
/// (`POST /v1/embeddings`) server. Cheap to clone; clones share the learnt dimension.
#[derive(Clone)]
pub struct RemoteEmbedder {
    provider: Arc<Provider>,
    model: String,
    batch_size: usize,
    /// 0 while unknown.
    dimension: Arc<AtomicUsize>,
}

impl std::fmt::Debug for RemoteEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEmbedder")
            .field("provider", &self.provider.name())
            .field("model", &self.model)
            .finish()
    }
}

impl RemoteEmbedder {
    /// Default Ollama address.
    pub const OLLAMA_BASE_URL: &'static str = "http://127.0.0.1:11434";
    /// Default Ollama model.
    pub const OLLAMA_MODEL: &'static str = "nomic-embed-text";
    /// Default OpenAI address.
    pub const OPENAI_BASE_URL: &'static str = "https://api.openai.com";

    /// `model` on the Ollama server at `base_url` (e.g. `http://127.0.0.1:11434`).
    pub fn ollama(
        base_url: &str,
        model: &str,
        options: RemoteOptions,
    ) -> Result<RemoteEmbedder, EmbedError> {
        Self::connect(ProviderKind::Ollama, base_url, None, model, options)
    }

    /// `model` at `base_url` — `https://api.openai.com`, `https://api.openai.com/v1` and
    /// `…/v1/embeddings` are all accepted. `api_key`, when given, is sent as
    /// `Authorization: Bearer …`.
    pub fn openai(
        base_url: &str,
        api_key: Option<&str>,
        model: &str,
        options: RemoteOptions,
    ) -> Result<RemoteEmbedder, EmbedError> {
        let base = base_url.trim().trim_end_matches('/');
        let base = match base.strip_suffix("/embeddings") {
            Some(v1) if v1.ends_with("/v1") => v1,
            _ => base,
        };
        Self::connect(ProviderKind::OpenAi, base, api_key, model, options)
    }

    fn connect(
        kind: ProviderKind,
        base_url: &str,
        api_key: Option<&str>,
        model: &str,
        options: RemoteOptions,
    ) -> Result<RemoteEmbedder, EmbedError> {
        let mut config = ClientConfig::new()
            .with_name(kind.as_str())
            .with_base_url(base_url)
            .with_options(options.client.clone());
        if let Some(key) = api_key.map(str::trim).filter(|k| !k.is_empty()) {
            config = config.with_api_key(key);
        }
        let provider = Provider::new(kind, config).map_err(from_provider)?;
        Self::over(Arc::new(provider), model, options)
    }

    /// `model` on an existing provider, sharing its client: its connections, timeouts,
    /// retries and circuit breaker. Anthropic's API has no embeddings.
    pub fn over(
        provider: Arc<Provider>,
        model: &str,
        options: RemoteOptions,
    ) -> Result<RemoteEmbedder, EmbedError> {
        let name = provider.name().to_owned();
        if provider.kind() == ProviderKind::Anthropic {
            return Err(EmbedError::Config(format!(
                "{name}: Anthropic's API has no embeddings; use an ollama or openai provider"
            )));
        }
        let model = model.trim();
        if model.is_empty() {
            return Err(EmbedError::Config(format!("{name}: model name is empty")));
        }
        if options.batch_size == 0 {
            return Err(EmbedError::Config(format!(
                "{name}: batch_size must be at least 1"
            )));
        }
        if options.dimension == Some(0) {
            return Err(EmbedError::Config(format!(
                "{name}: dimension must be at least 1"
            )));
        }
        Ok(RemoteEmbedder {
            provider,
            model: model.to_owned(),
            batch_size: options.batch_size,
            dimension: Arc::new(AtomicUsize::new(options.dimension.unwrap_or(0))),
        })
    }

    /// `ollama:<model>` or `openai:<model>`: the wire protocol, not the instance name, so
    /// that renaming a provider does not look like a change of embedder.
    pub fn id(&self) -> String {
        format!("{}:{}", self.provider.kind(), self.model)
    }

    /// The dimension given or learnt so far; 0 while unknown.
    pub fn dimension(&self) -> usize {
        self.dimension.load(Ordering::Relaxed)
    }

    /// The dimension, asking the server if it is not known yet.
    pub async fn probe_dimension(&self) -> Result<usize, EmbedError> {
        if self.dimension() == 0 {
            self.embed(&["dimension probe".to_owned()]).await?;
        }
        Ok(self.dimension())
    }

    /// Embeds `texts` in batches of [`RemoteOptions::batch_size`].
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_counted(texts).await?.vectors)
    }

    /// Like [`RemoteEmbedder::embed`], with the tokens the server counted.
    pub async fn embed_counted(&self, texts: &[String]) -> Result<Counted, EmbedError> {
        let mut out = Counted::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            let answer = self
                .provider
                .embed(&self.model, batch)
                .await
                .map_err(from_provider)?;
            out.add(self.check(answer.vectors)?, answer.prompt_tokens);
        }
        Ok(out)
    }

    /// Checks dimension and values, normalises, and records the dimension. (The provider
    /// client has already checked that there is one vector per text.)
    fn check(&self, mut vectors: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let p = self.provider.name();
        let known = self.dimension();
        let dim = if known > 0 {
            known
        } else {
            vectors.first().map_or(0, Vec::len)
        };
        for (i, v) in vectors.iter_mut().enumerate() {
            if v.is_empty() || v.len() != dim {
                return Err(EmbedError::Invalid(format!(
                    "{p} returned a vector of dimension {} for text {i}, expected {dim} (model {})",
                    v.len(),
                    self.model
                )));
            }
            if !l2_normalize(v) {
                return Err(EmbedError::Invalid(format!(
                    "{p} returned a zero or non-finite vector for text {i} (model {})",
                    self.model
                )));
            }
        }
        if known == 0 && dim > 0 {
            // The first answer fixes the dimension; a racing first answer of another
            // dimension is caught on the next call.
            let _ = self
                .dimension
                .compare_exchange(0, dim, Ordering::Relaxed, Ordering::Relaxed);
        }
        Ok(vectors)
    }
}

/// A provider failure in this crate's terms: what was wrong with the answer is `Invalid`,
/// a deadline is `Timeout`, bad settings are `Config`, a 429 is `RateLimited`, everything
/// else is `Upstream` (with the HTTP status when there was one).
fn from_provider(e: ProviderError) -> EmbedError {
    let provider = e.provider().to_owned();
    match e {
        ProviderError::Config { .. } => EmbedError::Config(e.to_string()),
        ProviderError::Protocol { .. } => EmbedError::Invalid(e.to_string()),
        ProviderError::Timeout { .. } => EmbedError::Timeout(e.to_string()),
        ProviderError::Http {
            status, message, ..
        } => EmbedError::Upstream {
            provider,
            status: Some(status),
            message,
        },
        ProviderError::RateLimited {
            retry_after,
            message,
            ..
        } => EmbedError::RateLimited {
            provider,
            retry_after,
            message,
        },
        ProviderError::Upstream { message, .. } => EmbedError::Upstream {
            provider,
            status: None,
            message,
        },
        other => {
            // Connection failures and an open circuit: the message is the whole error less
            // the provider's name, which `EmbedError` shows itself.
            let shown = other.to_string();
            let message = shown
                .strip_prefix(&format!("{provider}: "))
                .unwrap_or(&shown)
                .to_owned();
            EmbedError::Upstream {
                provider,
                status: None,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_config_is_an_error() {
        let d = RemoteOptions::default;
        let config =
            |r: Result<RemoteEmbedder, EmbedError>| matches!(r, Err(EmbedError::Config(_)));
        assert!(config(RemoteEmbedder::ollama("not a url", "m", d())));
        assert!(config(RemoteEmbedder::ollama("ftp://x", "m", d())));
        assert!(config(RemoteEmbedder::ollama("http://x", " ", d())));
        let no_batch = RemoteOptions {
            batch_size: 0,
            ..d()
        };
        assert!(config(RemoteEmbedder::ollama("http://x", "m", no_batch)));
        let no_dimension = RemoteOptions {
            dimension: Some(0),
            ..d()
        };
        assert!(config(RemoteEmbedder::ollama(
            "http://x",
            "m",
            no_dimension
        )));
        assert!(config(RemoteEmbedder::openai(
            "http://x",
            Some("a\nb"),
            "m",
            d()
        )));
        let anthropic = Provider::new(
            ProviderKind::Anthropic,
            ClientConfig::new().with_base_url("http://127.0.0.1:9"),
        )
        .unwrap();
        assert!(config(RemoteEmbedder::over(Arc::new(anthropic), "m", d())));
    }

    #[test]
    fn ids_name_the_protocol_and_model() {
        let d = RemoteOptions::default;
        let e = RemoteEmbedder::ollama("http://x", " nomic-embed-text ", d()).unwrap();
        assert_eq!(e.id(), "ollama:nomic-embed-text");
        let e = RemoteEmbedder::openai("https://api.openai.com/v1/embeddings", None, "t", d());
        assert_eq!(e.unwrap().id(), "openai:t");
    }

    #[test]
    fn provider_errors_keep_status_and_message() {
        let e = from_provider(ProviderError::Http {
            provider: "openai".into(),
            status: 401,
            kind: Some("invalid_request_error".into()),
            message: "Incorrect API key provided".into(),
            retry_after: None,
        });
        assert_eq!(
            e.to_string(),
            "openai embedding request failed (HTTP 401): Incorrect API key provided"
        );
        let e = from_provider(ProviderError::Connect {
            provider: "ollama".into(),
            message: "connection refused".into(),
        });
        assert_eq!(
            e.to_string(),
            "ollama embedding request failed: connection failed: connection refused"
        );
    }
}
