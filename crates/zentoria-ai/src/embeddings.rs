//! Embeddings through the gateway (`/v1/embeddings`): `provider/model` routed to the
//! provider's embeddings API — Ollama's `/api/embed` or an OpenAI-compatible
//! `/v1/embeddings` (Anthropic has none) — with the same scope, model allowlist, budget and
//! usage accounting as chat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zentoria_core::{Error, Result, Scope};
use zentoria_embed::{Counted, OllamaEmbedder, OpenAiEmbedder, RemoteOptions};
use zentoria_platform::Principal;
use zentoria_providers::{ProviderKind, Usage};

use crate::{Ai, ProviderSettings};

/// Most texts one request may embed.
pub const MAX_INPUTS: usize = 2048;
/// Longest text, in characters.
pub const MAX_INPUT_CHARS: usize = 100_000;

/// Embedding clients by provider and model, made once and kept while the provider's settings
/// stay the same.
#[derive(Default)]
pub(crate) struct Clients {
    by_model: Mutex<HashMap<ProviderModel, (ProviderSettings, Arc<Client>)>>,
}

/// (provider name, model).
type ProviderModel = (String, String);

pub(crate) enum Client {
    Ollama(OllamaEmbedder),
    OpenAi(OpenAiEmbedder),
}

impl Client {
    async fn embed(&self, texts: &[String]) -> std::result::Result<Counted, String> {
        match self {
            Client::Ollama(c) => c.embed_counted(texts).await.map_err(|e| e.to_string()),
            Client::OpenAi(c) => c.embed_counted(texts).await.map_err(|e| e.to_string()),
        }
    }
}

/// Vectors for the inputs, in order.
pub struct Embeddings {
    /// `provider/model`.
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
    /// As the provider counted them (OpenAI's `usage.prompt_tokens`, Ollama's
    /// `prompt_eval_count`); estimated (about four bytes a token) when it did not say.
    pub prompt_tokens: u64,
}

impl Ai {
    pub async fn embed(
        &self,
        p: &Principal,
        model: Option<&str>,
        inputs: Vec<String>,
    ) -> Result<Embeddings> {
        p.require(Scope::Chat)?;
        if inputs.is_empty() || inputs.len() > MAX_INPUTS {
            return Err(Error::invalid(format!(
                "input holds 1 to {MAX_INPUTS} texts"
            )));
        }
        if let Some(i) = inputs
            .iter()
            .position(|t| t.is_empty() || t.chars().count() > MAX_INPUT_CHARS)
        {
            return Err(Error::invalid(format!(
                "input[{i}] must hold 1 to {MAX_INPUT_CHARS} characters"
            )));
        }
        let route = self.route(model)?;
        if !p.limits.allows_model(&route.asked, &route.model) {
            return Err(Error::forbidden(format!(
                "this API key may not use the model {:?}",
                route.asked
            )));
        }
        if let Some(log) = &self.usage {
            log.check_budget(p).await?;
        }
        let name = route.provider.name().to_owned();
        let client = self.embedding_client(&name, &route.upstream_model)?;
        let answer = client.embed(&inputs).await;
        let prompt_tokens = match &answer {
            Ok(Counted {
                tokens: Some(n), ..
            }) => *n,
            _ => inputs
                .iter()
                .map(|t| crate::chat::prompt::estimate_tokens(t) as u64)
                .sum(),
        };
        if let Some(log) = &self.usage {
            let usage = Usage {
                prompt_tokens,
                completion_tokens: 0,
            };
            log.record(
                p,
                &route.model,
                answer.is_ok().then_some(usage),
                answer.is_err(),
            );
        }
        let counted = answer.map_err(|e| Error::Upstream(format!("provider {name}: {e}")))?;
        Ok(Embeddings {
            model: route.model,
            vectors: counted.vectors,
            prompt_tokens,
        })
    }

    fn embedding_client(&self, provider: &str, model: &str) -> Result<Arc<Client>> {
        let settings = self
            .registry
            .settings(provider)
            .ok_or_else(|| Error::invalid(format!("no provider named {provider:?}")))?;
        let key = (provider.to_owned(), model.to_owned());
        let mut clients = self.embedders.by_model.lock().expect("embedders lock");
        if let Some((s, c)) = clients.get(&key)
            && *s == settings
        {
            return Ok(c.clone());
        }
        let bad = |e: zentoria_embed::EmbedError| {
            Error::invalid(format!("provider {provider}: cannot embed with it: {e}"))
        };
        let client = match settings.kind {
            ProviderKind::Ollama => Client::Ollama(
                OllamaEmbedder::new(
                    settings
                        .base_url
                        .as_deref()
                        .unwrap_or(OllamaEmbedder::DEFAULT_BASE_URL),
                    model,
                    RemoteOptions::default(),
                )
                .map_err(bad)?,
            ),
            ProviderKind::OpenAi => Client::OpenAi(
                OpenAiEmbedder::new(
                    settings
                        .base_url
                        .as_deref()
                        .unwrap_or("https://api.openai.com"),
                    settings.api_key.as_deref(),
                    model,
                    RemoteOptions::default(),
                )
                .map_err(bad)?,
            ),
            ProviderKind::Anthropic => {
                return Err(Error::invalid(format!(
                    "provider {provider} speaks Anthropic's API, which has no embeddings; \
                     use an ollama or openai provider"
                )));
            }
        };
        let client = Arc::new(client);
        clients.insert(key, (settings, client.clone()));
        Ok(client)
    }
}
