//! The OpenAI-compatible gateway: `/v1/models` and `/v1/chat/completions` in OpenAI's wire
//! format, authenticated with Zentoria keys (scope `chat`) and routed to the configured
//! providers (`provider/model`). Streams pass through event by event; when the client goes
//! away the upstream request is dropped with the stream.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use zentoria_ai::{
    ChatRequest, FinishReason, Message, Role, StreamEvent, ToolCall, ToolSpec, Usage,
};
use zentoria_core::{Error, Scope};

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
    let data: Vec<Value> = list
        .models
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "object": "model",
                "created": 0,
                "owned_by": m.owned_by.clone().unwrap_or_else(|| m.provider.clone()),
            })
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
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
    // Before reading the body: a key without the scope learns nothing about the request.
    auth.require(Scope::Chat)?;
    let req: Value = crate::extract::json_body(body, MAX_BODY).await?;
    let parsed = parse_request(&req)?;
    let route = state.ai.route(parsed.model.as_deref())?;
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let created = zentoria_core::time::now_ms() / 1000;
    if !parsed.stream {
        let answer = state.ai.chat(&auth, &route, parsed.request).await?;
        let usage = answer.usage.unwrap_or_default();
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": answer.model,
            "choices": [{
                "index": 0,
                "message": message_json(&answer.message),
                "finish_reason": finish(&answer.finish_reason),
                "logprobs": null,
            }],
            "usage": usage_json(&usage),
        });
        let mut response = Json(body).into_response();
        report_overhead(
            &mut response,
            arrived,
            answer.upstream_wait,
            &answer.model,
            false,
        );
        return Ok(response);
    }
    let upstream = state.ai.chat_stream(&auth, &route, parsed.request).await?;
    let (model, waited) = (upstream.model.clone(), upstream.upstream_wait);
    let chunks = chunk_stream(
        upstream.events,
        id,
        created,
        upstream.model,
        parsed.include_usage,
    );
    let mut response = Sse::new(chunks).into_response();
    report_overhead(&mut response, arrived, waited, &model, true);
    Ok(response)
}

/// The histogram of the gateway's own time per chat completion.
pub(crate) const OVERHEAD_METRIC: &str = "zentoria_gateway_overhead_seconds";

/// The response header carrying it, in milliseconds (LiteLLM's `x-litellm-overhead-duration-ms`).
pub const OVERHEAD_HEADER: &str = "x-zentoria-overhead-ms";

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
    let provider = model.split_once('/').map_or(model, |(p, _)| p);
    metrics::histogram!(OVERHEAD_METRIC, "provider" => provider.to_owned(), "model" => model.to_owned(),
        "stream" => if stream { "true" } else { "false" })
    .record(own.as_secs_f64());
    let ms = format!("{:.3}", own.as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&ms) {
        response.headers_mut().insert(OVERHEAD_HEADER, value);
    }
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

/// OpenAI's request → the normalized one. Unsupported parts are refused, not dropped.
fn parse_request(v: &Value) -> Result<Parsed, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::invalid("the body must be a JSON object"))?;
    if let Some(n) = obj.get("n").and_then(Value::as_u64)
        && n != 1
    {
        return Err(Error::invalid("n must be 1: one choice per request"));
    }
    let model = obj.get("model").and_then(Value::as_str).map(str::to_owned);
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid("messages must be an array"))?
        .iter()
        .enumerate()
        .map(|(i, m)| parse_message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let tools = match obj.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tools)) => tools
            .iter()
            .map(|t| {
                let f = &t["function"];
                let name = f["name"]
                    .as_str()
                    .ok_or_else(|| Error::invalid("each tool needs function.name"))?;
                Ok(ToolSpec {
                    name: name.to_owned(),
                    description: f["description"].as_str().unwrap_or_default().to_owned(),
                    parameters: f
                        .get("parameters")
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?,
        Some(_) => return Err(Error::invalid("tools must be an array")),
    };
    let stop = match obj.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::invalid("stop must be a string or strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Error::invalid("stop must be a string or strings")),
    };
    let number = |k: &str| obj.get(k).and_then(Value::as_f64).map(|x| x as f32);
    let max_tokens = obj
        .get("max_completion_tokens")
        .or_else(|| obj.get("max_tokens"))
        .and_then(Value::as_u64)
        .map(|n| n.min(u64::from(u32::MAX)) as u32);
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Parsed {
        model,
        request: ChatRequest {
            model: String::new(),
            messages,
            tools,
            temperature: number("temperature"),
            max_tokens,
            top_p: number("top_p"),
            stop,
        },
        stream,
        include_usage,
    })
}

fn parse_message(i: usize, m: &Value) -> Result<Message, Error> {
    let role = match m["role"].as_str() {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        other => {
            return Err(Error::invalid(format!(
                "messages[{i}].role {other:?} is not system, developer, user, assistant or tool"
            )));
        }
    };
    let content = match &m["content"] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut text = String::new();
            for p in parts {
                match p["type"].as_str() {
                    Some("text") => text.push_str(p["text"].as_str().unwrap_or_default()),
                    other => {
                        return Err(Error::invalid(format!(
                            "messages[{i}]: content parts of type {other:?} are not supported yet; send text"
                        )));
                    }
                }
            }
            text
        }
        _ => {
            return Err(Error::invalid(format!(
                "messages[{i}].content must be a string or an array of parts"
            )));
        }
    };
    let tool_calls = match &m["tool_calls"] {
        Value::Array(calls) => calls
            .iter()
            .map(|c| {
                let f = &c["function"];
                let args = f["arguments"].as_str().unwrap_or("{}");
                Ok(ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_owned(),
                    name: f["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: serde_json::from_str(args).map_err(|e| {
                        Error::invalid(format!(
                            "messages[{i}].tool_calls: arguments are not JSON: {e}"
                        ))
                    })?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?,
        _ => Vec::new(),
    };
    Ok(Message {
        role,
        content,
        tool_calls,
        tool_call_id: m["tool_call_id"].as_str().map(str::to_owned),
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

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total(),
    })
}

fn tool_call_json(index: usize, c: &ToolCall) -> Value {
    json!({
        "index": index,
        "id": c.id,
        "type": "function",
        "function": {"name": c.name, "arguments": c.arguments.to_string()},
    })
}

fn message_json(m: &Message) -> Value {
    let mut v = json!({"role": "assistant", "content": m.content, "refusal": null});
    if !m.tool_calls.is_empty() {
        let calls: Vec<Value> = m
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = tool_call_json(i, c);
                if let Some(o) = c.as_object_mut() {
                    o.remove("index");
                }
                c
            })
            .collect();
        v["tool_calls"] = Value::Array(calls);
        if m.content.is_empty() {
            v["content"] = Value::Null;
        }
    }
    v
}

/// Normalized events → OpenAI `chat.completion.chunk` events, then `[DONE]`. An upstream
/// failure mid-stream is sent as an `error` object (as OpenAI does) and ends the stream.
fn chunk_stream(
    upstream: zentoria_ai::EventStream,
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    // Every chunk starts the same: render that once, and each event as text around it, so a
    // streamed answer costs a few string appends per event rather than a JSON tree.
    let head = format!(
        "{{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":{},",
        Value::String(id),
        Value::String(model)
    );
    let usage_head = head.clone();
    let chunk = move |delta: &str, finish_reason: &str| {
        SseEvent::default().data(format!(
            "{head}\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish_reason},\"logprobs\":null}}]}}"
        ))
    };
    let usage_chunk = move |u: &Usage| {
        SseEvent::default().data(format!(
            "{usage_head}\"choices\":[],\"usage\":{}}}",
            usage_json(u)
        ))
    };
    let first = chunk(r#"{"role":"assistant","content":""}"#, "null");
    let mut tool_index = 0usize;
    let mut usage: Option<Usage> = None;
    let mut ended = false;
    let body = upstream.filter_map(move |event| {
        let out = match event {
            _ if ended => None,
            Ok(StreamEvent::Delta { text }) => Some(vec![chunk(
                &format!("{{\"content\":{}}}", Value::String(text)),
                "null",
            )]),
            Ok(StreamEvent::ToolCall(call)) => {
                let c = tool_call_json(tool_index, &call);
                tool_index += 1;
                Some(vec![chunk(&json!({"tool_calls": [c]}).to_string(), "null")])
            }
            Ok(StreamEvent::Usage(u)) => {
                usage = Some(u);
                None
            }
            Ok(StreamEvent::Done { finish_reason }) => {
                ended = true;
                let reason = Value::String(finish(&finish_reason).to_owned()).to_string();
                let mut events = vec![chunk("{}", &reason)];
                if include_usage {
                    events.push(usage_chunk(&usage.unwrap_or_default()));
                }
                events.push(SseEvent::default().data("[DONE]"));
                Some(events)
            }
            Err(e) => {
                ended = true;
                let err = json!({"error": {"message": e.to_string(), "type": "upstream_error", "code": "upstream_error"}});
                Some(vec![SseEvent::default().data(err.to_string())])
            }
        };
        std::future::ready(out)
    });
    futures_util::stream::once(std::future::ready(first))
        .chain(body.flat_map(futures_util::stream::iter))
        .map(Ok)
}
