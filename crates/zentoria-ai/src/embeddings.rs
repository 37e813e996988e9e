//! Embeddings through the gateway (`/v1/embeddings`): `provider/model` routed to the
//! provider's embeddings API — Ollama's `/api/embed` or an OpenAI-compatible
//! `/v1/embeddings` (Anthropic has none) — with the same scope, model allowlist, budget and
//! usage accounting as chat.

use zentoria_core::{Error, Result, Scope};
use zentoria_embed::{Counted, EmbedError, RemoteEmbedder, RemoteOptions};
use zentoria_platform::Principal;
use zentoria_providers::Usage;

use crate::Ai;

/// Most texts one request may embed.
pub const MAX_INPUTS: usize = 2048;
/// Longest text, in characters.
pub const MAX_INPUT_CHARS: usize = 100_000;

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
        if !p.limits.allows_model(route.asked(), &route.model) {
            return Err(Error::forbidden(format!(
                "this API key may not use the model {:?}",
                route.asked()
            )));
        }
        if let Some(log) = &self.usage {
            log.check_budget(p).await?;
        }
        let name = route.provider.name().to_owned();
        // The provider's own client: its connections, timeouts, retries and circuit breaker.
        // An Anthropic provider (no embeddings API) is refused here.
        let embedder = RemoteEmbedder::over(
            route.provider.clone(),
            route.upstream_model(),
            RemoteOptions::default(),
        )
        .map_err(|e| Error::invalid(format!("cannot embed with provider {name}: {e}")))?;
        let answer = embedder.embed_counted(&inputs).await;
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
                ..Usage::default()
            };
            log.record(
                p,
                &route.model,
                answer.is_ok().then_some(usage),
                answer.is_err(),
            );
        }
        let counted = answer.map_err(|e| match e {
            // As for chat: the provider's 429 stays a 429, with its advice on when to retry.
            EmbedError::RateLimited { retry_after, .. } => Error::RateLimited {
                retry_after_secs: retry_after.map_or(1, |d| d.as_secs().max(1)),
            },
            e => Error::Upstream(format!("provider {name}: {e}")),
        })?;
        Ok(Embeddings {
            model: route.model,
            vectors: counted.vectors,
            prompt_tokens,
        })
    }
}
