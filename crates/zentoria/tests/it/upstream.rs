//! Fake model servers speaking the providers' documented wire formats, on real sockets.
//!
//! Chat: OpenAI `POST /v1/chat/completions` — a `chat.completion` object, or with
//! `"stream": true` server-sent `chat.completion.chunk` events (role first, content pieces,
//! a finish chunk, a usage chunk when `stream_options.include_usage`, then `data: [DONE]`;
//! each ending with an `obfuscation` string of varying length, as OpenAI's do by default);
//! tool calls when tools are offered and the last message asks about the weather; OpenAI's
//! error body for an unknown model, and OpenAI's 400s for `tool_choice` or `parallel_tool_calls`
//! without tools and a JSON-object answer asked without the word "json". `GET /v1/models`
//! lists one model. The answer echoes the last user message (its images as `[png 1x1]`, read
//! from their bytes, or `[address]`); asked for a `reasoning_effort`
//! (other than "none"), it reasons first in `reasoning_content`, as DeepSeek and vLLM send it
//! (whole: beside `content`; streamed: chunks whose `content` is null, then the text's chunks
//! with `reasoning_content` null).
//!
//! Embeddings: OpenAI `POST /v1/embeddings` (`{"model", "input": [..]}` →
//! `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
//! "usage"}`) and Ollama `POST /api/embed` (`{"model", "input": [..]}` → `{"model",
//! "embeddings": [[..]], "prompt_eval_count", …}`). Vectors are a hashed bag of words, so
//! texts sharing words are near each other and results are deterministic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{Value, json};

pub const DIM: usize = 64;

#[derive(Default)]
pub struct Recorded {
    /// Texts embedded so far.
    pub texts: AtomicUsize,
    pub requests: AtomicUsize,
    /// Answer every request with a 500 while set.
    pub failing: AtomicBool,
    /// Answer OpenAI embedding requests with a 429 (`Retry-After: 7`) while set.
    pub rate_limited: AtomicBool,
    pub last_auth: std::sync::Mutex<Option<String>>,
    pub last_model: std::sync::Mutex<Option<String>>,
    /// The last chat request's body, as sent.
    pub last_chat: std::sync::Mutex<Option<Value>>,
    pub chats: AtomicUsize,
}

/// How long the fake thinks when asked to take its time.
pub const THINKING: std::time::Duration = std::time::Duration::from_millis(300);

pub struct FakeUpstream {
    pub url: String,
    pub seen: Arc<Recorded>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A hashed bag-of-words vector (FNV-1a per lower-cased word), L2-normalised.
pub fn bag_of_words(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let mut h: u32 = 0x811c_9dc5;
        for b in word.to_lowercase().bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        v[h as usize % DIM] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v[0] = 1.0;
    }
    v
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let seen = Arc::new(Recorded::default());
        let app = Router::new()
            .route("/v1/embeddings", post(openai_embeddings))
            .route("/api/embed", post(ollama_embed))
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/models", get(openai_models))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeUpstream { url, seen, task }
    }

    pub fn texts(&self) -> usize {
        self.seen.texts.load(Ordering::SeqCst)
    }
}

/// The inputs of a request, recording who asked.
fn inputs(seen: &Recorded, headers: &HeaderMap, body: &Value) -> Result<Vec<String>, String> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    *seen.last_auth.lock().unwrap() = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    *seen.last_model.lock().unwrap() = body["model"].as_str().map(str::to_owned);
    let input = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or("input items must be strings")
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("input must be a string or an array of strings".into()),
    };
    seen.texts.fetch_add(input.len(), Ordering::SeqCst);
    Ok(input)
}

async fn openai_embeddings(
    State(seen): State<Arc<Recorded>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if seen.failing.load(Ordering::SeqCst) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}})),
        )
            .into_response();
    }
    if seen.rate_limited.load(Ordering::SeqCst) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(axum::http::header::RETRY_AFTER, "7")],
            Json(json!({"error": {"message": "Rate limit reached for text-embedding-3-small in organization org-x on requests per min (RPM): Limit 3000, Used 3000, Requested 1.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})),
        )
            .into_response();
    }
    let input = match inputs(&seen, &headers, &body) {
        Ok(i) => i,
        Err(m) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": m, "type": "invalid_request_error", "param": "input", "code": null}})),
            )
                .into_response();
        }
    };
    let tokens: usize = input.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = input
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": bag_of_words(t)}))
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response()
}

async fn ollama_embed(
    State(seen): State<Arc<Recorded>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if seen.failing.load(Ordering::SeqCst) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "llama runner process has terminated"})),
        )
            .into_response();
    }
    let input = match inputs(&seen, &headers, &body) {
        Ok(i) => i,
        Err(m) => return (StatusCode::BAD_REQUEST, Json(json!({"error": m}))).into_response(),
    };
    let embeddings: Vec<Vec<f32>> = input.iter().map(|t| bag_of_words(t)).collect();
    Json(json!({
        "model": body["model"],
        "embeddings": embeddings,
        "total_duration": 14_143_917,
        "load_duration": 1_019_500,
        "prompt_eval_count": input.iter().map(|t| t.split_whitespace().count()).sum::<usize>()
    }))
    .into_response()
}

/// What OpenAI's API refuses of a request the gateway could get wrong in translation:
/// `tool_choice` or `parallel_tool_calls` without tools, and a JSON-object answer asked for
/// without the word "json" in the messages (OpenAI's own messages).
fn openai_refusal(body: &Value) -> Option<String> {
    let no_tools = body["tools"].as_array().is_none_or(Vec::is_empty);
    for field in ["tool_choice", "parallel_tool_calls"] {
        if no_tools && body.get(field).is_some() {
            return Some(format!(
                "Invalid value for '{field}': '{field}' is only allowed when 'tools' are specified."
            ));
        }
    }
    let says_json = body["messages"].as_array().is_some_and(|m| {
        m.iter().any(|m| {
            m["content"]
                .as_str()
                .is_some_and(|c| c.to_lowercase().contains("json"))
        })
    });
    (body["response_format"]["type"] == "json_object" && !says_json).then(|| {
        "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.".to_owned()
    })
}

/// A user message's content as the fake model takes it in: a string as it is; an array's text
/// parts joined, each image in its place as `[png 1x1]` (its format and size, read from the
/// bytes) or `[https://…]` (an address, not fetched). An inline image that is not base64 or
/// not a PNG, JPEG, GIF or WebP is refused in OpenAI's words.
fn seen_content(content: &Value) -> Result<String, String> {
    let Some(parts) = content.as_array() else {
        return Ok(content.as_str().unwrap_or_default().to_owned());
    };
    let mut seen = String::new();
    for part in parts {
        match part["type"].as_str() {
            Some("text") => seen.push_str(part["text"].as_str().unwrap_or_default()),
            Some("image_url") => {
                let url = part["image_url"]["url"].as_str().unwrap_or_default();
                let Some((_, data)) = url
                    .strip_prefix("data:")
                    .and_then(|u| u.split_once(";base64,"))
                else {
                    seen.push_str(&format!("[{url}]"));
                    continue;
                };
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|_| "Invalid base64 image_url.".to_owned())?;
                let unsupported = || {
                    "You uploaded an unsupported image. Please make sure your image has of one the following formats: ['png', 'jpeg', 'gif', 'webp'].".to_owned()
                };
                if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
                    let dim = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
                    seen.push_str(&format!("[png {}x{}]", dim(16), dim(20)));
                } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
                    seen.push_str("[jpeg]");
                } else if bytes.starts_with(b"GIF8") {
                    seen.push_str("[gif]");
                } else if bytes.len() >= 12 && &bytes[8..12] == b"WEBP" {
                    seen.push_str("[webp]");
                } else {
                    return Err(unsupported());
                }
            }
            other => return Err(format!("Invalid content part type: {other:?}")),
        }
    }
    Ok(seen)
}

async fn openai_models() -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system"}]
    }))
}

async fn openai_chat(
    State(seen): State<Arc<Recorded>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    seen.chats.fetch_add(1, Ordering::SeqCst);
    *seen.last_chat.lock().unwrap() = Some(body.clone());
    *seen.last_auth.lock().unwrap() = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    *seen.last_model.lock().unwrap() = Some(model.clone());
    if let Some(refusal) = openai_refusal(&body) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": refusal, "type": "invalid_request_error", "param": null, "code": null}})),
        )
            .into_response();
    }
    if model != "gpt-4o-mini" {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": format!("The model `{model}` does not exist or you do not have access to it."), "type": "invalid_request_error", "param": null, "code": "model_not_found"}})),
        )
            .into_response();
    }
    let last_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"));
    let last = match last_user.map(|m| seen_content(&m["content"])) {
        None => String::new(),
        Some(Ok(seen)) => seen,
        Some(Err(refusal)) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": refusal, "type": "invalid_request_error", "param": null, "code": "invalid_image_format"}})),
            )
                .into_response();
        }
    };
    // A question asked over quoted sources is answered citing the first one.
    let last = match last.rsplit_once("Question: ") {
        Some((sources, q)) if sources.contains("<source id=\"1\"") => format!("{q} [1]"),
        _ => last,
    };
    let prompt_tokens = last.split_whitespace().count() + 3;
    if last.contains("take your time") {
        // A model that thinks before its first byte, for measuring what is not the model.
        tokio::time::sleep(THINKING).await;
    }
    // Scripted tool use: a user message `tool:NAME {json}` calls that tool, then answers with
    // the tool's result; `tool-loop:NAME {json}` calls it again after every result.
    let offered = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let script = last
        .strip_prefix("tool-loop:")
        .map(|s| (s, true))
        .or_else(|| last.strip_prefix("tool:").map(|s| (s, false)));
    if let Some((script, looping)) = script.filter(|_| offered) {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let after_tool = messages.last().is_some_and(|m| m["role"] == "tool");
        let message = if after_tool && !looping {
            let result = messages.last().unwrap()["content"]
                .as_str()
                .unwrap_or_default();
            let result: String = result.chars().take(300).collect();
            json!({"role": "assistant", "content": format!("done: {result}"), "refusal": null})
        } else {
            let (name, args) = script
                .trim()
                .split_once(' ')
                .unwrap_or((script.trim(), "{}"));
            json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [{
                "id": format!("call_{}", messages.len()), "type": "function",
                "function": {"name": name, "arguments": args}}]})
        };
        let finish = if message["tool_calls"].is_array() {
            "tool_calls"
        } else {
            "stop"
        };
        return Json(json!({
            "id": "chatcmpl-fake3", "object": "chat.completion", "created": 1_732_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 4, "total_tokens": prompt_tokens + 4}
        }))
        .into_response();
    }
    let wants_tool =
        body["tools"].as_array().is_some_and(|t| !t.is_empty()) && last.contains("weather");
    let stream = body["stream"].as_bool().unwrap_or(false);
    let created = 1_732_000_000;
    // Asked to reason, it thinks aloud first, in DeepSeek's and vLLM's `reasoning_content`.
    let reasoning = body["reasoning_effort"]
        .as_str()
        .filter(|e| *e != "none")
        .map(|effort| format!("thinking ({effort}) about \"{last}\""));
    // Usage as OpenAI reports it: the details always there, thoughts counted among the
    // completion's tokens (a word a token). A prompt that says it was asked before was read
    // from the prompt cache, all but its last token.
    let thought = reasoning
        .as_deref()
        .map_or(0, |r| r.split_whitespace().count());
    let cached = if last.contains("(asked before)") {
        prompt_tokens - 1
    } else {
        0
    };
    let usage = |completion: usize| {
        json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion + thought,
            "total_tokens": prompt_tokens + completion + thought,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": thought, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
    };
    if !stream {
        let mut message = if wants_tool {
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}], "refusal": null})
        } else {
            json!({"role": "assistant", "content": format!("echo: {last}"), "refusal": null})
        };
        if let Some(reasoning) = &reasoning {
            message["reasoning_content"] = json!(reasoning);
        }
        return Json(json!({
            "id": "chatcmpl-fake1",
            "object": "chat.completion",
            "created": created,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": if wants_tool { "tool_calls" } else { "stop" }}],
            "usage": usage(2)
        }))
        .into_response();
    }
    // OpenAI ends every chunk with `obfuscation`, random characters of varying length, unless
    // the request turns it off; `json!` sorts members, so it is put last by hand, where
    // OpenAI puts it.
    let obfuscate = body["stream_options"]["include_obfuscation"].as_bool() != Some(false);
    let event = move |chunk: Value| {
        let mut json = chunk.to_string();
        if obfuscate {
            let n = json.len() % 13;
            json.pop();
            json += &format!(r#","obfuscation":"{}"}}"#, &"Hq3ZmT8vKp2XwLd"[..n]);
        }
        format!("data: {json}\n\n")
    };
    let chunk = move |delta: Value, finish: Value| {
        event(
            json!({"id": "chatcmpl-fake2", "object": "chat.completion.chunk", "created": created, "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
        )
    };
    let mut out = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    if last.contains("slowly") {
        // One word a second, never finishing in a test's lifetime: for clients that leave.
        let words: Vec<String> = last.split_whitespace().map(|w| format!("{w} ")).collect();
        let head = out.clone();
        let body = futures_util::stream::iter(
            std::iter::once(head).chain(
                words
                    .into_iter()
                    .cycle()
                    .map(move |w| chunk(json!({"content": w}), Value::Null)),
            ),
        )
        .then(|piece| async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Ok::<_, std::convert::Infallible>(piece)
        });
        return (
            [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
            axum::body::Body::from_stream(body),
        )
            .into_response();
    }
    if wants_tool {
        out += &chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        );
        for piece in ["{\"ci", "ty\":\"Pa", "ris\"}"] {
            out += &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                Value::Null,
            );
        }
        out += &chunk(json!({}), json!("tool_calls"));
    } else {
        if let Some(reasoning) = &reasoning {
            let (head, tail) = reasoning.split_at(reasoning.len() / 2);
            for piece in [head, tail] {
                out += &chunk(
                    json!({"content": null, "reasoning_content": piece}),
                    Value::Null,
                );
            }
        }
        for piece in ["echo", ": ", last.as_str()] {
            let delta = match reasoning {
                Some(_) => json!({"content": piece, "reasoning_content": null}),
                None => json!({"content": piece}),
            };
            out += &chunk(delta, Value::Null);
        }
        out += &chunk(json!({}), json!("stop"));
    }
    if body["stream_options"]["include_usage"].as_bool() == Some(true) {
        out += &event(
            json!({"id": "chatcmpl-fake2", "object": "chat.completion.chunk", "created": created, "model": "gpt-4o-mini-2024-07-18", "choices": [], "usage": usage(3)}),
        );
    }
    out += "data: [DONE]\n\n";
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        out,
    )
        .into_response()
}

/// A test server's configuration with an `openai` provider on `url` as the default model
/// (`openai/gpt-4o-mini`) and the built-in Ollama pointed where nothing listens.
pub fn openai_on(url: &str) -> impl FnOnce(&mut zentoria_core::config::Config) + use<> {
    let url = url.to_owned();
    move |c| {
        c.ai.ollama_url = "http://127.0.0.1:9".into();
        c.ai.providers.push(zentoria_core::config::ProviderConfig {
            name: "openai".into(),
            kind: "openai".into(),
            base_url: url,
            api_key: "sk-upstream".into(),
        });
        c.ai.default_model = "openai/gpt-4o-mini".into();
    }
}
