//! Embedding servers reached over HTTP: Ollama and OpenAI-compatible.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use crate::{EmbedError, l2_normalize};

/// Options shared by the HTTP embedders.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Whole-request timeout, answer body included (default 60 s).
    pub timeout: Duration,
    /// TCP/TLS connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Texts per request (default 64).
    pub batch_size: usize,
    /// Attempts per request, the first included (default 3). Connect
    /// errors, HTTP 429 and HTTP 5xx are retried; timeouts are not.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one
    /// (default 500 ms).
    pub initial_backoff: Duration,
    /// Longest wait between attempts, `Retry-After` included (default 10 s).
    pub max_backoff: Duration,
    /// The vector dimension, when known in advance; otherwise it is learnt
    /// from the first answer. Answers of another dimension are rejected.
    pub dimension: Option<usize>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            batch_size: 64,
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            dimension: None,
        }
    }
}

/// What both HTTP embedders share: client, URL, retry policy, dimension.
#[derive(Clone)]
struct Http {
    provider: &'static str,
    client: reqwest::Client,
    url: Url,
    model: String,
    opts: RemoteOptions,
    /// 0 while unknown.
    dimension: Arc<AtomicUsize>,
}

impl Http {
    fn new(
        provider: &'static str,
        url: &str,
        model: String,
        opts: RemoteOptions,
    ) -> Result<Self, EmbedError> {
        let url = Url::parse(url)
            .map_err(|e| EmbedError::Config(format!("{provider}: invalid URL {url:?}: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(EmbedError::Config(format!(
                "{provider}: URL {url} must be http or https"
            )));
        }
        if model.trim().is_empty() {
            return Err(EmbedError::Config(format!(
                "{provider}: model name is empty"
            )));
        }
        if opts.batch_size == 0 || opts.max_attempts == 0 {
            return Err(EmbedError::Config(format!(
                "{provider}: batch_size and max_attempts must be at least 1"
            )));
        }
        if opts.dimension == Some(0) {
            return Err(EmbedError::Config(format!(
                "{provider}: dimension must be at least 1"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            .build()
            .map_err(|e| {
                EmbedError::Config(format!("{provider}: cannot build HTTP client: {e}"))
            })?;
        Ok(Http {
            provider,
            client,
            url,
            model,
            dimension: Arc::new(AtomicUsize::new(opts.dimension.unwrap_or(0))),
            opts,
        })
    }

    fn dimension(&self) -> usize {
        self.dimension.load(Ordering::Relaxed)
    }

    fn upstream(&self, status: Option<u16>, message: String) -> EmbedError {
        EmbedError::Upstream {
            provider: self.provider.into(),
            status,
            message,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.opts
            .initial_backoff
            .saturating_mul(factor)
            .min(self.opts.max_backoff)
    }

    /// POSTs `body`, retrying per the options; returns the 2xx answer's body.
    async fn post(
        &self,
        body: &serde_json::Value,
        bearer: Option<&str>,
    ) -> Result<Vec<u8>, EmbedError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let last = attempt >= self.opts.max_attempts;
            let mut req = self.client.post(self.url.clone()).json(body);
            if let Some(key) = bearer {
                req = req.bearer_auth(key);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() => return Err(self.timeout_error()),
                Err(e) if e.is_connect() && !last => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(self.upstream(
                        None,
                        format!(
                            "cannot reach {} after {attempt} attempt(s): {}",
                            self.url,
                            error_chain(&e)
                        ),
                    ));
                }
            };
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) if e.is_timeout() => return Err(self.timeout_error()),
                Err(e) => {
                    return Err(self.upstream(
                        Some(status.as_u16()),
                        format!("answer from {} broke off: {}", self.url, error_chain(&e)),
                    ));
                }
            };
            if status.is_success() {
                return Ok(bytes.to_vec());
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && !last {
                let wait = retry_after
                    .unwrap_or_else(|| self.backoff(attempt))
                    .min(self.opts.max_backoff);
                tokio::time::sleep(wait).await;
                continue;
            }
            let mut message = error_message(&bytes, status);
            if retryable {
                message.push_str(&format!(" (after {attempt} attempts)"));
            }
            return Err(self.upstream(Some(status.as_u16()), message));
        }
    }

    fn timeout_error(&self) -> EmbedError {
        EmbedError::Timeout(format!(
            "{} did not answer {} within {:?} (model {})",
            self.provider, self.url, self.opts.timeout, self.model
        ))
    }

    fn malformed(&self, e: impl std::fmt::Display) -> EmbedError {
        EmbedError::Invalid(format!(
            "{} answered {} with malformed JSON: {e}",
            self.provider, self.url
        ))
    }

    /// Checks count, dimension and values, normalises, and records the
    /// dimension.
    fn finish(
        &self,
        expected: usize,
        mut vectors: Vec<Vec<f32>>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let p = self.provider;
        if vectors.len() != expected {
            return Err(EmbedError::Invalid(format!(
                "{p} returned {} vectors for {expected} texts",
                vectors.len()
            )));
        }
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
            // first answer fixes the dimension; a racing first answer of
            // another dimension is caught on the next call
            let _ = self
                .dimension
                .compare_exchange(0, dim, Ordering::Relaxed, Ordering::Relaxed);
        }
        Ok(vectors)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// Extracts `{"error": "..."}` (Ollama) or `{"error": {"message": "..."}}`
/// (OpenAI) from an error body; otherwise the body's start, or the status.
fn error_message(body: &[u8], status: StatusCode) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let err = v.get("error");
        let msg = match err {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(e) => e.get("message").and_then(|m| m.as_str()).map(str::to_owned),
            None => v.get("message").and_then(|m| m.as_str()).map(str::to_owned),
        };
        if let Some(m) = msg.filter(|m| !m.trim().is_empty()) {
            return m;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.to_string();
    }
    let mut cut: String = text.chars().take(500).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

// ---------------------------------------------------------------- Ollama

/// Ollama's `POST /api/embed`.
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

#[derive(Clone)]
pub struct OllamaEmbedder {
    http: Http,
}

impl std::fmt::Debug for OllamaEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OllamaEmbedder")
            .field("url", &self.http.url.as_str())
            .field("model", &self.http.model)
            .finish()
    }
}

#[derive(Deserialize)]
struct OllamaResponse {
    embeddings: Vec<Vec<f32>>,
    /// Tokens the inputs held, when the server says.
    #[serde(default)]
    prompt_eval_count: Option<u64>,
}

impl OllamaEmbedder {
    /// Default server address.
    pub const DEFAULT_BASE_URL: &'static str = "http://127.0.0.1:11434";
    /// Default model.
    pub const DEFAULT_MODEL: &'static str = "nomic-embed-text";

    /// An embedder for `model` on the Ollama server at `base_url` (e.g.
    /// `http://127.0.0.1:11434`).
    pub fn new(
        base_url: &str,
        model: &str,
        options: RemoteOptions,
    ) -> Result<OllamaEmbedder, EmbedError> {
        let base = base_url.trim().trim_end_matches('/');
        let url = format!("{base}/api/embed");
        Ok(OllamaEmbedder {
            http: Http::new("ollama", &url, model.trim().to_owned(), options)?,
        })
    }

    /// `nomic-embed-text` on `http://127.0.0.1:11434`, default options.
    pub fn with_defaults() -> Result<OllamaEmbedder, EmbedError> {
        Self::new(
            Self::DEFAULT_BASE_URL,
            Self::DEFAULT_MODEL,
            RemoteOptions::default(),
        )
    }

    /// `ollama:<model>`.
    pub fn id(&self) -> String {
        format!("ollama:{}", self.http.model)
    }

    /// The dimension given or learnt so far; 0 while unknown.
    pub fn dimension(&self) -> usize {
        self.http.dimension()
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

    /// Like [`OllamaEmbedder::embed`], with the tokens the server counted
    /// (`prompt_eval_count`).
    pub async fn embed_counted(&self, texts: &[String]) -> Result<Counted, EmbedError> {
        let mut out = Counted::with_capacity(texts.len());
        for chunk in texts.chunks(self.http.opts.batch_size) {
            let body = json!({ "model": self.http.model, "input": chunk });
            let bytes = self.http.post(&body, None).await?;
            let resp: OllamaResponse =
                serde_json::from_slice(&bytes).map_err(|e| self.http.malformed(e))?;
            out.add(
                self.http.finish(chunk.len(), resp.embeddings)?,
                resp.prompt_eval_count,
            );
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- OpenAI

/// OpenAI's (or a compatible server's) `POST /v1/embeddings`.
#[derive(Clone)]
pub struct OpenAiEmbedder {
    http: Http,
    api_key: Option<String>,
}

impl std::fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("url", &self.http.url.as_str())
            .field("model", &self.http.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Deserialize)]
struct OpenAiResponse {
    data: Vec<OpenAiItem>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    prompt_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OpenAiItem {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiEmbedder {
    /// Default server address.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com";

    /// An embedder for `model` at `base_url` — `https://api.openai.com`,
    /// `https://api.openai.com/v1` and `…/v1/embeddings` are all accepted.
    /// `api_key`, when given, is sent as `Authorization: Bearer …`.
    pub fn new(
        base_url: &str,
        api_key: Option<&str>,
        model: &str,
        options: RemoteOptions,
    ) -> Result<OpenAiEmbedder, EmbedError> {
        let base = base_url.trim().trim_end_matches('/');
        let url = if base.ends_with("/v1/embeddings") {
            base.to_owned()
        } else if base.ends_with("/v1") {
            format!("{base}/embeddings")
        } else {
            format!("{base}/v1/embeddings")
        };
        let api_key = api_key.map(str::trim).filter(|k| !k.is_empty());
        if let Some(k) = api_key
            && reqwest::header::HeaderValue::from_str(&format!("Bearer {k}")).is_err()
        {
            return Err(EmbedError::Config(
                "openai: API key contains characters not allowed in an HTTP header".into(),
            ));
        }
        Ok(OpenAiEmbedder {
            http: Http::new("openai", &url, model.trim().to_owned(), options)?,
            api_key: api_key.map(str::to_owned),
        })
    }

    /// `openai:<model>`.
    pub fn id(&self) -> String {
        format!("openai:{}", self.http.model)
    }

    /// The dimension given or learnt so far; 0 while unknown.
    pub fn dimension(&self) -> usize {
        self.http.dimension()
    }

    /// The dimension, asking the server if it is not known yet.
    pub async fn probe_dimension(&self) -> Result<usize, EmbedError> {
        if self.dimension() == 0 {
            self.embed(&["dimension probe".to_owned()]).await?;
        }
        Ok(self.dimension())
    }

    /// Embeds `texts` in batches of [`RemoteOptions::batch_size`]; answers
    /// are put back in input order by their `index`.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_counted(texts).await?.vectors)
    }

    /// Like [`OpenAiEmbedder::embed`], with the tokens the server counted
    /// (`usage.prompt_tokens`).
    pub async fn embed_counted(&self, texts: &[String]) -> Result<Counted, EmbedError> {
        let mut out = Counted::with_capacity(texts.len());
        for chunk in texts.chunks(self.http.opts.batch_size) {
            let body = json!({ "model": self.http.model, "input": chunk });
            let bytes = self.http.post(&body, self.api_key.as_deref()).await?;
            let resp: OpenAiResponse =
                serde_json::from_slice(&bytes).map_err(|e| self.http.malformed(e))?;
            let n = chunk.len();
            if resp.data.len() != n {
                return Err(EmbedError::Invalid(format!(
                    "openai returned {} vectors for {n} texts",
                    resp.data.len()
                )));
            }
            let mut slots: Vec<Option<Vec<f32>>> = vec![None; n];
            for item in resp.data {
                match slots.get_mut(item.index) {
                    Some(slot @ None) => *slot = Some(item.embedding),
                    Some(Some(_)) => {
                        return Err(EmbedError::Invalid(format!(
                            "openai returned index {} twice",
                            item.index
                        )));
                    }
                    None => {
                        return Err(EmbedError::Invalid(format!(
                            "openai returned index {} for a batch of {n} texts",
                            item.index
                        )));
                    }
                }
            }
            let vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
            out.add(
                self.http.finish(n, vectors)?,
                resp.usage.and_then(|u| u.prompt_tokens),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_url_forms() {
        for base in [
            "https://api.openai.com",
            "https://api.openai.com/",
            "https://api.openai.com/v1",
            "https://api.openai.com/v1/",
            "https://api.openai.com/v1/embeddings",
        ] {
            let e = OpenAiEmbedder::new(base, Some("k"), "m", RemoteOptions::default()).unwrap();
            assert_eq!(e.http.url.as_str(), "https://api.openai.com/v1/embeddings");
        }
    }

    #[test]
    fn bad_config_is_an_error() {
        assert!(matches!(
            OllamaEmbedder::new("not a url", "m", RemoteOptions::default()),
            Err(EmbedError::Config(_))
        ));
        assert!(matches!(
            OllamaEmbedder::new("ftp://x", "m", RemoteOptions::default()),
            Err(EmbedError::Config(_))
        ));
        assert!(matches!(
            OllamaEmbedder::new("http://x", " ", RemoteOptions::default()),
            Err(EmbedError::Config(_))
        ));
        let opts = RemoteOptions {
            batch_size: 0,
            ..RemoteOptions::default()
        };
        assert!(matches!(
            OllamaEmbedder::new("http://x", "m", opts),
            Err(EmbedError::Config(_))
        ));
        assert!(matches!(
            OpenAiEmbedder::new("http://x", Some("a\nb"), "m", RemoteOptions::default()),
            Err(EmbedError::Config(_))
        ));
    }

    #[test]
    fn error_bodies() {
        let s = StatusCode::NOT_FOUND;
        assert_eq!(
            error_message(br#"{"error":"model \"x\" not found"}"#, s),
            "model \"x\" not found"
        );
        assert_eq!(
            error_message(br#"{"error":{"message":"bad key","type":"x"}}"#, s),
            "bad key"
        );
        assert_eq!(error_message(b"", s), "404 Not Found");
        assert_eq!(error_message(b"oops", s), "oops");
    }

    #[test]
    fn backoff_grows_and_caps() {
        let h = Http::new(
            "ollama",
            "http://127.0.0.1:1/api/embed",
            "m".into(),
            RemoteOptions::default(),
        )
        .unwrap();
        assert_eq!(h.backoff(1), Duration::from_millis(500));
        assert_eq!(h.backoff(2), Duration::from_millis(1000));
        assert_eq!(h.backoff(40), Duration::from_secs(10));
    }
}
