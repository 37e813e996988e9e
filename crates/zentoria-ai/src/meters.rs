//! The Prometheus series of each model, registered once and kept: building a labelled key and
//! looking it up in the registry for every request and token count showed in profiles of the
//! gateway.

use std::sync::Arc;

use metrics::{Counter, Histogram};
use zentoria_core::cache::OnceMap;

/// One model's series (`provider/model`, labelled with both).
pub(crate) struct ModelMeters {
    pub request_seconds: Histogram,
    pub time_to_first_token_seconds: Histogram,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    /// Of the prompt tokens, those read from the provider's cache.
    pub cached_tokens: Counter,
    /// Of the completion tokens, those spent reasoning.
    pub reasoning_tokens: Counter,
}

impl std::fmt::Debug for ModelMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelMeters")
    }
}

/// Every model's series, made when the model is first asked for.
#[derive(Default)]
pub(crate) struct Meters {
    by_model: OnceMap<String, Arc<ModelMeters>>,
}

impl Meters {
    pub fn of(&self, provider: &str, model: &str) -> Arc<ModelMeters> {
        self.by_model.get_or_make(model, || {
            Arc::new(ModelMeters {
            request_seconds: metrics::histogram!("zentoria_ai_request_seconds",
                "provider" => provider.to_owned(), "model" => model.to_owned()),
            time_to_first_token_seconds: metrics::histogram!("zentoria_ai_time_to_first_token_seconds",
                "provider" => provider.to_owned(), "model" => model.to_owned()),
            prompt_tokens: metrics::counter!("zentoria_ai_tokens_total",
                "provider" => provider.to_owned(), "model" => model.to_owned(), "kind" => "prompt"),
            completion_tokens: metrics::counter!("zentoria_ai_tokens_total",
                "provider" => provider.to_owned(), "model" => model.to_owned(), "kind" => "completion"),
            cached_tokens: metrics::counter!("zentoria_ai_tokens_total",
                "provider" => provider.to_owned(), "model" => model.to_owned(), "kind" => "cached"),
            reasoning_tokens: metrics::counter!("zentoria_ai_tokens_total",
                "provider" => provider.to_owned(), "model" => model.to_owned(), "kind" => "reasoning"),
            })
        })
    }
}
