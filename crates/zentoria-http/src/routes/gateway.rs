//! The OpenAI-compatible gateway: `/v1/models` and `/v1/chat/completions` in OpenAI's wire
//! format, authenticated with Zentoria keys (scope `chat`) and routed to the configured
//! providers (`provider/model`). Streams pass through event by event; when the client goes
//! away the upstream request is dropped with the stream.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zentoria_ai::{
    CacheMark, CachePoint, CacheTtl, ChatRequest, FinishReason, Image, ImageDetail, Message,
    RequestIds, ResponseFormat, Role, StreamEvent, ThinkingBlock, ToolCall, ToolChoice, ToolSpec,
    Usage,
};
use zentoria_core::{Error, Scope};
use zentoria_platform::Principal;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Authed;
use crate::middleware::Arrived;

/// Largest chat request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The models of every configured provider, as `provider/model`, plus aliases.
#[utoipa::path(get, path = "/v1/models", tag = "gateway",
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 200, description = "OpenAI's model list: `{object: \"list\", data: [{id, object: \"model\", created, owned_by}]}`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn models(State(state): State<AppState>, auth: Authed) -> ApiResult<Json<Value>> {
    let list = state.ai.models(&auth).await?;
    let data: Vec<Value> = list.models.iter().map(model_object).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// One model of `GET /v1/models` by its id, as OpenAI's SDKs fetch it (`client.models.retrieve`).
#[utoipa::path(get, path = "/v1/models/{model}", tag = "gateway",
    params(("model" = String, Path, description = "`provider/model` (its slashes as they are or as `%2F`) or an alias")),
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 200, description = "OpenAI's model object: `{id, object: \"model\", created, owned_by}`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn model(
    State(state): State<AppState>,
    auth: Authed,
    Path(model): Path<String>,
) -> ApiResult<Json<Value>> {
    find_model(&state, &auth, &model).await
}

/// [`model`] for an id whose slashes came as they are (`/v1/models/openai/gpt-4o-mini`).
pub async fn model_with_slashes(
    State(state): State<AppState>,
    auth: Authed,
    Path((provider, rest)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    find_model(&state, &auth, &format!("{provider}/{rest}")).await
}

/// The path [`model_with_slashes`] answers on.
pub(crate) const MODEL_WITH_SLASHES: &str = "/v1/models/{provider}/{*rest}";

async fn find_model(state: &AppState, auth: &Principal, id: &str) -> ApiResult<Json<Value>> {
    let list = state.ai.models(auth).await?;
    match list.models.iter().find(|m| m.id == id) {
        Some(m) => Ok(Json(model_object(m))),
        None if list.unavailable.is_empty() => Err(Error::not_found(format!(
            "no model {id:?} among the configured providers' models and aliases"
        ))
        .into()),
        None => Err(Error::not_found(format!(
            "no model {id:?} among the models listed; these providers could not be asked: {}",
            list.unavailable.join("; ")
        ))
        .into()),
    }
}

fn model_object(m: &zentoria_ai::ModelEntry) -> Value {
    json!({
        "id": m.id,
        "object": "model",
        "created": 0,
        "owned_by": m.owned_by.clone().unwrap_or_else(|| m.provider.clone()),
    })
}

/// Chat completions in OpenAI's format, streamed as server-sent events with `"stream": true`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "gateway",
    request_body(content = Object, description = "OpenAI's chat completion request; `model` is `provider/model` or an alias"),
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 200, description = "A `chat.completion` object, or `chat.completion.chunk` events ending with `[DONE]`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn chat_completions(
    State(state): State<AppState>,
    arrived: Option<Extension<Arrived>>,
    auth: Authed,
    body: Body,
) -> ApiResult<Response> {
    let arrived = arrived.map_or_else(Instant::now, |a| a.0.0);
    complete(&state, arrived, &auth, body).await
}

/// The path of [`chat_completions`].
pub(crate) const CHAT_COMPLETIONS: &str = "/v1/chat/completions";

/// [`chat_completions`] for a request that has been through the request context and
/// authentication but not the router (see [`crate::Served`]), which hand it when it arrived
/// and its principal (none when it brought no credential).
pub(crate) async fn chat_completions_unrouted(
    state: &AppState,
    req: Request,
    arrived: Instant,
    principal: Option<Arc<Principal>>,
) -> Response {
    let answer = match principal {
        Some(principal) => complete(state, arrived, &principal, req.into_body()).await,
        None => Err(crate::extract::unauthenticated()),
    };
    answer.into_response()
}

async fn complete(
    state: &AppState,
    arrived: Instant,
    auth: &Principal,
    body: Body,
) -> ApiResult<Response> {
    // Before reading the body: a key without the scope learns nothing about the request.
    auth.require(Scope::Chat)?;
    let body = crate::extract::body_bytes(body, MAX_BODY).await?;
    let parsed = parse_request(&body)?;
    let route = state.ai.route(parsed.model.as_deref())?;
    let id = completion_id();
    let created = zentoria_core::time::now_ms() / 1000;
    if !parsed.stream {
        // Boxed, as below: held inline, the provider call's future (about 3 KiB) made every
        // layer above it as much larger, and each layer's future is copied once when it is
        // made.
        let answer = Box::pin(state.ai.chat(auth, &route, parsed.request)).await?;
        let mut response = (
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            completion(&id, created, &answer),
        )
            .into_response();
        report_overhead(
            &mut response,
            arrived,
            answer.upstream_wait,
            &answer.model,
            false,
        );
        return Ok(response);
    }
    let upstream = Box::pin(state.ai.chat_stream(auth, &route, parsed.request)).await?;
    let chunks = chunk_stream(
        upstream.events,
        &id,
        created,
        &upstream.model,
        parsed.include_usage,
    );
    let mut response = Response::new(Body::from_stream(chunks));
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    report_overhead(
        &mut response,
        arrived,
        upstream.upstream_wait,
        &upstream.model,
        true,
    );
    Ok(response)
}

/// A completion's id, `chatcmpl-` and 32 random hex digits as OpenAI's are random: unique,
/// not ordered (a time-ordered UUID takes a process-wide lock and the clock; with the
/// `format!` around it, it cost more than reading the upstream's answer head).
fn completion_id() -> String {
    let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
    let hex = uuid::Uuid::new_v4().simple().encode_lower(&mut buf);
    let mut id = String::with_capacity(9 + hex.len());
    id.push_str("chatcmpl-");
    id.push_str(hex);
    id
}

/// The histogram of the gateway's own time per chat completion.
pub(crate) const OVERHEAD_METRIC: &str = "zentoria_gateway_overhead_seconds";

/// The response header carrying it, in milliseconds (LiteLLM's `x-litellm-overhead-duration-ms`).
pub const OVERHEAD_HEADER: &str = "x-zentoria-overhead-ms";

/// [`OVERHEAD_HEADER`] as a header name, made once (parsing the name cost more than the rest of
/// writing the header).
const OVERHEAD_NAME: HeaderName = HeaderName::from_static(OVERHEAD_HEADER);

/// Records the gateway's own time on a chat completion — from the request's arrival until its
/// response head is ready, less the time spent waiting on providers (for a stream: until its
/// first event) — in [`OVERHEAD_HEADER`] and [`OVERHEAD_METRIC`]. It covers authentication,
/// rate limiting, budget checks, parsing and translating both ways; not the network to the
/// client, nor a stream's later chunks.
fn report_overhead(
    response: &mut Response,
    arrived: Instant,
    upstream_wait: Duration,
    model: &str,
    stream: bool,
) {
    let own = arrived.elapsed().saturating_sub(upstream_wait);
    crate::meters::gateway_overhead(model)[usize::from(stream)].record(own.as_secs_f64());
    if let Ok(value) = HeaderValue::from_bytes(&millis(own)) {
        response.headers_mut().insert(OVERHEAD_NAME, value);
    }
}

/// `d` in milliseconds to the microsecond (`12.345`), written digit by digit: a float
/// formatted with a precision takes the slow exact path, and `format!` of the integers cost
/// more than the rest of reporting the overhead.
fn millis(d: Duration) -> Vec<u8> {
    let us = d.as_micros();
    let mut out = Vec::with_capacity(24);
    let mut ms = us / 1000;
    loop {
        out.push(b'0' + (ms % 10) as u8);
        ms /= 10;
        if ms == 0 {
            break;
        }
    }
    out.reverse();
    let frac = (us % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    out
}

/// Embeddings in OpenAI's format, from an Ollama or OpenAI-compatible provider.
#[utoipa::path(post, path = "/v1/embeddings", tag = "gateway",
    request_body(content = Object, description = "OpenAI's embeddings request: `model` (`provider/model` or an alias), `input` (a string or strings), `encoding_format` (`float` or `base64`)"),
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 200, description = "`{object: \"list\", data: [{object: \"embedding\", index, embedding}], model, usage}`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn embeddings(
    State(state): State<AppState>,
    auth: Authed,
    body: Body,
) -> ApiResult<Json<Value>> {
    auth.require(Scope::Chat)?;
    let req: Value = crate::extract::json_body(body, MAX_BODY).await?;
    let obj = req
        .as_object()
        .ok_or_else(|| Error::invalid("the body must be a JSON object"))?;
    let inputs: Vec<String> = match obj.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::Array(_)) => {
            return Err(Error::invalid(
                "input must be a string or an array of strings (token arrays are not supported)",
            )
            .into());
        }
        _ => return Err(Error::invalid("input must be a string or an array of strings").into()),
    };
    let base64 = match obj.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(Error::invalid(format!(
                "encoding_format {other:?} is not float or base64"
            ))
            .into());
        }
    };
    if obj.get("dimensions").is_some_and(|d| !d.is_null()) {
        return Err(Error::invalid(
            "dimensions is not supported: the model's own dimension is returned",
        )
        .into());
    }
    let model = obj.get("model").and_then(Value::as_str);
    let e = state.ai.embed(&auth, model, inputs).await?;
    let data: Vec<Value> = e
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(zentoria_core::crypto::base64_encode(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": e.model,
        "usage": {"prompt_tokens": e.prompt_tokens, "total_tokens": e.prompt_tokens},
    })))
}

struct Parsed {
    model: Option<String>,
    request: ChatRequest,
    stream: bool,
    include_usage: bool,
}

/// OpenAI's chat completion request, as far as the gateway reads it; other fields are ignored.
/// Decoded straight into typed fields: read as a `serde_json::Value` first, every message was
/// a map of owned keys and its text was then copied once more.
#[derive(Deserialize)]
struct WireRequest {
    model: Option<String>,
    messages: Vec<WireMessage>,
    tools: Option<Vec<WireTool>>,
    stop: Option<Stop>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    /// Not OpenAI's, but what Ollama, Anthropic, vLLM and llama.cpp take (as LiteLLM does).
    top_k: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<WireStreamOptions>,
    n: Option<u64>,
    /// Read as a value and checked by [`tool_choice`], for errors that say what is wrong.
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    /// Read as a value and checked by [`response_format`].
    response_format: Option<Value>,
    seed: Option<i64>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    reasoning_effort: Option<String>,
    /// Refused when asked for: the normalized answer carries no log probabilities.
    logprobs: Option<bool>,
    top_logprobs: Option<u64>,
    /// Refused unless empty: token ids differ from one provider's models to another's.
    logit_bias: Option<serde_json::Map<String, Value>>,
    user: Option<String>,
    safety_identifier: Option<String>,
    prompt_cache_key: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    store: Option<bool>,
    service_tier: Option<String>,
}

#[derive(Deserialize)]
struct WireStreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum WireRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Deserialize)]
struct WireMessage {
    role: WireRole,
    #[serde(default)]
    content: Content,
    tool_calls: Option<Vec<WireCall>>,
    tool_call_id: Option<String>,
    /// An earlier answer's reasoning, as this gateway (and DeepSeek) sends it…
    reasoning_content: Option<String>,
    /// …or as Ollama's and OpenRouter's OpenAI-compatible APIs do.
    reasoning: Option<String>,
    /// An earlier answer's signed thinking blocks (Claude's), sent back as they came.
    thinking_blocks: Option<Vec<ThinkingBlock>>,
    /// A cache breakpoint on the whole message (checked by [`cache_control`]).
    cache_control: Option<Value>,
}

#[derive(Deserialize)]
struct WireCall {
    id: Option<String>,
    function: WireCalled,
}

#[derive(Deserialize)]
struct WireCalled {
    name: Option<String>,
    /// A JSON object, as a string.
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireTool {
    function: WireToolFunction,
}

#[derive(Deserialize)]
struct WireToolFunction {
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
}

/// A message's `content`: a string, `null`, or an array of text and image parts (other kinds
/// are refused). The text parts are joined; each image keeps its place among them.
#[derive(Default)]
struct Content {
    text: String,
    images: Vec<Image>,
    /// The last `cache_control` of a part (Anthropic's prompt caching, as LiteLLM takes it),
    /// placed after that part.
    cache: Option<CacheMark>,
}

/// One part of an array `content`.
#[derive(Deserialize)]
struct ContentPart {
    r#type: String,
    text: Option<String>,
    /// Read as a value and checked by [`image`], for errors that say what is wrong.
    image_url: Option<Value>,
    /// Read as a value and checked by [`cache_control`].
    cache_control: Option<Value>,
}

/// `cache_control`: `{"type": "ephemeral"}`, with `"ttl"` `"5m"` or `"1h"` if wanted.
fn cache_control(v: &Value) -> Result<CacheTtl, String> {
    let ttl = match v.get("ttl") {
        None | Some(Value::Null) => Some(CacheTtl::Default),
        Some(ttl) => match ttl.as_str() {
            Some("5m") => Some(CacheTtl::FiveMinutes),
            Some("1h") => Some(CacheTtl::OneHour),
            _ => None,
        },
    };
    match (v.get("type").and_then(Value::as_str), ttl) {
        (Some("ephemeral"), Some(ttl)) => Ok(ttl),
        _ => Err(
            "cache_control must be {\"type\": \"ephemeral\"}, with \"ttl\" \"5m\" or \"1h\" if given"
                .into(),
        ),
    }
}

/// `image_url`: `{"url": …, "detail": …}` as OpenAI documents it, or the URL alone as some
/// clients send it. The URL itself is checked with the rest of the request (`Ai::admit`).
fn image(image_url: Option<Value>, at: usize) -> Result<Image, String> {
    let (url, detail) = match image_url {
        Some(Value::String(url)) => (url, None),
        Some(Value::Object(mut o)) => match (o.remove("url"), o.remove("detail")) {
            (Some(Value::String(url)), detail) => (url, detail),
            _ => return Err("an image_url part's image_url needs a url string".into()),
        },
        _ => return Err("an image_url part needs its image_url: {\"url\": …}".into()),
    };
    let detail = match detail.as_ref().map(|d| (d, d.as_str())) {
        None | Some((Value::Null, _)) => None,
        Some((_, Some("auto"))) => Some(ImageDetail::Auto),
        Some((_, Some("low"))) => Some(ImageDetail::Low),
        Some((_, Some("high"))) => Some(ImageDetail::High),
        Some(_) => return Err("image_url.detail must be \"auto\", \"low\" or \"high\"".into()),
    };
    Ok(Image { url, detail, at })
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, null or an array of text and image_url parts")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content {
                    text: v.to_owned(),
                    ..Content::default()
                })
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content {
                    text: v,
                    ..Content::default()
                })
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Content, E> {
                Ok(Content::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Content, A::Error> {
                let mut content = Content::default();
                while let Some(part) = seq.next_element::<ContentPart>()? {
                    let ttl = part
                        .cache_control
                        .as_ref()
                        .map(cache_control)
                        .transpose()
                        .map_err(serde::de::Error::custom)?;
                    match part.r#type.as_str() {
                        "text" => content
                            .text
                            .push_str(part.text.as_deref().unwrap_or_default()),
                        "image_url" => content.images.push(
                            image(part.image_url, content.text.len())
                                .map_err(serde::de::Error::custom)?,
                        ),
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "content parts of type {other:?} are not supported; send text and image_url parts"
                            )));
                        }
                    }
                    if let Some(ttl) = ttl {
                        let after = CachePoint {
                            text: content.text.len(),
                            images: content.images.len(),
                        };
                        content.cache = Some(CacheMark {
                            ttl,
                            at: Some(after),
                        });
                    }
                }
                // A breakpoint after the last part is one at the end of the turn.
                if let Some(mark) = &mut content.cache {
                    let end = (content.text.len(), content.images.len());
                    mark.at = mark.at.filter(|at| (at.text, at.images) != end);
                }
                Ok(content)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// `stop`: one string or several.
struct Stop(Vec<String>);

impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Stop;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Stop, E> {
                Ok(Stop(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Stop, A::Error> {
                let mut all = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    all.push(s);
                }
                Ok(Stop(all))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// OpenAI's request → the normalized one. Unsupported parts are refused, not dropped.
fn parse_request(body: &[u8]) -> Result<Parsed, Error> {
    let req: WireRequest = serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("the body is not a valid request: {e}")))?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(Error::invalid("n must be 1: one choice per request"));
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some() {
        return Err(Error::invalid(
            "logprobs are not supported: answers are normalized across providers, which do not all give them",
        ));
    }
    if req.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(Error::invalid(
            "logit_bias is not supported: token ids differ from one provider's models to another's",
        ));
    }
    // Into a new vector: collected from `req.messages`' own iterator, the messages would be
    // written over the decoded ones and that allocation then shrunk (a reallocation per
    // request, as a decoded message is larger than a message).
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.into_iter().enumerate() {
        messages.push(message(i, m)?);
    }
    let tools = req
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| ToolSpec {
            name: t.function.name,
            description: t.function.description.unwrap_or_default(),
            parameters: t
                .function
                .parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        })
        .collect();
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .map(|n| n.min(u64::from(u32::MAX)) as u32);
    let tool_choice = req.tool_choice.as_ref().map(tool_choice).transpose()?;
    let response_format = req
        .response_format
        .map(|f| response_format(f).map(Box::new))
        .transpose()?;
    let ids = RequestIds {
        user: req.user,
        safety_identifier: req.safety_identifier,
        prompt_cache_key: req.prompt_cache_key,
        metadata: req.metadata,
        store: req.store,
        service_tier: req.service_tier,
    };
    let ids = (ids != RequestIds::default()).then(|| Box::new(ids));
    Ok(Parsed {
        model: req.model,
        request: ChatRequest {
            model: String::new(),
            messages,
            tools,
            temperature: req.temperature.map(|x| x as f32),
            max_tokens,
            top_p: req.top_p.map(|x| x as f32),
            top_k: req.top_k.map(|k| k.min(u64::from(u32::MAX)) as u32),
            stop: req.stop.map(|s| s.0).unwrap_or_default(),
            tool_choice,
            parallel_tool_calls: req.parallel_tool_calls,
            response_format,
            seed: req.seed,
            presence_penalty: req.presence_penalty.map(|x| x as f32),
            frequency_penalty: req.frequency_penalty.map(|x| x as f32),
            reasoning_effort: req.reasoning_effort,
            ids,
        },
        stream: req.stream.unwrap_or(false),
        include_usage: req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    })
}

/// OpenAI's `tool_choice`: `"auto"`, `"none"`, `"required"` or `{"type": "function",
/// "function": {"name": …}}` (whether the request's tools allow it is checked by the AI module,
/// for every caller).
fn tool_choice(value: &Value) -> Result<ToolChoice, Error> {
    Ok(match value {
        Value::String(mode) => match mode.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(Error::invalid(format!(
                    "tool_choice {other:?} is not \"auto\", \"none\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": …}}}}"
                )));
            }
        },
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid("tool_choice.function.name is missing"))?;
            ToolChoice::Tool(name.to_owned())
        }
        Value::Object(o) => {
            return Err(Error::invalid(format!(
                "tool_choice of type {} is not supported; use \"auto\", \"none\", \"required\" or {{\"type\": \"function\", …}}",
                o.get("type").unwrap_or(&Value::Null)
            )));
        }
        _ => {
            return Err(Error::invalid("tool_choice must be a string or an object"));
        }
    })
}

/// OpenAI's `response_format`: `{"type": "text"}`, `{"type": "json_object"}` or
/// `{"type": "json_schema", "json_schema": {"name", "description"?, "schema", "strict"?}}`.
fn response_format(value: Value) -> Result<ResponseFormat, Error> {
    let Value::Object(mut o) = value else {
        return Err(Error::invalid("response_format must be an object"));
    };
    match o.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let Some(Value::Object(mut spec)) = o.remove("json_schema") else {
                return Err(Error::invalid(
                    "response_format.json_schema must be an object with name and schema",
                ));
            };
            let name = match spec.remove("name") {
                Some(Value::String(n))
                    if (1..=64).contains(&n.len())
                        && n.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    n
                }
                _ => {
                    return Err(Error::invalid(
                        "response_format.json_schema.name must be 1 to 64 letters, digits, _ or -",
                    ));
                }
            };
            let schema = match spec.remove("schema") {
                Some(schema @ Value::Object(_)) => schema,
                _ => {
                    return Err(Error::invalid(
                        "response_format.json_schema.schema must be a JSON Schema object",
                    ));
                }
            };
            let description = match spec.remove("description") {
                None | Some(Value::Null) => None,
                Some(Value::String(d)) => Some(d),
                Some(_) => {
                    return Err(Error::invalid(
                        "response_format.json_schema.description must be a string",
                    ));
                }
            };
            let strict = match spec.remove("strict") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(b),
                Some(_) => {
                    return Err(Error::invalid(
                        "response_format.json_schema.strict must be true or false",
                    ));
                }
            };
            Ok(ResponseFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            })
        }
        _ => Err(Error::invalid(
            "response_format.type must be \"text\", \"json_object\" or \"json_schema\"",
        )),
    }
}

fn message(i: usize, m: WireMessage) -> Result<Message, Error> {
    let role = match m.role {
        WireRole::System | WireRole::Developer => Role::System,
        WireRole::User => Role::User,
        WireRole::Assistant => Role::Assistant,
        WireRole::Tool => Role::Tool,
    };
    let tool_calls = m
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let args = c.function.arguments.as_deref().unwrap_or("{}");
            Ok(ToolCall {
                id: c.id.unwrap_or_default(),
                name: c.function.name.unwrap_or_default(),
                arguments: serde_json::from_str(args).map_err(|e| {
                    Error::invalid(format!(
                        "messages[{i}].tool_calls: arguments are not JSON: {e}"
                    ))
                })?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    // What a model thought belongs to the turns it answered.
    let (reasoning, thinking_blocks) = if role == Role::Assistant {
        (
            m.reasoning_content.or(m.reasoning).unwrap_or_default(),
            m.thinking_blocks.unwrap_or_default(),
        )
    } else {
        Default::default()
    };
    let cache = match &m.cache_control {
        Some(v) => {
            Some(CacheMark::end(cache_control(v).map_err(|why| {
                Error::invalid(format!("messages[{i}]: {why}"))
            })?))
        }
        None => m.content.cache,
    };
    Ok(Message {
        role,
        content: m.content.text,
        tool_calls,
        tool_call_id: m.tool_call_id,
        reasoning,
        thinking_blocks,
        images: m.content.images,
        cache,
    })
}

fn finish(r: &FinishReason) -> &str {
    match r {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(other) => other,
    }
}

/// What every object of an answer starts with: `{"id":…,"object":"<object>","created":…,"model":…`
/// (`object` is one of OpenAI's fixed names, written as it is).
fn answer_head(out: &mut Vec<u8>, id: &str, object: &'static str, created: i64, model: &str) {
    out.extend_from_slice(b"{\"id\":");
    write_str(out, id);
    out.extend_from_slice(b",\"object\":\"");
    out.extend_from_slice(object.as_bytes());
    out.extend_from_slice(b"\",\"created\":");
    write_json(out, &created);
    out.extend_from_slice(b",\"model\":");
    write_str(out, model);
}

/// A whole answer, as OpenAI sends it, written straight into its body: the fixed parts as
/// they are, only the answer's own values serialized (serializing a struct of the whole
/// escaped each of its twenty keys on every answer, which showed in profiles).
fn completion(id: &str, created: i64, answer: &zentoria_ai::ChatResponse) -> Vec<u8> {
    let m = &answer.message;
    let mut out = Vec::with_capacity(320 + m.content.len() + answer.model.len());
    answer_head(&mut out, id, "chat.completion", created, &answer.model);
    out.extend_from_slice(
        b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":",
    );
    // `null` when the answer is only tool calls, as OpenAI sends it.
    if m.content.is_empty() && !m.tool_calls.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        write_str(&mut out, &m.content);
    }
    out.extend_from_slice(b",\"refusal\":null");
    // A reasoning model's thoughts where DeepSeek and LiteLLM put them; Claude's signed
    // blocks as LiteLLM names them, for the client to send back with the turn.
    if !m.reasoning.is_empty() {
        out.extend_from_slice(b",\"reasoning_content\":");
        write_str(&mut out, &m.reasoning);
    }
    if !m.thinking_blocks.is_empty() {
        out.extend_from_slice(b",\"thinking_blocks\":");
        write_json(&mut out, &m.thinking_blocks);
    }
    if !m.tool_calls.is_empty() {
        out.extend_from_slice(b",\"tool_calls\":");
        let calls: Vec<WireToolCall<'_>> = m
            .tool_calls
            .iter()
            .map(|c| WireToolCall::of(None, c))
            .collect();
        write_json(&mut out, &calls);
    }
    out.extend_from_slice(b"},\"finish_reason\":");
    write_str(&mut out, finish(&answer.finish_reason));
    out.extend_from_slice(b",\"logprobs\":null}],\"usage\":");
    write_json(&mut out, &WireUsage::of(&answer.usage.unwrap_or_default()));
    out.push(b'}');
    out
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    /// In stream chunks only.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    id: &'a str,
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    /// The arguments object as a JSON string, as OpenAI sends it.
    arguments: String,
}

impl<'a> WireToolCall<'a> {
    fn of(index: Option<usize>, c: &'a ToolCall) -> Self {
        WireToolCall {
            index,
            id: &c.id,
            r#type: "function",
            function: WireFunction {
                name: &c.name,
                arguments: c.arguments.to_string(),
            },
        }
    }
}

/// OpenAI's `usage`; the details only when the provider gave them (OpenAI's SDKs read them
/// as optional).
#[derive(Serialize)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<CachedTokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<ReasoningTokens>,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

impl WireUsage {
    fn of(u: &Usage) -> Self {
        WireUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total(),
            prompt_tokens_details: (u.cached_tokens > 0).then_some(CachedTokens {
                cached_tokens: u.cached_tokens,
            }),
            completion_tokens_details: (u.reasoning_tokens > 0).then_some(ReasoningTokens {
                reasoning_tokens: u.reasoning_tokens,
            }),
        }
    }
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "<[ThinkingBlock]>::is_empty")]
    thinking_blocks: &'a [ThinkingBlock],
}

/// Makes one answer's server-sent events: `data: {json}` and a blank line, written straight
/// into the frame. Every chunk of an answer starts the same (id, object, created, model), so
/// that is serialized once and each event adds only its own part. Compact JSON holds no raw
/// line break (they are escaped in strings), so the data is always one line. (axum's `Event`
/// scans every write for line breaks, which cost more than the serializing in profiles.)
struct Chunker {
    /// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,`
    head: Vec<u8>,
}

/// The end of an OpenAI stream.
const DONE: &[u8] = b"data: [DONE]\n\n";

/// Our own wire types as JSON (they hold only strings, numbers and JSON values).
fn write_json(out: &mut Vec<u8>, v: &impl Serialize) {
    serde_json::to_writer(out, v).expect("wire types serialize");
}

/// `s` as a JSON string, byte for byte as serde_json writes it. Most strings of an answer
/// (ids, model names, most text) hold nothing to escape: those are checked a block of bytes
/// at a time and copied, where serde_json looks up every byte (its `format_escaped_str` was
/// the third-largest cost of a whole answer).
fn write_str(out: &mut Vec<u8>, s: &str) {
    if zentoria_ai::json::is_plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_json(out, &s);
    }
}

/// A whole event holding `data`.
fn frame(out: &mut Vec<u8>, data: &impl Serialize) {
    out.extend_from_slice(b"data: ");
    write_json(out, data);
    out.extend_from_slice(b"\n\n");
}

impl Chunker {
    fn new(id: &str, created: i64, model: &str) -> Chunker {
        // Room for the fixed parts, so that the head is not grown three times on the way.
        let mut head = Vec::with_capacity(96 + id.len() + model.len());
        head.extend_from_slice(b"data: ");
        answer_head(&mut head, id, "chat.completion.chunk", created, model);
        head.push(b',');
        Chunker { head }
    }

    /// Appends an event's common start to `out`, with room for `extra` bytes more.
    fn start(&self, out: &mut Vec<u8>, extra: usize) {
        out.reserve(self.head.len() + extra + 96);
        out.extend_from_slice(&self.head);
    }

    fn delta(&self, out: &mut Vec<u8>, delta: Delta<'_>, finish_reason: Option<&str>) {
        self.start(out, delta.content.map_or(0, str::len));
        out.extend_from_slice(b"\"choices\":[{\"index\":0,\"delta\":");
        write_json(out, &delta);
        out.extend_from_slice(b",\"finish_reason\":");
        write_json(out, &finish_reason);
        out.extend_from_slice(b",\"logprobs\":null}]}\n\n");
    }

    /// [`Self::delta`] of text alone, the most of a stream's events, with only the text
    /// serialized (through the struct, serde escaped each key on every event).
    fn text(&self, out: &mut Vec<u8>, text: &str) {
        self.start(out, text.len());
        out.extend_from_slice(b"\"choices\":[{\"index\":0,\"delta\":{\"content\":");
        write_str(out, text);
        out.extend_from_slice(b"},\"finish_reason\":null,\"logprobs\":null}]}\n\n");
    }

    /// A piece of the model's reasoning, as DeepSeek streams it.
    fn reasoning(&self, out: &mut Vec<u8>, text: &str) {
        self.start(out, text.len());
        out.extend_from_slice(b"\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":");
        write_str(out, text);
        out.extend_from_slice(b"},\"finish_reason\":null,\"logprobs\":null}]}\n\n");
    }

    fn usage(&self, out: &mut Vec<u8>, u: &Usage) {
        self.start(out, 0);
        out.extend_from_slice(b"\"choices\":[],\"usage\":");
        write_json(out, &WireUsage::of(u));
        out.extend_from_slice(b"}\n\n");
    }
}

/// Normalized events → OpenAI `chat.completion.chunk` events, then `[DONE]`. An upstream
/// failure mid-stream is sent as an `error` object (as OpenAI does) and ends the stream.
///
/// Events that have already arrived go out together: each body chunk holds every event ready
/// when it was polled (up to [`BATCH_BYTES`]), so an upstream read carrying many events costs
/// one chunk and one write to the client instead of one per event (hyper flushes after 16
/// queued chunks, so a 21-event answer took two writes). Nothing waits for a batch to fill:
/// a chunk is sent as soon as no further event is ready.
fn chunk_stream(
    upstream: zentoria_ai::EventStream,
    id: &str,
    created: i64,
    model: &str,
    include_usage: bool,
) -> Chunks {
    Chunks {
        upstream,
        chunker: Chunker::new(id, created, model),
        started: false,
        ended: false,
        include_usage,
        tool_index: 0,
        usage: None,
        last_len: 0,
    }
}

/// The most bytes of events put in one body chunk; past it the chunk is sent and the rest of
/// the ready events go in the next.
const BATCH_BYTES: usize = 64 * 1024;

/// The room a stream's first body chunk starts with.
const FIRST_ROOM: usize = 8 * 1024;

/// The body of a streamed chat completion: see [`chunk_stream`].
struct Chunks {
    upstream: zentoria_ai::EventStream,
    chunker: Chunker,
    /// The opening event (the assistant's role) has been written.
    started: bool,
    /// `[DONE]` or an error has been written, or the upstream ended: nothing more is read.
    ended: bool,
    include_usage: bool,
    tool_index: usize,
    usage: Option<Usage>,
    /// The size of the last body chunk: the next starts with that much room, as growing it
    /// event by event took several reallocations per chunk.
    last_len: usize,
}

impl Chunks {
    /// Writes the events for one upstream item into `out`.
    fn write(&mut self, item: Result<StreamEvent, zentoria_ai::ProviderError>, out: &mut Vec<u8>) {
        let chunks = &self.chunker;
        match item {
            Ok(StreamEvent::Delta { text }) => chunks.text(out, &text),
            Ok(StreamEvent::Reasoning { text }) => chunks.reasoning(out, &text),
            Ok(StreamEvent::ThinkingBlock(block)) => chunks.delta(
                out,
                Delta {
                    thinking_blocks: std::slice::from_ref(&block),
                    ..Delta::default()
                },
                None,
            ),
            Ok(StreamEvent::ToolCall(call)) => {
                let c = WireToolCall::of(Some(self.tool_index), &call);
                self.tool_index += 1;
                chunks.delta(
                    out,
                    Delta {
                        tool_calls: vec![c],
                        ..Delta::default()
                    },
                    None,
                );
            }
            Ok(StreamEvent::Usage(u)) => self.usage = Some(u),
            Ok(StreamEvent::Done { finish_reason }) => {
                self.ended = true;
                chunks.delta(out, Delta::default(), Some(finish(&finish_reason)));
                if self.include_usage {
                    chunks.usage(out, &self.usage.take().unwrap_or_default());
                }
                out.extend_from_slice(DONE);
            }
            Err(e) => {
                self.ended = true;
                let err = json!({"error": {"message": e.to_string(), "type": "upstream_error", "code": "upstream_error"}});
                frame(out, &err);
            }
        }
    }
}

impl Stream for Chunks {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        // The first chunk often holds many events (a fast upstream's first read): room for
        // a few kilobytes then, or it was grown twice for the relay of a short answer.
        let room = if this.started {
            this.last_len
        } else {
            FIRST_ROOM
        };
        let mut out = Vec::with_capacity(room.clamp(2048, BATCH_BYTES));
        if !this.started {
            this.started = true;
            this.chunker.delta(
                &mut out,
                Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    ..Delta::default()
                },
                None,
            );
        }
        while !this.ended && out.len() < BATCH_BYTES {
            match this.upstream.poll_next_unpin(cx) {
                Poll::Ready(Some(item)) => this.write(item, &mut out),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => break,
            }
        }
        if !out.is_empty() {
            this.last_len = out.len();
            Poll::Ready(Some(Ok(Bytes::from(out))))
        } else if this.ended {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    /// Upstream events as a test script: `Some(item)` is ready, `None` answers `Pending` once.
    struct Script(VecDeque<Option<Result<StreamEvent, zentoria_ai::ProviderError>>>);

    impl Stream for Script {
        type Item = Result<StreamEvent, zentoria_ai::ProviderError>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.0.pop_front() {
                Some(Some(item)) => Poll::Ready(Some(item)),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }
    }

    fn delta(text: &str) -> Option<Result<StreamEvent, zentoria_ai::ProviderError>> {
        Some(Ok(StreamEvent::Delta { text: text.into() }))
    }

    fn done() -> Option<Result<StreamEvent, zentoria_ai::ProviderError>> {
        Some(Ok(StreamEvent::Done {
            finish_reason: FinishReason::Stop,
        }))
    }

    /// What the body gives on each poll: a chunk's text, `"<pending>"`, then `"<end>"`.
    fn polls(script: Vec<Option<Result<StreamEvent, zentoria_ai::ProviderError>>>) -> Vec<String> {
        let mut body = chunk_stream(Box::pin(Script(script.into())), "chatcmpl-1", 7, "m", true);
        let mut cx = Context::from_waker(Waker::noop());
        let mut seen = Vec::new();
        loop {
            match Pin::new(&mut body).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    seen.push(String::from_utf8(chunk.to_vec()).expect("utf-8"))
                }
                Poll::Pending => seen.push("<pending>".into()),
                Poll::Ready(None) => {
                    seen.push("<end>".into());
                    return seen;
                }
            }
        }
    }

    /// The JSON of each `data:` event in `text`, `[DONE]` as a string.
    fn events(text: &str) -> Vec<Value> {
        text.split_terminator("\n\n")
            .map(|e| {
                let data = e.strip_prefix("data: ").expect("an SSE data line");
                serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
            })
            .collect()
    }

    fn parse(v: Value) -> Result<Parsed, String> {
        parse_request(v.to_string().as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn requests_decode_from_openais_shape() {
        let p = parse(json!({
            "model": "openai/gpt-4o-mini",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "\"you\" é"}], "name": "ann"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{\"q\":\"x\"}"}}]},
                {"role": "tool", "content": "found", "tool_call_id": "call_1"},
            ],
            "tools": [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
                      {"type": "function", "function": {"name": "now"}}],
            "stop": "END",
            "temperature": 0,
            "top_p": 0.5,
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "stream": true,
            "stream_options": {"include_usage": true},
            "n": 1,
            "seed": 7,
            "response_format": {"type": "text"},
        }))
        .unwrap();
        assert_eq!(p.model.as_deref(), Some("openai/gpt-4o-mini"));
        assert!(p.stream && p.include_usage);
        let r = &p.request;
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::Tool]
        );
        assert_eq!(r.messages[0].content, "Be brief.");
        assert_eq!(r.messages[1].content, "Hello, \"you\" é");
        assert_eq!(r.messages[2].content, "");
        assert_eq!(r.messages[2].tool_calls[0].id, "call_1");
        assert_eq!(r.messages[2].tool_calls[0].arguments, json!({"q": "x"}));
        assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(r.tools.len(), 2);
        assert_eq!(r.tools[0].parameters, json!({"type": "object"}));
        assert_eq!(r.tools[1].description, "");
        assert_eq!(r.tools[1].parameters["type"], "object");
        assert_eq!(r.stop, ["END"]);
        assert_eq!(r.temperature, Some(0.0));
        assert_eq!(r.top_p, Some(0.5));
        assert_eq!(r.max_tokens, Some(20), "max_completion_tokens wins");

        let p = parse(
            json!({"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b"],
            "temperature": null, "stream_options": null, "tools": null}),
        )
        .unwrap();
        assert_eq!(p.model, None);
        assert!(!p.stream && !p.include_usage);
        assert_eq!(p.request.stop, ["a", "b"]);
        assert_eq!(p.request.temperature, None);
    }

    #[test]
    fn images_keep_their_place_among_the_text() {
        let png = "data:image/png;base64,iVBORw0KGgo=";
        let p = parse(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Compare "},
            {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
            {"type": "text", "text": "with"},
            {"type": "image_url", "image_url": "https://example.com/b.jpg"},
        ]}]}))
        .unwrap();
        let m = &p.request.messages[0];
        assert_eq!(m.content, "Compare with");
        assert_eq!(
            m.images,
            [
                Image {
                    url: png.into(),
                    detail: Some(ImageDetail::Low),
                    at: 8
                },
                Image {
                    url: "https://example.com/b.jpg".into(),
                    detail: None,
                    at: 12
                },
            ]
        );
    }

    #[test]
    fn cache_control_marks_the_message_as_a_cache_breakpoint() {
        let p = parse(json!({"messages": [
            {"role": "system", "content": [{"type": "text", "text": "A long manual.",
                "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
            {"role": "user", "content": "Page 3?", "cache_control": {"type": "ephemeral"}},
            {"role": "user", "content": "Page 4?"},
            // A document marked, then a question: the breakpoint stays between them, so that
            // the next question finds the document cached.
            {"role": "user", "content": [
                {"type": "text", "text": "A report.", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "text", "text": " What does it say?"}]},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"},
                    "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "And this?"}]},
        ]}))
        .unwrap();
        let caches: Vec<_> = p.request.messages.iter().map(|m| m.cache).collect();
        let at = |text, images| Some(CachePoint { text, images });
        assert_eq!(
            caches,
            [
                Some(CacheMark::end(CacheTtl::OneHour)),
                Some(CacheMark::end(CacheTtl::Default)),
                None,
                Some(CacheMark {
                    ttl: CacheTtl::FiveMinutes,
                    at: at(9, 0)
                }),
                Some(CacheMark {
                    ttl: CacheTtl::Default,
                    at: at(0, 1)
                }),
            ]
        );
        for bad in [
            json!({"messages": [{"role": "user", "content": "x", "cache_control": {"type": "forever"}}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2d"}}]}]}),
        ] {
            let err = parse(bad).err().unwrap_or_default();
            assert!(err.contains("cache_control must be"), "{err}");
        }
    }

    #[test]
    fn requests_the_gateway_cannot_serve_are_refused_with_the_reason() {
        let hi = json!([{"role": "user", "content": "hi"}]);
        for (body, says) in [
            (json!([1]), "invalid type"),
            (json!({"model": "m"}), "messages"),
            (json!({"messages": "hi"}), "invalid type"),
            (
                json!({"messages": [{"role": "wizard", "content": "x"}]}),
                "wizard",
            ),
            (
                json!({"messages": [{"role": "user", "content": 5}]}),
                "array of text and image_url parts",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
                "\"input_audio\" are not supported",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                "needs its image_url",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x", "detail": "ultra"}}]}]}),
                "detail must be",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}]}),
                "needs a url string",
            ),
            (json!({"messages": hi, "n": 2}), "n must be 1"),
            (json!({"messages": hi, "stop": 3}), "string or an array"),
            (json!({"messages": hi, "stream": "yes"}), "invalid type"),
            (
                json!({"messages": hi, "tools": [{"type": "function", "function": {}}]}),
                "name",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{nope"}}]}]}),
                "arguments are not JSON",
            ),
        ] {
            let err = parse(body.clone())
                .err()
                .unwrap_or_else(|| panic!("{body} was accepted"));
            assert!(err.contains(says), "{body}: {err}");
        }
        assert!(parse_request(b"{not json").is_err());
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let schema = |spec: Value| json!({"messages": hi, "response_format": {"type": "json_schema", "json_schema": spec}});
        for (body, says) in [
            (json!({"messages": hi, "logprobs": true}), "logprobs"),
            (json!({"messages": hi, "top_logprobs": 2}), "logprobs"),
            (
                json!({"messages": hi, "logit_bias": {"50256": -100}}),
                "logit_bias",
            ),
            (
                json!({"messages": hi, "tool_choice": "always"}),
                "tool_choice \"always\"",
            ),
            (
                json!({"messages": hi, "tool_choice": 1}),
                "string or an object",
            ),
            (
                json!({"messages": hi, "tools": tools, "tool_choice": {"type": "function"}}),
                "tool_choice.function.name",
            ),
            (
                json!({"messages": hi, "tools": tools, "tool_choice": {"type": "allowed_tools"}}),
                "\"allowed_tools\" is not supported",
            ),
            (
                json!({"messages": hi, "response_format": "json"}),
                "must be an object",
            ),
            (
                json!({"messages": hi, "response_format": {"type": "yaml"}}),
                "response_format.type",
            ),
            (
                json!({"messages": hi, "response_format": {"type": "json_schema"}}),
                "json_schema must be an object",
            ),
            (
                schema(json!({"schema": {"type": "object"}})),
                "name must be",
            ),
            (schema(json!({"name": "a b", "schema": {}})), "name must be"),
            (
                schema(json!({"name": "x".repeat(65), "schema": {}})),
                "name must be",
            ),
            (
                schema(json!({"name": "ok"})),
                "schema must be a JSON Schema object",
            ),
            (
                schema(json!({"name": "ok", "schema": {}, "strict": "yes"})),
                "strict must be",
            ),
            (
                schema(json!({"name": "ok", "schema": {}, "description": 1})),
                "description must be",
            ),
        ] {
            let err = parse(body.clone())
                .err()
                .unwrap_or_else(|| panic!("{body} was accepted"));
            assert!(err.contains(says), "{body}: {err}");
        }
    }

    #[test]
    fn tool_choice_response_format_seed_and_penalties_are_carried() {
        let hi = json!([{"role": "user", "content": "hi"}]);
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let p = parse(json!({"messages": hi, "tools": tools, "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": false, "response_format": {"type": "json_object"}, "seed": -3,
            "presence_penalty": 0.5, "frequency_penalty": -2, "logprobs": false, "logit_bias": {},
            "reasoning_effort": "low", "top_k": 40}))
        .unwrap();
        let r = &p.request;
        assert_eq!(r.reasoning_effort.as_deref(), Some("low"));
        assert_eq!(r.top_k, Some(40));
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("f".into())));
        assert_eq!(r.parallel_tool_calls, Some(false));
        assert_eq!(
            r.response_format,
            Some(Box::new(ResponseFormat::JsonObject))
        );
        assert_eq!(r.seed, Some(-3));
        assert_eq!(r.presence_penalty, Some(0.5));
        assert_eq!(r.frequency_penalty, Some(-2.0));
        for (choice, expected) in [
            ("auto", ToolChoice::Auto),
            ("none", ToolChoice::None),
            ("required", ToolChoice::Required),
        ] {
            let p = parse(json!({"messages": hi, "tools": tools, "tool_choice": choice})).unwrap();
            assert_eq!(p.request.tool_choice, Some(expected));
        }
        // "none" and "auto" need no tools.
        let p = parse(json!({"messages": hi, "tool_choice": "none"})).unwrap();
        assert_eq!(p.request.tool_choice, Some(ToolChoice::None));
        let p = parse(
            json!({"messages": hi, "response_format": {"type": "json_schema", "json_schema": {
            "name": "city_2", "description": "A city", "strict": true,
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}),
        )
        .unwrap();
        assert_eq!(
            p.request.response_format,
            Some(Box::new(ResponseFormat::JsonSchema {
                name: "city_2".into(),
                description: Some("A city".into()),
                schema: json!({"type": "object", "properties": {"name": {"type": "string"}}}),
                strict: Some(true),
            }))
        );
        let p = parse(json!({"messages": hi})).unwrap();
        let r = &p.request;
        assert!(r.tool_choice.is_none() && r.response_format.is_none() && r.seed.is_none());
        assert!(r.ids.is_none());
        // Who the request is for, and its prompt cache's key.
        let p = parse(json!({"messages": hi, "user": "u-1", "prompt_cache_key": "docs"})).unwrap();
        assert_eq!(
            p.request.ids.as_deref(),
            Some(&RequestIds {
                user: Some("u-1".into()),
                prompt_cache_key: Some("docs".into()),
                ..RequestIds::default()
            })
        );
        // Tags, storage and the processing tier.
        let p = parse(
            json!({"messages": hi, "metadata": {"team": "search"}, "store": true,
            "service_tier": "flex"}),
        )
        .unwrap();
        assert_eq!(
            p.request.ids.as_deref(),
            Some(&RequestIds {
                metadata: Some([("team".to_owned(), "search".to_owned())].into()),
                store: Some(true),
                service_tier: Some("flex".into()),
                ..RequestIds::default()
            })
        );
        let err = parse(json!({"messages": hi, "metadata": {"n": 1}}))
            .err()
            .unwrap();
        assert!(err.contains("expected a string"), "{err}");
        let err = parse(json!({"messages": hi, "safety_identifier": 7}))
            .err()
            .unwrap();
        assert!(
            err.contains("invalid type: integer `7`, expected a string"),
            "{err}"
        );
    }

    #[test]
    fn completion_ids_are_openais_shape_and_unique() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| completion_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let hex = id.strip_prefix("chatcmpl-").expect("the prefix");
            assert_eq!(hex.len(), 32);
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn overhead_is_written_in_milliseconds_to_the_microsecond() {
        for us in [
            0u64,
            7,
            40,
            999,
            1000,
            1001,
            12_345,
            1_000_000,
            98_765_432,
            u64::MAX,
        ] {
            let d = Duration::from_micros(us);
            let expected = format!("{}.{:03}", us / 1000, us % 1000);
            assert_eq!(String::from_utf8(millis(d)).unwrap(), expected);
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let long = "x".repeat(40);
        for s in [
            "",
            "plain",
            "\"",
            "\\",
            "\u{1f}",
            "\u{7f} is not escaped",
            "sixteen bytes ok",
            "sixteen bytes \"q",
            long.as_str(),
            "a line\nin the second block",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    proptest::proptest! {
        /// The block-wise check and serde_json agree on every string: escapes anywhere in a
        /// block or in the remainder, any length.
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(
            s in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}]){0,70}"
        ) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            proptest::prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
        }

        /// Any mix of text and image parts parses to the texts joined and every image at the
        /// end of the text before it; nothing else is taken, and nothing panics.
        #[test]
        fn content_parts_keep_their_text_and_the_images_places(
            parts in proptest::collection::vec(
                (proptest::bool::ANY, "\\PC{0,12}", proptest::option::of("auto|low|high|max")),
                0..8,
            )
        ) {
            let content: Vec<Value> = parts
                .iter()
                .map(|(is_text, s, detail)| if *is_text {
                    json!({"type": "text", "text": s})
                } else {
                    json!({"type": "image_url", "image_url": {"url": s, "detail": detail}})
                })
                .collect();
            let parsed = parse(json!({"messages": [{"role": "user", "content": content}]}));
            let bad_detail = parts.iter().any(|(t, _, d)| !t && d.as_deref() == Some("max"));
            proptest::prop_assert_eq!(parsed.is_err(), bad_detail);
            if let Ok(p) = parsed {
                let m = &p.request.messages[0];
                let mut text = String::new();
                let mut images = Vec::new();
                for (is_text, s, detail) in &parts {
                    if *is_text {
                        text.push_str(s);
                    } else {
                        images.push((s.clone(), detail.clone(), text.len()));
                    }
                }
                proptest::prop_assert_eq!(&m.content, &text);
                let got: Vec<_> = m
                    .images
                    .iter()
                    .map(|i| (i.url.clone(), i.detail.map(|d| d.as_str().to_owned()), i.at))
                    .collect();
                proptest::prop_assert_eq!(got, images);
            }
        }

        /// Whatever arrives is a request or a 400 that says why, never a panic. Bytes around a
        /// valid request's, so that parsing gets past the first byte.
        #[test]
        fn any_bytes_are_a_request_or_a_reason(
            head in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            cut in 0usize..120,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let valid = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,aGk="}}]}]}"#;
            let cut = cut.min(valid.len());
            for body in [head.clone(), [&valid[..cut], &tail[..]].concat(), [&head[..], &valid[..]].concat()] {
                match parse_request(&body) {
                    Ok(_) => proptest::prop_assert!(serde_json::from_slice::<Value>(&body).is_ok()),
                    Err(Error::Invalid(why)) => proptest::prop_assert!(!why.is_empty()),
                    Err(other) => proptest::prop_assert!(false, "{other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_text_event_is_the_delta_of_its_text() {
        let chunker = Chunker::new("chatcmpl-1", 7, "openai/m");
        for text in ["", "Hello", "a \"quote\", a \\ and\na line", "é漢🎉\u{1}"] {
            let (mut fast, mut full) = (Vec::new(), Vec::new());
            chunker.text(&mut fast, text);
            chunker.delta(
                &mut full,
                Delta {
                    content: Some(text),
                    ..Delta::default()
                },
                None,
            );
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(full).unwrap()
            );
        }
    }

    #[test]
    fn usage_details_are_given_when_the_provider_gave_them() {
        let mut u = Usage {
            prompt_tokens: 2105,
            completion_tokens: 40,
            ..Usage::default()
        };
        assert_eq!(
            serde_json::to_value(WireUsage::of(&u)).unwrap(),
            json!({"prompt_tokens": 2105, "completion_tokens": 40, "total_tokens": 2145})
        );
        u.cached_tokens = 2000;
        u.reasoning_tokens = 32;
        assert_eq!(
            serde_json::to_value(WireUsage::of(&u)).unwrap(),
            json!({"prompt_tokens": 2105, "completion_tokens": 40, "total_tokens": 2145,
                "prompt_tokens_details": {"cached_tokens": 2000},
                "completion_tokens_details": {"reasoning_tokens": 32}})
        );
    }

    #[test]
    fn a_whole_answer_is_openais_chat_completion() {
        let answer =
            |content: &str, tool_calls: Vec<ToolCall>, finish_reason| zentoria_ai::ChatResponse {
                message: Message::assistant_tool_calls(content, tool_calls),
                finish_reason,
                usage: Some(Usage {
                    prompt_tokens: 12,
                    completion_tokens: 3,
                    ..Usage::default()
                }),
                model: "gpt-4o-mini-\"2024\"".into(),
                upstream_wait: Duration::ZERO,
            };
        let text = completion(
            "chatcmpl-1",
            1_732_000_000,
            &answer("Line one\nand \"two\" é", vec![], FinishReason::Stop),
        );
        let got: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            got,
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_732_000_000,
                "model": "gpt-4o-mini-\"2024\"",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "Line one\nand \"two\" é", "refusal": null},
                    "finish_reason": "stop",
                    "logprobs": null,
                }],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
            })
        );

        let call = ToolCall {
            id: "call_1".into(),
            name: "search".into(),
            arguments: json!({"q": "x"}),
        };
        let text = completion("c", 1, &answer("", vec![call], FinishReason::ToolCalls));
        let got: Value = serde_json::from_slice(&text).unwrap();
        let message = &got["choices"][0]["message"];
        assert_eq!(
            message["content"],
            Value::Null,
            "only tool calls: content is null"
        );
        assert_eq!(
            message["tool_calls"],
            json!([{"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{\"q\":\"x\"}"}}])
        );
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn reasoning_is_answered_beside_the_text_and_streamed_before_it() {
        let block = ThinkingBlock::Thinking {
            thinking: "Two and two.".into(),
            signature: "sig==".into(),
        };
        let answer = zentoria_ai::ChatResponse {
            message: Message {
                reasoning: "Two and \"two\".".into(),
                thinking_blocks: vec![block.clone()],
                ..Message::assistant("4.")
            },
            finish_reason: FinishReason::Stop,
            usage: None,
            model: "m".into(),
            upstream_wait: Duration::ZERO,
        };
        let got: Value = serde_json::from_slice(&completion("c", 1, &answer)).unwrap();
        assert_eq!(
            got["choices"][0]["message"],
            json!({
                "role": "assistant", "content": "4.", "refusal": null,
                "reasoning_content": "Two and \"two\".",
                "thinking_blocks": [{"type": "thinking", "thinking": "Two and two.", "signature": "sig=="}],
            })
        );

        let seen = polls(vec![
            Some(Ok(StreamEvent::Reasoning {
                text: "Two and ".into(),
            })),
            Some(Ok(StreamEvent::Reasoning {
                text: "\"two\".".into(),
            })),
            Some(Ok(StreamEvent::ThinkingBlock(block))),
            delta("4."),
            done(),
        ]);
        let deltas: Vec<Value> = events(&seen[0])
            .into_iter()
            .filter_map(|e| e.pointer("/choices/0/delta").cloned())
            .collect();
        assert_eq!(
            deltas[1..5],
            [
                json!({"reasoning_content": "Two and "}),
                json!({"reasoning_content": "\"two\"."}),
                json!({"thinking_blocks": [{"type": "thinking", "thinking": "Two and two.", "signature": "sig=="}]}),
                json!({"content": "4."}),
            ]
        );
    }

    #[test]
    fn an_earlier_answers_reasoning_is_read_back_on_assistant_turns_only() {
        let p = parse(json!({
            "messages": [
                {"role": "user", "content": "2+2?", "reasoning_content": "not the user's"},
                {"role": "assistant", "content": "4.", "reasoning_content": "Two and two.",
                 "thinking_blocks": [{"type": "thinking", "thinking": "Two and two.", "signature": "sig=="},
                                     {"type": "redacted_thinking", "data": "enc=="}]},
                {"role": "assistant", "content": "6.", "reasoning": "Three and three."},
            ],
        }))
        .unwrap();
        let m = &p.request.messages;
        assert_eq!(m[0].reasoning, "");
        assert_eq!(m[1].reasoning, "Two and two.");
        assert_eq!(
            m[1].thinking_blocks,
            vec![
                ThinkingBlock::Thinking {
                    thinking: "Two and two.".into(),
                    signature: "sig==".into()
                },
                ThinkingBlock::RedactedThinking {
                    data: "enc==".into()
                },
            ]
        );
        assert_eq!(m[2].reasoning, "Three and three.");
        let bad = parse(json!({
            "messages": [{"role": "assistant", "content": "x", "thinking_blocks": [{"type": "thought"}]}],
        }));
        assert!(bad.is_err());
    }

    #[test]
    fn events_ready_together_go_out_in_one_chunk() {
        let seen = polls(vec![delta("Hel"), delta("lo"), done()]);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[1], "<end>");
        let events = events(&seen[0]);
        assert_eq!(events.len(), 6, "{events:?}"); // role, 2 deltas, finish, usage, [DONE]
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(events[1]["choices"][0]["delta"]["content"], "Hel");
        assert_eq!(events[2]["choices"][0]["delta"]["content"], "lo");
        assert_eq!(events[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(events[4]["usage"]["total_tokens"], 0);
        assert_eq!(events[5], "[DONE]");
        for e in &events[..5] {
            assert_eq!(e["id"], "chatcmpl-1");
            assert_eq!(e["object"], "chat.completion.chunk");
            assert_eq!(e["model"], "m");
        }
    }

    #[test]
    fn nothing_waits_for_a_later_event() {
        let seen = polls(vec![delta("a"), None, delta("b"), None, None, done()]);
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(events(&seen[0]).len(), 2); // role and "a", sent before "b" exists
        assert_eq!(events(&seen[0])[1]["choices"][0]["delta"]["content"], "a");
        assert_eq!(events(&seen[1]).len(), 1);
        assert_eq!(events(&seen[1])[0]["choices"][0]["delta"]["content"], "b");
        assert_eq!(seen[2], "<pending>");
        assert_eq!(events(&seen[3]).len(), 3); // finish, usage, [DONE]
        assert_eq!(seen[4], "<end>");
    }

    #[test]
    fn a_chunk_holds_at_most_a_batch() {
        let piece = "x".repeat(1000);
        let mut script: Vec<_> = (0..200).map(|_| delta(&piece)).collect();
        script.push(done());
        let seen = polls(script);
        let chunks = &seen[..seen.len() - 1];
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        for c in chunks {
            assert!(c.len() < BATCH_BYTES + 2 * piece.len(), "{} bytes", c.len());
        }
        let all: Vec<Value> = chunks.iter().flat_map(|c| events(c)).collect();
        assert_eq!(all.len(), 1 + 200 + 3);
        assert!(
            all[1..201]
                .iter()
                .all(|e| e["choices"][0]["delta"]["content"] == piece.as_str())
        );
        assert_eq!(all[203], "[DONE]");
    }

    #[test]
    fn an_upstream_failure_ends_the_stream_with_an_error_event() {
        let failure = zentoria_ai::ProviderError::Protocol {
            provider: "openai".into(),
            message: "stream interrupted".into(),
        };
        let seen = polls(vec![delta("a"), Some(Err(failure)), delta("never")]);
        assert_eq!(seen.len(), 2, "{seen:?}");
        let events = events(&seen[0]);
        assert_eq!(events.len(), 3);
        assert_eq!(events[2]["error"]["type"], "upstream_error");
        assert!(
            events[2]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("stream interrupted")
        );
        assert!(!seen[0].contains("never"));
    }
}
