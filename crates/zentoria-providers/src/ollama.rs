//! Ollama's native API: chat (`/api/chat`, NDJSON streaming), embeddings (`/api/embed`) and
//! models (`/api/tags`).

use std::collections::{HashMap, VecDeque};

use http::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::breaker::BreakerState;
use crate::embed::{self, EmbedRequest, Embeddings};
use crate::error::{ProviderError, protocol, unsupported};
use crate::ndjson::NdjsonParser;
use crate::provider::{ClientConfig, base_url};
use crate::transport::{ChatStream, Decoder, RequestSpec, Transport};
use crate::types::{
    ChatRequest, ChatResponse, FinishReason, ImageSource, Message, ModelInfo, ResponseFormat,
    StreamEvent, ToolCall, ToolChoice, Usage,
};
use crate::wire::{decode, finish_with_tools, parse_arguments, parse_error_body};

/// Client for an Ollama server.
#[derive(Debug)]
pub struct OllamaClient {
    transport: Transport,
    base: String,
    chat_url: crate::client::Endpoint,
    embed_url: crate::client::Endpoint,
}

impl OllamaClient {
    /// Default base URL of a local Ollama.
    pub const DEFAULT_BASE_URL: &'static str = "http://127.0.0.1:11434";
    /// Default instance name used in errors.
    pub const DEFAULT_NAME: &'static str = "ollama";

    /// Creates a client. Ollama needs no API key; if one is configured (for an authenticating
    /// reverse proxy) it is sent as `Authorization: Bearer …`.
    pub fn new(config: ClientConfig) -> Result<Self, ProviderError> {
        let name = config.name.as_deref().unwrap_or(Self::DEFAULT_NAME);
        let base = base_url(name, config.base_url.as_deref(), Self::DEFAULT_BASE_URL)?;
        let secret = config
            .api_key
            .as_deref()
            .and_then(crate::error::Secret::new);
        let mut headers = HeaderMap::new();
        if let Some(secret) = &secret {
            let mut value =
                http::header::HeaderValue::from_str(&format!("Bearer {}", secret.expose()))
                    .map_err(|_| ProviderError::Config {
                        provider: name.to_owned(),
                        message: "API key contains characters not allowed in an HTTP header".into(),
                    })?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        let transport = Transport::new(name, &config, secret, headers, parse_error_body)?;
        let chat_url = transport.endpoint(&format!("{base}/api/chat"))?;
        let embed_url = transport.endpoint(&format!("{base}/api/embed"))?;
        Ok(Self {
            transport,
            base,
            chat_url,
            embed_url,
        })
    }

    /// Instance name used in errors and [`ModelInfo::provider`].
    pub fn name(&self) -> &str {
        self.transport.name()
    }

    /// State of this client's circuit breaker.
    pub fn breaker_state(&self) -> BreakerState {
        self.transport.breaker_state()
    }

    /// Non-streaming chat (`"stream": false`). The single response object is decoded by the same
    /// code as the final line of a stream.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let spec =
            RequestSpec::post_json(&self.chat_url, &wire_request(self.name(), request, false)?);
        let name = self.name();
        self.transport
            .call_chat(&spec, |body| {
                let mut decoder = OllamaDecoder::new(name);
                let mut events = VecDeque::new();
                decoder.feed(body, &mut events)?;
                decoder.finish(&mut events)?;
                let model = decoder.model.unwrap_or_else(|| request.model.clone());
                crate::wire::response_from_events(name, events.into(), model)
            })
            .await
    }

    /// Streaming chat (NDJSON).
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let spec =
            RequestSpec::post_json(&self.chat_url, &wire_request(self.name(), request, true)?);
        let name = self.name();
        self.transport
            .stream(&spec, &request.model, || OllamaDecoder::new(name))
            .await
    }

    /// Embeds `inputs` with `model` in one request (`POST /api/embed`).
    pub async fn embed(&self, model: &str, inputs: &[String]) -> Result<Embeddings, ProviderError> {
        let request = EmbedRequest {
            model,
            input: inputs,
            encoding_format: None,
        };
        let spec = RequestSpec::post_json(&self.embed_url, &request);
        let name = self.name();
        self.transport
            .call(&spec, |body| embed::decode_ollama(name, body, inputs.len()))
            .await
    }

    /// Lists locally available models (`GET /api/tags`).
    pub async fn models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let spec = RequestSpec::get(
            self.transport
                .endpoint(&format!("{}/api/tags", self.base))?,
        );
        let name = self.name();
        self.transport
            .call(&spec, |body| {
                let tags: Tags = decode(name, "model list", body)?;
                Ok(tags
                    .models
                    .into_iter()
                    .map(|m| ModelInfo {
                        id: m.name,
                        owned_by: None,
                        provider: name.to_owned(),
                    })
                    .collect())
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Request encoding

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    stream: bool,
    /// `"json"`, or a JSON schema the answer must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<WireFormat<'a>>,
    #[serde(skip_serializing_if = "WireOptions::is_empty")]
    options: WireOptions<'a>,
    /// Whether a thinking model thinks, or how hard (`"low"`, `"medium"`, `"high"`; the
    /// levels are gpt-oss's, other thinking models take them as `true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    think: Option<WireThink<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireThink<'a> {
    On(bool),
    Level(&'a str),
}

/// `reasoning_effort` as Ollama's `think`, mapped as Ollama's own OpenAI-compatible API maps it.
fn think<'a>(
    provider: &str,
    effort: Option<&'a str>,
) -> Result<Option<WireThink<'a>>, ProviderError> {
    match effort {
        None => Ok(None),
        Some("none") => Ok(Some(WireThink::On(false))),
        Some(level @ ("low" | "medium" | "high")) => Ok(Some(WireThink::Level(level))),
        Some(other) => Err(unsupported(
            provider,
            format!(
                "Ollama takes reasoning_effort \"low\", \"medium\", \"high\" or \"none\", not {other:?}"
            ),
        )),
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireFormat<'a> {
    Json(&'static str),
    Schema(&'a Value),
}

#[derive(Serialize)]
struct WireOptions<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
}

impl WireOptions<'_> {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.top_k.is_none()
            && self.num_predict.is_none()
            && self.stop.is_empty()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
    }
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<Value>,
    /// Name of the tool whose result this is (Ollama matches results by name, not id).
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_name: Option<&'a str>,
    /// An earlier assistant turn's reasoning, which Ollama takes back.
    #[serde(skip_serializing_if = "str::is_empty")]
    thinking: &'a str,
    /// The turn's images, base64-encoded; Ollama has no place for them among the text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<&'a str>,
}

/// The request in Ollama's shape, or why Ollama cannot be asked it: its API offers the model
/// tools but cannot make it call one, nor limit it to one call.
fn wire_request<'a>(
    provider: &str,
    request: &'a ChatRequest,
    stream: bool,
) -> Result<WireRequest<'a>, ProviderError> {
    let offers_tools = !request.tools.is_empty();
    match &request.tool_choice {
        Some(ToolChoice::Required) if offers_tools => {
            return Err(unsupported(
                provider,
                "Ollama cannot be made to call a tool (tool_choice \"required\"): leave tool_choice \"auto\"",
            ));
        }
        Some(ToolChoice::Tool(name)) if offers_tools => {
            return Err(unsupported(
                provider,
                format!(
                    "Ollama cannot be made to call a given tool (tool_choice {name:?}): leave tool_choice \"auto\""
                ),
            ));
        }
        _ => {}
    }
    let think = think(provider, request.reasoning_effort.as_deref())?;
    if offers_tools && request.parallel_tool_calls == Some(false) {
        return Err(unsupported(
            provider,
            "Ollama cannot be limited to one tool call per turn (parallel_tool_calls false)",
        ));
    }
    // "none": the model is not told of the tools at all.
    let offered: &[crate::types::ToolSpec] = if request.tool_choice == Some(ToolChoice::None) {
        &[]
    } else {
        &request.tools
    };
    // Ollama has no tool-call ids; resolve our ids back to tool names for `tool_name`.
    let names: HashMap<&str, &str> = request
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter())
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    Ok(WireRequest {
        model: &request.model,
        messages: request
            .messages
            .iter()
            .map(|m| wire_message(provider, m, &names))
            .collect::<Result<_, _>>()?,
        tools: offered
            .iter()
            .map(|t| {
                serde_json::json!({
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    }
                })
            })
            .collect(),
        stream,
        format: match request.response_format.as_deref() {
            None | Some(ResponseFormat::Text) => None,
            Some(ResponseFormat::JsonObject) => Some(WireFormat::Json("json")),
            Some(ResponseFormat::JsonSchema { schema, .. }) => Some(WireFormat::Schema(schema)),
        },
        options: WireOptions {
            temperature: request.temperature,
            top_p: request.top_p,
            top_k: request.top_k,
            num_predict: request.max_tokens,
            stop: &request.stop,
            seed: request.seed,
            presence_penalty: request.presence_penalty,
            frequency_penalty: request.frequency_penalty,
        },
        think,
    })
}

fn wire_message<'a>(
    provider: &str,
    message: &'a Message,
    names: &HashMap<&str, &'a str>,
) -> Result<WireMessage<'a>, ProviderError> {
    let images = message
        .images
        .iter()
        .map(|image| match image.source() {
            Ok(ImageSource::Inline { data, .. }) => Ok(data),
            Ok(ImageSource::Web(_)) => Err(unsupported(
                provider,
                "Ollama takes images inline only: send the image as a data: URL (data:image/png;base64,…), not an address",
            )),
            Err(why) => Err(unsupported(provider, why)),
        })
        .collect::<Result<_, _>>()?;
    Ok(WireMessage {
        role: message.role.as_str(),
        content: &message.content,
        tool_calls: message
            .tool_calls
            .iter()
            .map(|c| serde_json::json!({"function": {"name": c.name, "arguments": c.arguments}}))
            .collect(),
        tool_name: message
            .tool_call_id
            .as_deref()
            .and_then(|id| names.get(id).copied()),
        thinking: &message.reasoning,
        images,
    })
}

// ---------------------------------------------------------------------------------------------
// Response decoding

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    models: Vec<TagEntry>,
}

#[derive(Deserialize)]
struct TagEntry {
    name: String,
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    message: Option<LineMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct LineMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<LineToolCall>>,
}

#[derive(Deserialize)]
struct LineToolCall {
    #[serde(default)]
    id: Option<String>,
    function: LineFunction,
}

#[derive(Deserialize)]
struct LineFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// Decodes Ollama's NDJSON stream (and its single-object non-streaming response).
pub(crate) struct OllamaDecoder {
    provider: String,
    lines: NdjsonParser,
    scratch: Vec<String>,
    calls: usize,
    done: bool,
    model: Option<String>,
}

impl OllamaDecoder {
    pub(crate) fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            lines: NdjsonParser::new(),
            scratch: Vec::new(),
            calls: 0,
            done: false,
            model: None,
        }
    }

    fn handle(&mut self, line: &str, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        let line: Line = decode(&self.provider, "stream line", line.as_bytes())?;
        if let Some(error) = line.error {
            let message = match error {
                Value::String(s) => s,
                other => other.to_string(),
            };
            return Err(ProviderError::Upstream {
                provider: self.provider.clone(),
                kind: "error".into(),
                message,
            });
        }
        if line.model.is_some() {
            self.model = line.model;
        }
        if let Some(message) = line.message {
            if let Some(text) = message.thinking.filter(|t| !t.is_empty()) {
                out.push_back(StreamEvent::Reasoning { text });
            }
            if let Some(text) = message.content.filter(|t| !t.is_empty()) {
                out.push_back(StreamEvent::Delta { text });
            }
            for call in message.tool_calls.unwrap_or_default() {
                let arguments = match call.function.arguments {
                    Value::String(raw) => {
                        parse_arguments(&self.provider, &call.function.name, &raw)?
                    }
                    Value::Null => Value::Object(Default::default()),
                    other => other,
                };
                let id = call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{}", self.calls));
                self.calls += 1;
                out.push_back(StreamEvent::ToolCall(ToolCall {
                    id,
                    name: call.function.name,
                    arguments,
                }));
            }
        }
        if line.done {
            if line.prompt_eval_count.is_some() || line.eval_count.is_some() {
                out.push_back(StreamEvent::Usage(Usage {
                    prompt_tokens: line.prompt_eval_count.unwrap_or(0),
                    completion_tokens: line.eval_count.unwrap_or(0),
                    ..Usage::default()
                }));
            }
            let reason = match line.done_reason.as_deref() {
                None | Some("stop") => FinishReason::Stop,
                Some("length") => FinishReason::Length,
                Some(other) => FinishReason::Other(other.to_owned()),
            };
            out.push_back(StreamEvent::Done {
                finish_reason: finish_with_tools(reason, self.calls > 0),
            });
            self.done = true;
        }
        Ok(())
    }

    fn handle_lines(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        let mut lines = std::mem::take(&mut self.scratch);
        let result = lines.drain(..).try_for_each(|line| self.handle(&line, out));
        self.scratch = lines;
        result
    }
}

impl Decoder for OllamaDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        let parsed = self.lines.feed(chunk, &mut self.scratch);
        self.handle_lines(out)?;
        parsed.map_err(|e| protocol(&self.provider, e.0))
    }

    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        let parsed = self.lines.finish(&mut self.scratch);
        self.handle_lines(out)?;
        parsed.map_err(|e| protocol(&self.provider, e.0))?;
        if !self.done {
            return Err(protocol(
                &self.provider,
                "stream ended without a `\"done\": true` line (connection closed early)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STREAM: &str = concat!(
        "{\"model\":\"llama3.2\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"lo ü\"},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},\"done\":false}\n",
        "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":1,\"prompt_eval_count\":26,\"eval_count\":9}\n",
    );

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut d = OllamaDecoder::new("ollama");
        let mut out = VecDeque::new();
        for c in chunks {
            d.feed(c, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out.into())
    }

    fn expected() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Delta { text: "Hel".into() },
            StreamEvent::Delta {
                text: "lo ü".into(),
            },
            StreamEvent::ToolCall(ToolCall {
                id: "call_0".into(),
                name: "get_weather".into(),
                arguments: json!({"city": "Paris"}),
            }),
            StreamEvent::Usage(Usage {
                prompt_tokens: 26,
                completion_tokens: 9,
                ..Usage::default()
            }),
            StreamEvent::Done {
                finish_reason: FinishReason::ToolCalls,
            },
        ]
    }

    #[test]
    fn decodes_stream_at_every_split_point() {
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(
                decode_all(&[&bytes[..i], &bytes[i..]]).unwrap(),
                expected(),
                "split at {i}"
            );
        }
    }

    #[test]
    fn missing_done_line_is_a_protocol_error() {
        let cut = &STREAM[..STREAM.rfind("{\"model").unwrap() + 20];
        let err = decode_all(&[cut.as_bytes()]).unwrap_err();
        assert!(matches!(err, ProviderError::Protocol { .. }), "{err}");
    }

    #[test]
    fn error_line_is_an_upstream_error() {
        let err =
            decode_all(&[b"{\"error\":\"model requires more system memory\"}\n"]).unwrap_err();
        assert!(err.to_string().contains("more system memory"));
    }

    #[test]
    fn request_shape_maps_options_and_tool_names() {
        let mut req = ChatRequest::new(
            "llama3.2",
            vec![
                Message::user("weather?"),
                Message::assistant_tool_calls(
                    "",
                    vec![ToolCall {
                        id: "call_0".into(),
                        name: "get_weather".into(),
                        arguments: json!({"city": "Paris"}),
                    }],
                ),
                Message::tool_result("call_0", "sunny"),
            ],
        );
        let v = serde_json::to_value(wire_request("ollama", &req, true).unwrap()).unwrap();
        assert!(v.get("options").is_none() && v.get("format").is_none());
        assert_eq!(v["messages"][2]["role"], json!("tool"));
        assert_eq!(v["messages"][2]["tool_name"], json!("get_weather"));
        assert_eq!(
            v["messages"][1]["tool_calls"][0]["function"]["arguments"],
            json!({"city": "Paris"})
        );
        req.max_tokens = Some(5);
        req.stop = vec!["\n".into()];
        let v = serde_json::to_value(wire_request("ollama", &req, false).unwrap()).unwrap();
        assert_eq!(v["options"], json!({"num_predict": 5, "stop": ["\n"]}));
        assert_eq!(v["stream"], json!(false));
    }

    #[test]
    fn formats_seed_and_penalties_map_to_ollamas_fields() {
        let mut req = ChatRequest::new("llama3.2", vec![Message::user("hi")]);
        req.response_format = Some(Box::new(ResponseFormat::JsonObject));
        req.seed = Some(42);
        req.presence_penalty = Some(0.25);
        req.frequency_penalty = Some(0.5);
        req.top_k = Some(40);
        let v = serde_json::to_value(wire_request("ollama", &req, false).unwrap()).unwrap();
        assert_eq!(v["format"], json!("json"));
        assert_eq!(
            v["options"],
            json!({"seed": 42, "presence_penalty": 0.25, "frequency_penalty": 0.5, "top_k": 40})
        );
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        req.response_format = Some(Box::new(ResponseFormat::JsonSchema {
            name: "n".into(),
            description: None,
            schema: schema.clone(),
            strict: None,
        }));
        let v = serde_json::to_value(wire_request("ollama", &req, false).unwrap()).unwrap();
        assert_eq!(v["format"], schema);
        req.response_format = Some(Box::new(ResponseFormat::Text));
        let v = serde_json::to_value(wire_request("ollama", &req, false).unwrap()).unwrap();
        assert!(v.get("format").is_none());
    }

    #[test]
    fn tool_choices_ollama_cannot_honour_are_refused_and_none_offers_nothing() {
        let mut req = ChatRequest::new("llama3.2", vec![Message::user("hi")]);
        req.tools = vec![crate::ToolSpec {
            name: "f".into(),
            description: String::new(),
            parameters: json!({"type": "object"}),
        }];
        for choice in [ToolChoice::Required, ToolChoice::Tool("f".into())] {
            req.tool_choice = Some(choice);
            let Err(e) = wire_request("local", &req, true) else {
                panic!("refused")
            };
            assert!(matches!(e, ProviderError::Unsupported { .. }), "{e}");
            assert!(
                e.to_string()
                    .starts_with("local: not supported: Ollama cannot"),
                "{e}"
            );
        }
        req.tool_choice = Some(ToolChoice::None);
        let v = serde_json::to_value(wire_request("local", &req, true).unwrap()).unwrap();
        assert!(v.get("tools").is_none(), "{v}");
        req.tool_choice = Some(ToolChoice::Auto);
        let v = serde_json::to_value(wire_request("local", &req, true).unwrap()).unwrap();
        assert_eq!(v["tools"][0]["function"]["name"], json!("f"));
        req.parallel_tool_calls = Some(false);
        let Err(e) = wire_request("local", &req, true) else {
            panic!("refused")
        };
        assert!(e.to_string().contains("parallel_tool_calls"), "{e}");
        req.parallel_tool_calls = Some(true);
        assert!(wire_request("local", &req, true).is_ok());
    }

    #[test]
    fn reasoning_effort_is_asked_as_think_and_thinking_comes_back_as_reasoning() {
        let mut earlier = Message::assistant("4.");
        earlier.reasoning = "Two and two.".into();
        let mut req = ChatRequest::new(
            "gpt-oss:20b",
            vec![Message::user("2+2?"), earlier, Message::user("and 3+3?")],
        );
        let v = serde_json::to_value(wire_request("ollama", &req, true).unwrap()).unwrap();
        assert!(v.get("think").is_none(), "left to the model: {v}");
        // Sent back as Ollama takes an earlier turn's thoughts.
        assert_eq!(v["messages"][1]["thinking"], json!("Two and two."));
        assert!(v["messages"][0].get("thinking").is_none());
        for (effort, think) in [
            ("low", json!("low")),
            ("medium", json!("medium")),
            ("high", json!("high")),
            ("none", json!(false)),
        ] {
            req.reasoning_effort = Some(effort.into());
            let v = serde_json::to_value(wire_request("ollama", &req, true).unwrap()).unwrap();
            assert_eq!(v["think"], think, "{effort}");
        }
        req.reasoning_effort = Some("minimal".into());
        let Err(e) = wire_request("ollama", &req, true) else {
            panic!("refused")
        };
        assert!(matches!(e, ProviderError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("\"minimal\""), "{e}");

        let stream = concat!(
            "{\"model\":\"gpt-oss:20b\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"Six\"},\"done\":false}\n",
            "{\"model\":\"gpt-oss:20b\",\"message\":{\"role\":\"assistant\",\"content\":\"6\"},\"done\":false}\n",
            "{\"model\":\"gpt-oss:20b\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n",
        );
        assert_eq!(
            decode_all(&[stream.as_bytes()]).unwrap(),
            vec![
                StreamEvent::Reasoning { text: "Six".into() },
                StreamEvent::Delta { text: "6".into() },
                StreamEvent::Done {
                    finish_reason: FinishReason::Stop
                },
            ]
        );
    }
}
