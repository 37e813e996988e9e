//! Wire-format rendering and request validation for each fake provider, written from the
//! providers' documented formats.

use axum::http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::{API_KEY, Completion};

/// The signature the fake Anthropic puts on its thinking.
pub const SIGNATURE: &str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds";

/// Which provider protocol a fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Ollama,
}

/// One body write; `text` marks chunks carrying a text piece.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub text: bool,
}

const MODELS: [&str; 3] = ["model-alpha", "model-beta", "model-gamma"];
const CREATED: u64 = 1_700_000_000;

fn sse(event: Option<&str>, data: &Value, text: bool) -> Chunk {
    let mut s = String::new();
    if let Some(event) = event {
        s.push_str(&format!("event: {event}\n"));
    }
    s.push_str(&format!("data: {data}\n\n"));
    Chunk {
        bytes: s.into_bytes(),
        text,
    }
}

fn line(data: &Value, text: bool) -> Chunk {
    Chunk {
        bytes: format!("{data}\n").into_bytes(),
        text,
    }
}

impl Wire {
    pub fn chat_path(self) -> &'static str {
        match self {
            Wire::OpenAi => "/v1/chat/completions",
            Wire::Anthropic => "/v1/messages",
            Wire::Ollama => "/api/chat",
        }
    }

    pub fn models_path(self) -> &'static str {
        match self {
            Wire::OpenAi | Wire::Anthropic => "/v1/models",
            Wire::Ollama => "/api/tags",
        }
    }

    pub fn stream_content_type(self) -> &'static str {
        match self {
            Wire::Ollama => "application/x-ndjson",
            _ => "text/event-stream",
        }
    }

    /// Validates routing, authentication and required fields like the real service.
    pub fn check_request(
        self,
        headers: &HeaderMap,
        body: &Value,
        method: &Method,
        path: &str,
    ) -> Result<(), (u16, &'static str, String)> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let known = (path == self.chat_path() && method == Method::POST)
            || (path == self.models_path() && method == Method::GET);
        if !known {
            return Err((404, "not_found_error", format!("no route {method} {path}")));
        }
        match self {
            Wire::OpenAi => {
                if header("authorization") != Some(&format!("Bearer {API_KEY}")) {
                    let got = header("authorization").unwrap_or("");
                    let shown: String = got.trim_start_matches("Bearer ").chars().take(4).collect();
                    return Err((
                        401,
                        "invalid_request_error",
                        format!(
                            "Incorrect API key provided: {shown}****. You can find your API key at https://platform.openai.com/account/api-keys."
                        ),
                    ));
                }
            }
            Wire::Anthropic => {
                if header("x-api-key") != Some(API_KEY) {
                    return Err((401, "authentication_error", "invalid x-api-key".into()));
                }
                if header("anthropic-version").is_none() {
                    return Err((
                        400,
                        "invalid_request_error",
                        "anthropic-version: header is required".into(),
                    ));
                }
                if path == self.chat_path() {
                    if body.get("max_tokens").and_then(Value::as_u64).is_none() {
                        return Err((
                            400,
                            "invalid_request_error",
                            "max_tokens: Field required".into(),
                        ));
                    }
                    let roles_ok = body["messages"].as_array().is_some_and(|m| {
                        m.iter()
                            .all(|m| m["role"] == "user" || m["role"] == "assistant")
                    });
                    if !roles_ok {
                        return Err((
                            400,
                            "invalid_request_error",
                            "messages: roles must be \"user\" or \"assistant\"".into(),
                        ));
                    }
                    check_thinking(body)
                        .map_err(|message| (400, "invalid_request_error", message))?;
                    check_anthropic_content(body)
                        .map_err(|message| (400, "invalid_request_error", message))?;
                }
            }
            Wire::Ollama => {}
        }
        if path == self.chat_path() {
            let checked = match self {
                Wire::OpenAi => check_openai_images(body),
                Wire::Anthropic => Ok(()),
                Wire::Ollama => check_ollama_images(body),
            };
            checked.map_err(|message| (400, "invalid_request_error", message))?;
        }
        if path == self.chat_path() && body.get("model").and_then(Value::as_str).is_none() {
            return Err((400, "invalid_request_error", "model is required".into()));
        }
        Ok(())
    }

    pub fn error_body(self, kind: &str, message: &str) -> Value {
        match self {
            Wire::OpenAi => {
                json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            }
            Wire::Anthropic => {
                json!({"type": "error", "error": {"type": kind, "message": message}})
            }
            Wire::Ollama => json!({"error": message}),
        }
    }

    pub fn stream_error_chunk(self, kind: &str, message: &str) -> String {
        match self {
            Wire::OpenAi => format!(
                "data: {}\n\n",
                json!({"error": {"message": message, "type": kind}})
            ),
            Wire::Anthropic => format!(
                "event: error\ndata: {}\n\n",
                json!({"type": "error", "error": {"type": kind, "message": message}})
            ),
            Wire::Ollama => format!("{}\n", json!({"error": message})),
        }
    }

    pub fn models_body(self, query: Option<&str>) -> Value {
        match self {
            Wire::OpenAi => json!({
                "object": "list",
                "data": MODELS.iter().map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "fake-org"})).collect::<Vec<_>>(),
            }),
            Wire::Ollama => json!({
                "models": MODELS.iter().map(|id| json!({
                    "name": format!("{id}:latest"), "model": format!("{id}:latest"),
                    "modified_at": "2024-05-01T00:00:00Z", "size": 1234, "digest": "abc",
                    "details": {"format": "gguf", "family": "llama"}
                })).collect::<Vec<_>>(),
            }),
            Wire::Anthropic => {
                // Paginated like the real API, two per page to exercise `after_id`.
                let after = query
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("after_id="));
                let start = after
                    .and_then(|a| MODELS.iter().position(|m| *m == a))
                    .map_or(0, |p| p + 1);
                let page: Vec<&str> = MODELS.iter().skip(start).take(2).copied().collect();
                json!({
                    "data": page.iter().map(|id| json!({"type": "model", "id": id, "display_name": id.to_uppercase(), "created_at": "2025-02-19T00:00:00Z"})).collect::<Vec<_>>(),
                    "has_more": start + page.len() < MODELS.len(),
                    "first_id": page.first(),
                    "last_id": page.last(),
                })
            }
        }
    }

    fn finish(self, c: &Completion) -> String {
        if let Some(f) = &c.finish {
            return f.clone();
        }
        let tools = !c.tool_calls.is_empty();
        match self {
            Wire::OpenAi => {
                if tools {
                    "tool_calls"
                } else {
                    "stop"
                }
            }
            Wire::Anthropic => {
                if tools {
                    "tool_use"
                } else {
                    "end_turn"
                }
            }
            Wire::Ollama => "stop",
        }
        .to_owned()
    }

    pub fn render_json(self, c: &Completion) -> Value {
        let text = c.text.concat();
        match self {
            Wire::OpenAi => {
                let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
                if !c.reasoning.is_empty() {
                    message["reasoning_content"] = json!(c.reasoning.concat());
                }
                if !c.tool_calls.is_empty() {
                    message["tool_calls"] = c
                        .tool_calls
                        .iter()
                        .map(|t| json!({"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.args_pieces.concat()}}))
                        .collect();
                }
                json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": CREATED, "model": c.model,
                    "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": self.finish(c)}],
                    "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                              "total_tokens": c.prompt_tokens + c.completion_tokens},
                })
            }
            Wire::Anthropic => {
                let mut content = Vec::new();
                if !c.reasoning.is_empty() {
                    content.push(json!({"type": "thinking", "thinking": c.reasoning.concat(), "signature": SIGNATURE}));
                }
                if !text.is_empty() {
                    content.push(json!({"type": "text", "text": text}));
                }
                for t in &c.tool_calls {
                    content.push(json!({"type": "tool_use", "id": t.id, "name": t.name, "input": t.arguments()}));
                }
                json!({
                    "id": "msg_1", "type": "message", "role": "assistant", "model": c.model,
                    "content": content, "stop_reason": self.finish(c), "stop_sequence": null,
                    "usage": {"input_tokens": c.prompt_tokens, "output_tokens": c.completion_tokens},
                })
            }
            Wire::Ollama => {
                let mut message = json!({"role": "assistant", "content": text});
                if !c.reasoning.is_empty() {
                    message["thinking"] = json!(c.reasoning.concat());
                }
                if !c.tool_calls.is_empty() {
                    message["tool_calls"] = c
                        .tool_calls
                        .iter()
                        .map(|t| json!({"function": {"name": t.name, "arguments": t.arguments()}}))
                        .collect();
                }
                json!({
                    "model": c.model, "created_at": "2024-05-01T00:00:00Z", "message": message,
                    "done": true, "done_reason": self.finish(c), "total_duration": 5_000_000,
                    "load_duration": 1000, "prompt_eval_count": c.prompt_tokens, "prompt_eval_duration": 10,
                    "eval_count": c.completion_tokens, "eval_duration": 100,
                })
            }
        }
    }

    pub fn render_stream(self, c: &Completion) -> Vec<Chunk> {
        match self {
            Wire::OpenAi => render_openai(c, &self.finish(c)),
            Wire::Anthropic => render_anthropic(c, &self.finish(c)),
            Wire::Ollama => render_ollama(c, &self.finish(c)),
        }
    }
}

fn render_openai(c: &Completion, finish: &str) -> Vec<Chunk> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": CREATED, "model": c.model,
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let mut out = vec![sse(
        None,
        &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        false,
    )];
    // DeepSeek's layout: the text's slot null while reasoning.
    for piece in &c.reasoning {
        out.push(sse(
            None,
            &chunk(
                json!({"content": null, "reasoning_content": piece}),
                Value::Null,
            ),
            false,
        ));
    }
    for piece in &c.text {
        out.push(sse(
            None,
            &chunk(json!({"content": piece}), Value::Null),
            true,
        ));
    }
    for (i, t) in c.tool_calls.iter().enumerate() {
        out.push(sse(
            None,
            &chunk(
                json!({"tool_calls": [{"index": i, "id": t.id, "type": "function", "function": {"name": t.name, "arguments": ""}}]}),
                Value::Null,
            ),
            false,
        ));
        for piece in &t.args_pieces {
            out.push(sse(
                None,
                &chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                    Value::Null,
                ),
                false,
            ));
        }
    }
    out.push(sse(None, &chunk(json!({}), json!(finish)), false));
    out.push(sse(
        None,
        &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": CREATED, "model": c.model,
                "choices": [], "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens}}),
        false,
    ));
    out.push(Chunk {
        bytes: b"data: [DONE]\n\n".to_vec(),
        text: false,
    });
    out
}

fn render_anthropic(c: &Completion, finish: &str) -> Vec<Chunk> {
    let mut out = vec![
        sse(
            Some("message_start"),
            &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                    "content": [], "model": c.model, "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": c.prompt_tokens, "output_tokens": 1}}}),
            false,
        ),
        sse(Some("ping"), &json!({"type": "ping"}), false),
    ];
    let mut index = 0;
    if !c.reasoning.is_empty() {
        out.push(sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            false,
        ));
        for piece in &c.reasoning {
            out.push(sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": piece}}),
                false,
            ));
        }
        out.push(sse(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": SIGNATURE}}),
            false,
        ));
        out.push(sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": index}),
            false,
        ));
        index += 1;
    }
    if !c.text.is_empty() {
        out.push(sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
            false,
        ));
        for piece in &c.text {
            out.push(sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
                true,
            ));
        }
        out.push(sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": index}),
            false,
        ));
        index += 1;
    }
    for t in &c.tool_calls {
        out.push(sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index,
                    "content_block": {"type": "tool_use", "id": t.id, "name": t.name, "input": {}}}),
            false,
        ));
        for piece in &t.args_pieces {
            out.push(sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece}}),
                false,
            ));
        }
        out.push(sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": index}),
            false,
        ));
        index += 1;
    }
    out.push(sse(
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": finish, "stop_sequence": null},
                "usage": {"output_tokens": c.completion_tokens}}),
        false,
    ));
    out.push(sse(
        Some("message_stop"),
        &json!({"type": "message_stop"}),
        false,
    ));
    out
}

fn render_ollama(c: &Completion, finish: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    for piece in &c.reasoning {
        out.push(line(
            &json!({"model": c.model, "created_at": "2024-05-01T00:00:00Z",
                    "message": {"role": "assistant", "content": "", "thinking": piece}, "done": false}),
            false,
        ));
    }
    for piece in &c.text {
        out.push(line(
            &json!({"model": c.model, "created_at": "2024-05-01T00:00:00Z",
                    "message": {"role": "assistant", "content": piece}, "done": false}),
            true,
        ));
    }
    if !c.tool_calls.is_empty() {
        let calls: Vec<Value> = c
            .tool_calls
            .iter()
            .map(|t| json!({"function": {"name": t.name, "arguments": t.arguments()}}))
            .collect();
        out.push(line(
            &json!({"model": c.model, "created_at": "2024-05-01T00:00:00Z",
                    "message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": false}),
            false,
        ));
    }
    out.push(line(
        &json!({"model": c.model, "created_at": "2024-05-01T00:00:00Z",
                "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": finish,
                "total_duration": 5_000_000, "load_duration": 1000, "prompt_eval_count": c.prompt_tokens,
                "prompt_eval_duration": 10, "eval_count": c.completion_tokens, "eval_duration": 100}),
        false,
    ));
    out
}

/// Extended thinking's rules, as the Messages API documents and enforces them: a budget of at
/// least 1,024 tokens below `max_tokens`; with thinking on, the last assistant turn that called
/// tools starts with its thinking blocks, sent back unchanged (signatures verified).
fn check_thinking(body: &Value) -> Result<(), String> {
    for message in body["messages"].as_array().into_iter().flatten() {
        for block in message["content"].as_array().into_iter().flatten() {
            if block["type"] == "thinking" && block["signature"] != SIGNATURE {
                return Err("Invalid `signature` in `thinking` block".into());
            }
        }
    }
    let thinking = &body["thinking"];
    if thinking.is_null() || thinking["type"] == "disabled" {
        return Ok(());
    }
    let budget = thinking["budget_tokens"].as_u64().unwrap_or(0);
    if budget < 1024 {
        return Err(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024".into(),
        );
    }
    if body["max_tokens"].as_u64().unwrap_or(0) <= budget {
        return Err("`max_tokens` must be greater than `thinking.budget_tokens`".into());
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    if let Some((i, last)) = messages
        .iter()
        .enumerate()
        .rev()
        .find(|(_, m)| m["role"] == "assistant")
    {
        let blocks = last["content"].as_array().cloned().unwrap_or_default();
        let calls = blocks.iter().any(|b| b["type"] == "tool_use");
        let first = blocks
            .first()
            .map(|b| b["type"].clone())
            .unwrap_or_default();
        if calls && first != "thinking" && first != "redacted_thinking" {
            return Err(format!(
                "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found {first}. When `thinking` is enabled, a final `assistant` message must start with a thinking block"
            ));
        }
    }
    Ok(())
}

/// Decodes standard padded base64 as the providers do, or says why not.
fn decode_base64(data: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("illegal base64 data: {e}"))
}

/// What an image's bytes say it is, from its magic number.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// OpenAI: `content` is a string or an array of `text` and `image_url` parts; images only in
/// user messages; an inline image must be a base64 data URL of an image.
fn check_openai_images(body: &Value) -> Result<(), String> {
    for (i, message) in body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let role = message["role"].as_str().unwrap_or_default();
        for (j, part) in message["content"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            match part["type"].as_str() {
                Some("text") if part["text"].is_string() => {}
                Some("image_url") => {
                    if role != "user" {
                        return Err(format!(
                            "Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role 'user', but this message with role '{role}' contains an image URL."
                        ));
                    }
                    let Some(url) = part["image_url"]["url"].as_str() else {
                        return Err(format!(
                            "Missing required parameter: 'messages[{i}].content[{j}].image_url.url'."
                        ));
                    };
                    let detail = &part["image_url"]["detail"];
                    if !(detail.is_null()
                        || ["auto", "low", "high"].contains(&detail.as_str().unwrap_or("")))
                    {
                        return Err(format!(
                            "Invalid value: 'messages[{i}].content[{j}].image_url.detail'."
                        ));
                    }
                    if let Some(rest) = url.strip_prefix("data:") {
                        let (_, data) = rest.split_once(";base64,").ok_or("Invalid image URL.")?;
                        let bytes = decode_base64(data)?;
                        sniff(&bytes).ok_or("You uploaded an unsupported image. Please make sure your image is valid.")?;
                    } else if !url.starts_with("https://") && !url.starts_with("http://") {
                        return Err("Invalid image URL.".into());
                    }
                }
                _ => {
                    return Err(format!(
                        "Invalid 'messages[{i}].content[{j}]': unknown part {part}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Ollama: `images` is a list of base64 strings (no data: URL prefix).
fn check_ollama_images(body: &Value) -> Result<(), String> {
    for message in body["messages"].as_array().into_iter().flatten() {
        for image in message["images"].as_array().into_iter().flatten() {
            let data = image.as_str().ok_or("json: cannot unmarshal images")?;
            decode_base64(data)?;
        }
    }
    Ok(())
}

/// Anthropic: text blocks must not be empty; an image block's source is base64 in one of the
/// four formats Claude reads (and must be what it says it is) or a URL.
fn check_anthropic_content(body: &Value) -> Result<(), String> {
    // Prompt caching: `cache_control` is `{"type": "ephemeral"}` with an optional ttl, on at
    // most four blocks (system blocks included).
    let system = body["system"].as_array().into_iter().flatten();
    let blocks = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["content"].as_array().into_iter().flatten());
    let mut breakpoints = 0;
    for block in system.chain(blocks) {
        let cache = &block["cache_control"];
        if cache.is_null() {
            continue;
        }
        breakpoints += 1;
        let ttl_ok = cache["ttl"].is_null() || cache["ttl"] == "5m" || cache["ttl"] == "1h";
        if cache["type"] != "ephemeral" || !ttl_ok {
            return Err(format!("cache_control: invalid value {cache}"));
        }
    }
    if breakpoints > 4 {
        return Err(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
        ));
    }
    for (i, message) in body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, block) in message["content"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            match block["type"].as_str() {
                Some("text") if block["text"].as_str().is_some_and(|t| !t.is_empty()) => {}
                Some("text") => {
                    return Err("messages: text content blocks must be non-empty".into());
                }
                Some("image") => {
                    if message["role"] != "user" {
                        return Err(format!(
                            "messages.{i}.content.{j}: image blocks are only allowed in user turns"
                        ));
                    }
                    let source = &block["source"];
                    match source["type"].as_str() {
                        Some("base64") => {
                            let media_type = source["media_type"].as_str().unwrap_or_default();
                            if !["image/jpeg", "image/png", "image/gif", "image/webp"]
                                .contains(&media_type)
                            {
                                return Err(format!(
                                    "messages.{i}.content.{j}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                                ));
                            }
                            let bytes = decode_base64(source["data"].as_str().unwrap_or_default())?;
                            if sniff(&bytes) != Some(media_type) {
                                return Err(format!(
                                    "messages.{i}.content.{j}.image.source.base64.data: Image does not match the provided media type {media_type}"
                                ));
                            }
                        }
                        Some("url") if source["url"].is_string() => {}
                        _ => {
                            return Err(format!(
                                "messages.{i}.content.{j}.image.source: Input tag does not match any of the expected tags: 'base64', 'url'"
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}
