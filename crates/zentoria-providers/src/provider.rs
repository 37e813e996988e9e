//! Client configuration and the [`Provider`] enum over the concrete clients.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::anthropic::AnthropicClient;
use crate::breaker::BreakerState;
use crate::client::Proxy;
use crate::embed::Embeddings;
use crate::error::ProviderError;
use crate::ollama::OllamaClient;
use crate::openai::OpenAiClient;
use crate::options::ProviderOptions;
use crate::transport::ChatStream;
use crate::types::{ChatRequest, ChatResponse, ModelInfo};

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Ollama's native `/api/chat`.
    Ollama,
    /// OpenAI Chat Completions and compatible servers.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    /// The lowercase identifier (`ollama`, `openai`, `anthropic`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Ollama => "ollama",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ollama" => Ok(ProviderKind::Ollama),
            "openai" | "openai-compatible" | "openai_compatible" => Ok(ProviderKind::OpenAi),
            "anthropic" => Ok(ProviderKind::Anthropic),
            other => Err(format!("unknown provider kind `{other}`")),
        }
    }
}

/// Settings common to every client.
#[derive(Clone, Default)]
pub struct ClientConfig {
    /// Instance name used in errors and [`ModelInfo::provider`]; defaults to the kind's name.
    pub name: Option<String>,
    /// Base URL; defaults to the provider's public or local endpoint.
    pub base_url: Option<String>,
    /// API key (never printed by `Debug` and scrubbed from error messages).
    pub api_key: Option<String>,
    /// Timeouts, retries and circuit breaker.
    pub options: ProviderOptions,
    /// How requests reach the provider: by default through the proxy the environment names.
    pub proxy: Proxy,
}

impl ClientConfig {
    /// A configuration with every setting at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the instance name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the base URL.
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Sets the reliability options.
    pub fn with_options(mut self, options: ProviderOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets how requests reach the provider.
    pub fn with_proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = proxy;
        self
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("options", &self.options)
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// Validates a base URL and strips trailing slashes.
pub(crate) fn base_url(
    name: &str,
    configured: Option<&str>,
    default: &str,
) -> Result<String, ProviderError> {
    let raw = configured
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(default);
    let config_error = |message: String| ProviderError::Config {
        provider: name.to_owned(),
        message,
    };
    let url = url::Url::parse(raw).map_err(|e| config_error(format!("invalid base URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config_error(format!(
            "base URL must use http or https, not `{}`",
            url.scheme()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_error(
            "base URL must not have a query or fragment".into(),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Any of the supported clients behind one interface.
#[derive(Debug)]
pub enum Provider {
    /// Ollama native API.
    Ollama(OllamaClient),
    /// OpenAI-compatible API.
    OpenAi(OpenAiClient),
    /// Anthropic Messages API.
    Anthropic(AnthropicClient),
}

macro_rules! dispatch {
    ($self:ident, $client:ident => $body:expr) => {
        match $self {
            Provider::Ollama($client) => $body,
            Provider::OpenAi($client) => $body,
            Provider::Anthropic($client) => $body,
        }
    };
}

impl Provider {
    /// Builds the client for `kind`.
    pub fn new(kind: ProviderKind, config: ClientConfig) -> Result<Self, ProviderError> {
        Ok(match kind {
            ProviderKind::Ollama => Provider::Ollama(OllamaClient::new(config)?),
            ProviderKind::OpenAi => Provider::OpenAi(OpenAiClient::new(config)?),
            ProviderKind::Anthropic => Provider::Anthropic(AnthropicClient::new(config)?),
        })
    }

    /// The wire protocol of this provider.
    pub fn kind(&self) -> ProviderKind {
        match self {
            Provider::Ollama(_) => ProviderKind::Ollama,
            Provider::OpenAi(_) => ProviderKind::OpenAi,
            Provider::Anthropic(_) => ProviderKind::Anthropic,
        }
    }

    /// Instance name used in errors.
    pub fn name(&self) -> &str {
        dispatch!(self, c => c.name())
    }

    /// State of this instance's circuit breaker.
    pub fn breaker_state(&self) -> BreakerState {
        dispatch!(self, c => c.breaker_state())
    }

    /// Non-streaming chat completion.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        dispatch!(self, c => c.chat(request).await)
    }

    /// Streaming chat completion. `Err` means nothing was streamed (safe to fall back to another
    /// provider); errors after that arrive as stream items.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        dispatch!(self, c => c.chat_stream(request).await)
    }

    /// Embeds `inputs` with `model` in one request (Ollama's `/api/embed`, OpenAI's
    /// `/v1/embeddings`). Anthropic's API has no embeddings: a [`ProviderError::Config`].
    pub async fn embed(&self, model: &str, inputs: &[String]) -> Result<Embeddings, ProviderError> {
        match self {
            Provider::Ollama(c) => c.embed(model, inputs).await,
            Provider::OpenAi(c) => c.embed(model, inputs).await,
            Provider::Anthropic(c) => Err(ProviderError::Config {
                provider: c.name().to_owned(),
                message: "Anthropic's API has no embeddings; use an ollama or openai provider"
                    .into(),
            }),
        }
    }

    /// Models the provider offers.
    pub async fn models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        dispatch!(self, c => c.models().await)
    }
}

impl From<OllamaClient> for Provider {
    fn from(c: OllamaClient) -> Self {
        Provider::Ollama(c)
    }
}

impl From<OpenAiClient> for Provider {
    fn from(c: OpenAiClient) -> Self {
        Provider::OpenAi(c)
    }
}

impl From<AnthropicClient> for Provider {
    fn from(c: AnthropicClient) -> Self {
        Provider::Anthropic(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_validation() {
        assert_eq!(
            base_url("p", Some("http://h:1/v1/"), "x").unwrap(),
            "http://h:1/v1"
        );
        assert_eq!(
            base_url("p", None, "http://127.0.0.1:11434").unwrap(),
            "http://127.0.0.1:11434"
        );
        assert!(base_url("p", Some("ftp://h"), "x").is_err());
        assert!(base_url("p", Some("not a url"), "x").is_err());
        assert!(base_url("p", Some("http://h/?a=1"), "x").is_err());
    }

    #[test]
    fn kind_parsing() {
        assert_eq!("OpenAI".parse::<ProviderKind>(), Ok(ProviderKind::OpenAi));
        assert_eq!(
            serde_json::to_string(&ProviderKind::OpenAi).unwrap(),
            "\"openai\""
        );
        assert!("gemini".parse::<ProviderKind>().is_err());
    }

    #[test]
    fn config_debug_redacts_key() {
        let c = ClientConfig::new().with_api_key("sk-secret-123");
        assert!(!format!("{c:?}").contains("sk-secret"));
        let p = Provider::new(
            ProviderKind::OpenAi,
            c.clone().with_base_url("http://127.0.0.1:9"),
        )
        .unwrap();
        assert!(!format!("{p:?}").contains("sk-secret"));
        let p = Provider::new(
            ProviderKind::Anthropic,
            c.with_base_url("http://127.0.0.1:9"),
        )
        .unwrap();
        assert!(!format!("{p:?}").contains("sk-secret"));
    }
}
