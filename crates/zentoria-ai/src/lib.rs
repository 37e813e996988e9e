//! The AI module: named model providers, routing model names to them, and chat.
//!
//! A model is addressed as `provider/model` (`ollama/llama3.2:3b`, `openai/gpt-4o-mini`), by
//! an alias from the configuration, or not at all (the default model). Providers come from the
//! configuration: a built-in `ollama` on its default address, `openai` and `anthropic` when
//! their keys (or URL) are set, and any number of named instances. Every front end — the
//! OpenAI-compatible gateway today; chat sessions and AI commands next — calls these
//! functions, which check the caller's scope.

pub mod chat;
pub mod command;
pub mod embeddings;
mod meters;
pub mod providers;
pub mod screen;
pub mod usage;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use serde::Serialize;
use zentoria_core::{Error, Result, Scope};
use zentoria_platform::Principal;
use zentoria_providers::ProviderOptions;
pub use zentoria_providers::{
    CacheMark, CachePoint, CacheTtl, ChatRequest, ChatResponse, FinishReason, Image, ImageDetail,
    ImageSource, Message, ModelInfo, Provider, ProviderError, ProviderKind, RequestIds,
    ResponseFormat, Role, StreamEvent, ThinkingBlock, ToolCall, ToolChoice, ToolSpec, Usage,
};

pub use zentoria_providers::json;

pub use chat::{Chat, ChatSettings, ScreeningMode};
pub use command::{CommandSettings, Commands};

/// One provider instance to create.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AiSettings {
    pub providers: Vec<ProviderSettings>,
    /// `provider/model` or an alias; `None`: requests must name a model.
    pub default_model: Option<String>,
    /// alias → `provider/model`.
    pub aliases: BTreeMap<String, String>,
    /// model (as asked, or `provider/model`) → the models to try, in order, when it cannot
    /// be reached (connection failures, timeouts, 429, 5xx, an open circuit).
    pub fallbacks: BTreeMap<String, Vec<String>>,
    pub options: ProviderOptions,
}

/// A model as the API lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ModelEntry {
    /// `provider/model`: what to send as `model`.
    pub id: String,
    pub provider: String,
    pub owned_by: Option<String>,
}

/// The models every reachable provider lists, and the providers that could not be asked.
#[derive(Debug, Clone, Serialize)]
pub struct ModelList {
    pub models: Vec<ModelEntry>,
    /// `provider: reason` for each provider whose list failed.
    pub unavailable: Vec<String>,
}

/// Where a model name leads.
#[derive(Debug, Clone)]
pub struct Route {
    /// The provider instance.
    pub provider: std::sync::Arc<Provider>,
    /// `provider/model`, as answers report it.
    pub model: String,
    /// Where the provider's own name for the model starts in `model`.
    split: usize,
    /// The alias the caller gave, when it gave one instead of `provider/model`.
    alias: Option<String>,
    /// The model's Prometheus series.
    meters: std::sync::Arc<meters::ModelMeters>,
}

impl Route {
    /// The name the provider knows the model by.
    pub fn upstream_model(&self) -> &str {
        &self.model[self.split..]
    }

    /// The name as the caller gave it (an alias, or `provider/model`).
    pub fn asked(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.model)
    }
}

/// The AI service. Cheap to clone.
#[derive(Clone)]
pub struct Ai {
    registry: std::sync::Arc<providers::Registry>,
    default_model: Option<String>,
    aliases: std::sync::Arc<BTreeMap<String, String>>,
    /// model → models to try, in order, when it cannot be reached.
    fallbacks: std::sync::Arc<BTreeMap<String, Vec<String>>>,
    usage: Option<usage::UsageLog>,
    meters: std::sync::Arc<meters::Meters>,
}

impl Ai {
    pub fn new(settings: AiSettings) -> Result<Ai> {
        Ok(Ai {
            registry: std::sync::Arc::new(providers::Registry::new(
                settings.providers,
                settings.options,
            )?),
            default_model: settings.default_model.filter(|m| !m.is_empty()),
            aliases: std::sync::Arc::new(settings.aliases),
            fallbacks: std::sync::Arc::new(settings.fallbacks),
            usage: None,
            meters: Default::default(),
        })
    }

    /// Counts every request in `usage` and enforces keys' token budgets from it.
    pub fn with_usage(mut self, usage: usage::UsageLog) -> Ai {
        self.usage = Some(usage);
        self
    }

    pub fn usage(&self) -> Option<&usage::UsageLog> {
        self.usage.as_ref()
    }

    /// The configured provider instances, by name.
    pub fn provider_names(&self) -> Vec<String> {
        self.registry.names()
    }

    /// Resolves a model name (or the default when `None`).
    pub fn route(&self, model: Option<&str>) -> Result<Route> {
        let named = match model.map(str::trim).filter(|m| !m.is_empty()) {
            Some(m) => m,
            None => self.default_model.as_deref().ok_or_else(|| {
                Error::invalid(
                    "no model given and no default configured (ai.default_model, \
                     ZENTORIA_DEFAULT_MODEL); name one as provider/model",
                )
            })?,
        };
        let (full, alias) = match self.aliases.get(named) {
            Some(target) => (target.as_str(), Some(named.to_owned())),
            None => (named, None),
        };
        let Some((provider_name, upstream)) = full.split_once('/') else {
            return Err(Error::invalid(format!(
                "unknown model {full:?}: name it as provider/model (providers: {}) or use an alias",
                self.provider_names().join(", ")
            )));
        };
        let provider = self.registry.get(provider_name).ok_or_else(|| {
            Error::invalid(format!(
                "no provider named {provider_name:?} (configured: {})",
                self.provider_names().join(", ")
            ))
        })?;
        if upstream.is_empty() {
            return Err(Error::invalid(format!("{full:?} names no model")));
        }
        Ok(Route {
            meters: self.meters.of(provider_name, full),
            provider,
            split: provider_name.len() + 1,
            model: full.to_owned(),
            alias,
        })
    }

    /// Every provider's models, asked in parallel; a provider that fails is reported, not
    /// fatal.
    pub async fn models(&self, p: &Principal) -> Result<ModelList> {
        p.require(Scope::Chat)?;
        let asks = self
            .registry
            .all()
            .into_iter()
            .map(|(name, provider)| async move { (name, provider.models().await) });
        let mut models = Vec::new();
        let mut unavailable = Vec::new();
        for (name, answer) in join_all(asks).await {
            match answer {
                Ok(list) => models.extend(list.into_iter().map(|m| ModelEntry {
                    id: format!("{name}/{}", m.id),
                    provider: name.clone(),
                    owned_by: m.owned_by,
                })),
                Err(e) => {
                    tracing::debug!(provider = %name, error = %e, "listing models failed");
                    unavailable.push(e.to_string());
                }
            }
        }
        // A key limited to some models sees only those.
        models.retain(|m| p.limits.allows_model(&m.id, &m.id));
        for (alias, target) in self.aliases.iter() {
            if !p.limits.allows_model(alias, target) {
                continue;
            }
            if let Some((provider, _)) = target.split_once('/') {
                models.push(ModelEntry {
                    id: alias.clone(),
                    provider: provider.to_owned(),
                    owned_by: Some(format!("alias of {target}")),
                });
            }
        }
        Ok(ModelList {
            models,
            unavailable,
        })
    }

    /// A whole answer. `request.model` is ignored: the route says which model answers.
    pub async fn chat(
        &self,
        p: &Principal,
        route: &Route,
        request: ChatRequest,
    ) -> Result<ChatResponse> {
        self.chat_with_scope(p, route, request, Scope::Chat).await
    }

    /// Like [`Ai::chat`], for a capability whose own scope grants the model's use (AI
    /// commands need `ai:command`, not `chat`).
    pub(crate) async fn chat_with_scope(
        &self,
        p: &Principal,
        route: &Route,
        request: ChatRequest,
        scope: Scope,
    ) -> Result<ChatResponse> {
        let request = self.admit(p, route, request, scope).await?;
        let candidates = self.candidates(p, route);
        let mut last = None;
        // Time spent on models that could not answer counts as waiting on providers.
        let mut waited = Duration::ZERO;
        let mut request = Some(request);
        for (i, r) in candidates.iter().enumerate() {
            let mut request = for_candidate(&mut request, i + 1 == candidates.len());
            set_model(&mut request, r);
            let started = Instant::now();
            let answer = r.provider.chat(&request).await;
            let usage = answer.as_ref().ok().and_then(|a| a.usage);
            record(r, started, usage);
            if let Some(log) = &self.usage {
                log.record(p, &r.model, usage, answer.is_err());
            }
            match answer {
                Ok(mut answer) => {
                    answer.model = r.model.clone();
                    answer.upstream_wait += waited;
                    return Ok(answer);
                }
                Err(e) if falls_back(&e) && i + 1 < candidates.len() => {
                    fell_back(r, candidates.get(i + 1), &e);
                    waited += started.elapsed();
                    last = Some(e);
                }
                Err(e) => return Err(upstream_error(e)),
            }
        }
        Err(last.map_or_else(|| Error::bug("no model to ask"), upstream_error))
    }

    /// A streamed answer; an `Err` here means nothing was streamed yet. The stream records
    /// time to first token, tokens and duration as it passes. When the model cannot be
    /// reached, its fallbacks are tried before anything is streamed.
    pub async fn chat_stream(
        &self,
        p: &Principal,
        route: &Route,
        request: ChatRequest,
    ) -> Result<AnswerStream> {
        let request = self.admit(p, route, request, Scope::Chat).await?;
        let candidates = self.candidates(p, route);
        let mut waited = Duration::ZERO;
        let mut request = Some(request);
        for (i, r) in candidates.iter().enumerate() {
            let mut request = for_candidate(&mut request, i + 1 == candidates.len());
            set_model(&mut request, r);
            let started = Instant::now();
            let stream = match r.provider.chat_stream(&request).await {
                Ok(s) => s,
                Err(e) => {
                    if let Some(log) = &self.usage {
                        log.record(p, &r.model, None, true);
                    }
                    if falls_back(&e) && i + 1 < candidates.len() {
                        fell_back(r, candidates.get(i + 1), &e);
                        waited += started.elapsed();
                        continue;
                    }
                    return Err(upstream_error(e));
                }
            };
            let mut meter = Meter {
                route: r.clone(),
                principal: p.clone(),
                log: self.usage.clone(),
                started,
                first: true,
                usage: None,
                ended: false,
            };
            return Ok(AnswerStream {
                model: r.model.clone(),
                upstream_wait: waited + stream.upstream_wait(),
                events: stream.inspect(move |event| meter.observe(event)).boxed(),
            });
        }
        Err(Error::bug("no model to ask"))
    }

    /// The route, then its fallbacks (`ai.fallbacks`) that the caller may use.
    fn candidates<'a>(&self, p: &Principal, route: &'a Route) -> Candidates<'a> {
        let list = self
            .fallbacks
            .get(route.asked())
            .or_else(|| self.fallbacks.get(&route.model));
        let mut fallbacks = Vec::new();
        for name in list.into_iter().flatten() {
            match self.route(Some(name)) {
                Ok(r) if p.limits.allows_model(r.asked(), &r.model) => fallbacks.push(r),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(fallback = %name, error = %e, "a fallback model does not route")
                }
            }
        }
        Candidates { route, fallbacks }
    }
}

/// A route and its fallbacks, in the order they are asked.
struct Candidates<'a> {
    route: &'a Route,
    fallbacks: Vec<Route>,
}

impl Candidates<'_> {
    fn len(&self) -> usize {
        1 + self.fallbacks.len()
    }

    fn get(&self, i: usize) -> &Route {
        match i {
            0 => self.route,
            i => &self.fallbacks[i - 1],
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Route> {
        std::iter::once(self.route).chain(&self.fallbacks)
    }
}

/// A streamed answer and the model giving it (a fallback's, when the model could not be
/// reached).
pub struct AnswerStream {
    pub model: String,
    /// How long opening it waited on providers, until its first event was ready.
    pub upstream_wait: Duration,
    pub events: EventStream,
}

/// Names the model in `request` the way `route`'s provider knows it, in the string it has.
fn set_model(request: &mut ChatRequest, route: &Route) {
    request.model.clear();
    request.model.push_str(route.upstream_model());
}

/// The request for one candidate of a fallback chain: the last takes it, the others a copy.
fn for_candidate(request: &mut Option<ChatRequest>, last: bool) -> ChatRequest {
    if last {
        request
            .take()
            .expect("only the last candidate takes the request")
    } else {
        request
            .clone()
            .expect("only the last candidate takes the request")
    }
}

/// Whether a failure says the model is unavailable (so another may answer), rather than that
/// the request is wrong.
fn falls_back(e: &ProviderError) -> bool {
    e.is_retryable()
        || matches!(
            e,
            ProviderError::CircuitOpen { .. } | ProviderError::Timeout { .. }
        )
}

fn fell_back(from: &Route, to: &Route, e: &ProviderError) {
    tracing::warn!(from = %from.model, to = %to.model, error = %e, "model unavailable; falling back");
    metrics::counter!("zentoria_ai_fallbacks_total", "from" => from.model.clone(), "to" => to.model.clone())
        .increment(1);
}

/// Normalized events of a streamed answer.
pub type EventStream =
    futures_util::stream::BoxStream<'static, std::result::Result<StreamEvent, ProviderError>>;

impl Ai {
    /// Checks the caller (scope, the key's models and budget) and the request.
    async fn admit(
        &self,
        p: &Principal,
        route: &Route,
        request: ChatRequest,
        scope: Scope,
    ) -> Result<ChatRequest> {
        p.require(scope)?;
        if !p.limits.allows_model(route.asked(), &route.model) {
            return Err(Error::forbidden(format!(
                "this API key may not use the model {:?}; it may use {}",
                route.asked(),
                p.limits.models.as_deref().unwrap_or_default().join(", ")
            )));
        }
        if request.messages.is_empty() {
            return Err(Error::invalid("messages must not be empty"));
        }
        check_controls(&request)?;
        if let Some(log) = &self.usage {
            log.check_budget(p).await?;
        }
        Ok(request)
    }
}

/// What a request asks of the model beyond its messages must hold together, whoever sends
/// it: images come with user turns and are data: URLs or web addresses, a tool call asked
/// for needs tools, a named one must be among them, penalties are within OpenAI's range
/// (which Ollama shares).
fn check_controls(request: &ChatRequest) -> Result<()> {
    check_images(&request.messages)?;
    match &request.tool_choice {
        Some(ToolChoice::Required | ToolChoice::Tool(_)) if request.tools.is_empty() => {
            return Err(Error::invalid(
                "tool_choice asks for a tool call, but the request offers no tools",
            ));
        }
        Some(ToolChoice::Tool(name)) if !request.tools.iter().any(|t| &t.name == name) => {
            return Err(Error::invalid(format!(
                "tool_choice names the function {name:?}, which is not among the tools"
            )));
        }
        _ => {}
    }
    for (name, penalty) in [
        ("presence_penalty", request.presence_penalty),
        ("frequency_penalty", request.frequency_penalty),
    ] {
        if penalty.is_some_and(|p| !(-2.0..=2.0).contains(&p)) {
            return Err(Error::invalid(format!(
                "{name} must be between -2.0 and 2.0"
            )));
        }
    }
    check_reasoning_effort(request.reasoning_effort.as_deref())
}

/// Images are what users show a model, as OpenAI and Anthropic allow them: in user turns only.
fn check_images(messages: &[Message]) -> Result<()> {
    for (i, m) in messages.iter().enumerate() {
        if m.images.is_empty() {
            continue;
        }
        if m.role != Role::User {
            return Err(Error::invalid(format!(
                "messages[{i}]: images may be given in user messages only, not in a {} message",
                m.role.as_str()
            )));
        }
        for (j, image) in m.images.iter().enumerate() {
            image
                .source()
                .map_err(|why| Error::invalid(format!("messages[{i}]: image {j}: {why}")))?;
        }
    }
    Ok(())
}

/// Which levels a provider takes is the provider's to say; that a level is a short lowercase
/// word is every request's rule.
pub(crate) fn check_reasoning_effort(effort: Option<&str>) -> Result<()> {
    match effort {
        Some(effort)
            if effort.is_empty()
                || effort.len() > 32
                || !effort.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            Err(Error::invalid(
                "reasoning_effort must be a level such as \"low\", \"medium\" or \"high\"",
            ))
        }
        _ => Ok(()),
    }
}

/// Measures a streamed answer as its events pass, and counts it once: when it ends, fails,
/// or is dropped unfinished (the client went away).
struct Meter {
    route: Route,
    principal: Principal,
    log: Option<usage::UsageLog>,
    started: Instant,
    first: bool,
    usage: Option<Usage>,
    ended: bool,
}

impl Meter {
    fn observe(&mut self, event: &std::result::Result<StreamEvent, ProviderError>) {
        match event {
            Ok(
                StreamEvent::Delta { .. }
                | StreamEvent::Reasoning { .. }
                | StreamEvent::ToolCall(_),
            ) if self.first => {
                self.first = false;
                self.route
                    .meters
                    .time_to_first_token_seconds
                    .record(self.started.elapsed().as_secs_f64());
            }
            Ok(StreamEvent::Usage(u)) => {
                self.usage = Some(*u);
                record_tokens(&self.route, *u);
            }
            Ok(StreamEvent::Done { .. }) => {
                record(&self.route, self.started, None);
                self.end(false);
            }
            Err(_) => self.end(true),
            _ => {}
        }
    }

    fn end(&mut self, failed: bool) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        if let Some(log) = &self.log {
            log.record(&self.principal, &self.route.model, self.usage, failed);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.end(false);
    }
}

fn record(route: &Route, started: Instant, usage: Option<Usage>) {
    route
        .meters
        .request_seconds
        .record(started.elapsed().as_secs_f64());
    if let Some(u) = usage {
        record_tokens(route, u);
    }
}

fn record_tokens(route: &Route, u: Usage) {
    route.meters.prompt_tokens.increment(u.prompt_tokens);
    route
        .meters
        .completion_tokens
        .increment(u.completion_tokens);
    route.meters.cached_tokens.increment(u.cached_tokens);
    route.meters.reasoning_tokens.increment(u.reasoning_tokens);
}

/// A provider failure as the caller sees it: rate limits stay rate limits, what the provider
/// cannot do is the request's fault (400); everything else is a 502 naming the provider and
/// quoting it.
pub fn upstream_error(e: ProviderError) -> Error {
    match &e {
        ProviderError::RateLimited { .. } => Error::RateLimited {
            retry_after_secs: e.retry_after().map_or(1, |d| d.as_secs().max(1)),
        },
        ProviderError::Unsupported { .. } => Error::invalid(e.to_string()),
        _ => Error::Upstream(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ai() -> Ai {
        Ai::new(AiSettings {
            providers: vec![
                ProviderSettings {
                    name: "ollama".into(),
                    kind: ProviderKind::Ollama,
                    base_url: None,
                    api_key: None,
                },
                ProviderSettings {
                    name: "work".into(),
                    kind: ProviderKind::OpenAi,
                    base_url: Some("http://127.0.0.1:9".into()),
                    api_key: Some("sk-x".into()),
                },
            ],
            default_model: Some("fast".into()),
            aliases: [("fast".to_owned(), "ollama/llama3.2:3b".to_owned())].into(),
            fallbacks: Default::default(),
            options: ProviderOptions::default(),
        })
        .unwrap()
    }

    #[test]
    fn models_route_by_provider_alias_or_default() {
        let ai = ai();
        let r = ai.route(Some("work/gpt-4o-mini")).unwrap();
        assert_eq!(r.provider.name(), "work");
        assert_eq!(r.upstream_model(), "gpt-4o-mini");
        let r = ai.route(Some("ollama/library/qwen:7b")).unwrap();
        assert_eq!(
            r.upstream_model(),
            "library/qwen:7b",
            "only the first / splits"
        );
        let r = ai.route(Some("fast")).unwrap();
        assert_eq!(
            (r.provider.name(), r.model.as_str()),
            ("ollama", "ollama/llama3.2:3b")
        );
        let r = ai.route(None).unwrap();
        assert_eq!(r.model, "ollama/llama3.2:3b");
        for bad in ["gpt-4o", "nobody/model", "work/"] {
            let e = ai.route(Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains("provider") || e.contains("names no model"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn tool_choices_and_penalties_must_hold_together() {
        let says = |req: &ChatRequest| check_controls(req).unwrap_err().to_string();
        let tool = ToolSpec {
            name: "f".into(),
            description: String::new(),
            parameters: serde_json::json!({"type": "object"}),
        };
        let mut req = ChatRequest::new("m", vec![Message::user("hi")]);
        assert!(check_controls(&req).is_ok());
        req.presence_penalty = Some(2.5);
        assert!(says(&req).contains("presence_penalty must be between"));
        req.presence_penalty = None;
        req.frequency_penalty = Some(-3.0);
        assert!(says(&req).contains("frequency_penalty must be between"));
        req.frequency_penalty = Some(-2.0);
        req.tool_choice = Some(ToolChoice::Required);
        assert!(says(&req).contains("offers no tools"));
        req.tool_choice = Some(ToolChoice::None);
        assert!(check_controls(&req).is_ok(), "none needs no tools");
        req.tools = vec![tool];
        req.tool_choice = Some(ToolChoice::Tool("g".into()));
        assert!(says(&req).contains("\"g\", which is not among the tools"));
        req.tool_choice = Some(ToolChoice::Tool("f".into()));
        assert!(check_controls(&req).is_ok());
        for effort in ["", "High", "low; drop", &"x".repeat(33)] {
            req.reasoning_effort = Some(effort.to_owned());
            assert!(
                says(&req).contains("reasoning_effort must be"),
                "{effort:?}"
            );
        }
        req.reasoning_effort = Some("x_high".into());
        assert!(check_controls(&req).is_ok());
    }
}
