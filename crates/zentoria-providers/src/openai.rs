//! OpenAI-compatible Chat Completions API (`/v1/chat/completions`, SSE streaming).
//!
//! Works with OpenAI itself and the many servers that copy its wire format (vLLM, llama.cpp,
//! LM Studio, OpenRouter, Ollama's `/v1` endpoint, …).

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::breaker::BreakerState;
use crate::embed::{self, EmbedRequest, Embeddings};
use crate::error::{ProviderError, Secret, protocol};
use crate::provider::{ClientConfig, base_url};
use crate::sse::{FeedError, SseParser};
use crate::transport::{ChatStream, Decoder, RequestSpec, Transport};
use crate::types::{
    ChatRequest, ChatResponse, FinishReason, ImageDetail, Message, ModelInfo, Part, ResponseFormat,
    Role, StreamEvent, ToolCall, ToolChoice, Usage,
};
use crate::wire::{byte_keyed, decode, finish_with_tools, parse_arguments, parse_error_body};

/// Client for an OpenAI-compatible server.
#[derive(Debug)]
pub struct OpenAiClient {
    transport: Transport,
    api_base: String,
    chat_url: crate::client::Endpoint,
    embed_url: crate::client::Endpoint,
    /// Whether the token limit goes as `max_completion_tokens`, which OpenAI's own API takes
    /// for every model and its reasoning models require, rather than `max_tokens`, which is
    /// what OpenAI-compatible servers know.
    completion_limit: bool,
}

impl OpenAiClient {
    /// Default base URL.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com";
    /// Default instance name used in errors.
    pub const DEFAULT_NAME: &'static str = "openai";

    /// Creates a client. The base URL may include or omit the trailing `/v1`. When an API key
    /// is configured it is sent as `Authorization: Bearer …`.
    pub fn new(config: ClientConfig) -> Result<Self, ProviderError> {
        let name = config.name.as_deref().unwrap_or(Self::DEFAULT_NAME);
        let base = base_url(name, config.base_url.as_deref(), Self::DEFAULT_BASE_URL)?;
        let api_base = if base.ends_with("/v1") {
            base
        } else {
            format!("{base}/v1")
        };
        let secret = config.api_key.as_deref().and_then(Secret::new);
        let mut headers = HeaderMap::new();
        if let Some(secret) = &secret {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", secret.expose())).map_err(|_| {
                    ProviderError::Config {
                        provider: name.to_owned(),
                        message: "API key contains characters not allowed in an HTTP header".into(),
                    }
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let transport = Transport::new(name, &config, secret, headers, parse_error_body)?;
        let chat_url = transport.endpoint(&format!("{api_base}/chat/completions"))?;
        let embed_url = transport.endpoint(&format!("{api_base}/embeddings"))?;
        let completion_limit = api_base
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.host().map(|h| h.eq_ignore_ascii_case("api.openai.com")))
            .unwrap_or(false);
        Ok(Self {
            transport,
            api_base,
            chat_url,
            embed_url,
            completion_limit,
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

    /// Non-streaming chat completion.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let wire = wire_request(request, false, self.completion_limit);
        let spec = RequestSpec::post_json(&self.chat_url, &wire);
        let name = self.name();
        self.transport
            .call_chat(&spec, |body| parse_response(name, body, &request.model))
            .await
    }

    /// Streaming chat completion (SSE with `stream_options.include_usage`).
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let wire = wire_request(request, true, self.completion_limit);
        let spec = RequestSpec::post_json(&self.chat_url, &wire);
        let name = self.name();
        self.transport
            .stream(&spec, &request.model, || OpenAiDecoder::new(name))
            .await
    }

    /// Embeds `inputs` with `model` in one request (`POST /v1/embeddings`, floats).
    pub async fn embed(&self, model: &str, inputs: &[String]) -> Result<Embeddings, ProviderError> {
        let request = EmbedRequest {
            model,
            input: inputs,
            encoding_format: Some("float"),
        };
        let spec = RequestSpec::post_json(&self.embed_url, &request);
        let name = self.name();
        self.transport
            .call(&spec, |body| embed::decode_openai(name, body, inputs.len()))
            .await
    }

    /// Lists models (`GET /v1/models`).
    pub async fn models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let spec = RequestSpec::get(
            self.transport
                .endpoint(&format!("{}/models", self.api_base))?,
        );
        let name = self.name();
        self.transport
            .call(&spec, |body| {
                let list: ModelList = decode(name, "model list", body)?;
                Ok(list
                    .data
                    .into_iter()
                    .map(|m| ModelInfo {
                        id: m.id,
                        owned_by: m.owned_by,
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
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    /// Not OpenAI's: for the servers that take it (vLLM, llama.cpp), sent only when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safety_identifier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_cache_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'a str>,
}

/// `tool_choice`: `"auto"`, `"none"`, `"required"` or `{"type": "function", "function":
/// {"name": …}}`.
#[derive(Serialize)]
#[serde(untagged)]
enum WireToolChoice<'a> {
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        function: WireToolName<'a>,
    },
}

#[derive(Serialize)]
struct WireToolName<'a> {
    name: &'a str,
}

impl<'a> WireToolChoice<'a> {
    fn of(choice: &'a ToolChoice) -> Self {
        match choice {
            ToolChoice::Auto => WireToolChoice::Mode("auto"),
            ToolChoice::None => WireToolChoice::Mode("none"),
            ToolChoice::Required => WireToolChoice::Mode("required"),
            ToolChoice::Tool(name) => WireToolChoice::Named {
                kind: "function",
                function: WireToolName { name },
            },
        }
    }
}

/// `response_format`: `{"type": "json_object"}` or `{"type": "json_schema", "json_schema":
/// {name, description, schema, strict}}`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireResponseFormat<'a> {
    JsonObject,
    JsonSchema { json_schema: WireJsonSchema<'a> },
}

#[derive(Serialize)]
struct WireJsonSchema<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

impl<'a> WireResponseFormat<'a> {
    /// `None` for free text, the default, which is not sent.
    fn of(format: &'a ResponseFormat) -> Option<Self> {
        match format {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some(WireResponseFormat::JsonObject),
            ResponseFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            } => Some(WireResponseFormat::JsonSchema {
                json_schema: WireJsonSchema {
                    name,
                    description: description.as_deref(),
                    schema,
                    strict: *strict,
                },
            }),
        }
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    /// `null` for an assistant turn that only calls tools.
    content: Option<WireContent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

/// A string, or text and image parts in order when the turn has images.
#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Text(&'a str),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImageUrl<'a> },
}

#[derive(Serialize)]
struct WireImageUrl<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    /// OpenAI transports arguments as a JSON-encoded string.
    arguments: String,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    parameters: &'a Value,
}

/// `completion_limit`: the token limit goes as `max_completion_tokens`, not `max_tokens`.
fn wire_request(request: &ChatRequest, stream: bool, completion_limit: bool) -> WireRequest<'_> {
    let ids = request.ids.as_deref();
    WireRequest {
        model: &request.model,
        messages: request.messages.iter().map(wire_message).collect(),
        tools: request
            .tools
            .iter()
            .map(|t| WireTool {
                kind: "function",
                function: WireFunction {
                    name: &t.name,
                    description: &t.description,
                    parameters: &t.parameters,
                },
            })
            .collect(),
        temperature: request.temperature,
        max_tokens: request.max_tokens.filter(|_| !completion_limit),
        max_completion_tokens: request.max_tokens.filter(|_| completion_limit),
        top_p: request.top_p,
        top_k: request.top_k,
        stop: &request.stop,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        // OpenAI refuses both without tools.
        tool_choice: request
            .tool_choice
            .as_ref()
            .filter(|_| !request.tools.is_empty())
            .map(WireToolChoice::of),
        parallel_tool_calls: request
            .parallel_tool_calls
            .filter(|_| !request.tools.is_empty()),
        response_format: request
            .response_format
            .as_deref()
            .and_then(WireResponseFormat::of),
        seed: request.seed,
        presence_penalty: request.presence_penalty,
        frequency_penalty: request.frequency_penalty,
        reasoning_effort: request.reasoning_effort.as_deref(),
        user: ids.and_then(|i| i.user.as_deref()),
        safety_identifier: ids.and_then(|i| i.safety_identifier.as_deref()),
        prompt_cache_key: ids.and_then(|i| i.prompt_cache_key.as_deref()),
        metadata: ids.and_then(|i| i.metadata.as_ref()),
        store: ids.and_then(|i| i.store),
        service_tier: ids.and_then(|i| i.service_tier.as_deref()),
    }
}

fn wire_message(message: &Message) -> WireMessage<'_> {
    let content = if message.role == Role::Assistant
        && message.content.is_empty()
        && !message.tool_calls.is_empty()
    {
        None
    } else if message.images.is_empty() {
        Some(WireContent::Text(&message.content))
    } else {
        Some(WireContent::Parts(
            message
                .parts()
                .into_iter()
                .map(|part| match part {
                    Part::Text(text) => WirePart::Text { text },
                    Part::Image(image) => WirePart::ImageUrl {
                        image_url: WireImageUrl {
                            url: &image.url,
                            detail: image.detail.map(ImageDetail::as_str),
                        },
                    },
                })
                .collect(),
        ))
    };
    WireMessage {
        role: message.role.as_str(),
        content,
        tool_calls: message
            .tool_calls
            .iter()
            .map(|call| WireToolCall {
                id: &call.id,
                kind: "function",
                function: WireFunctionCall {
                    name: &call.name,
                    arguments: call.arguments.to_string(),
                },
            })
            .collect(),
        tool_call_id: message.tool_call_id.as_deref(),
    }
}

// ---------------------------------------------------------------------------------------------
// Response decoding

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
    #[serde(default)]
    owned_by: Option<String>,
}

#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    prompt_tokens_details: Option<WireTokenDetails>,
    completion_tokens_details: Option<WireTokenDetails>,
}
byte_keyed!(WireUsage {
    prompt_tokens,
    completion_tokens,
    prompt_tokens_details,
    completion_tokens_details
});

/// `prompt_tokens_details` and `completion_tokens_details` (OpenAI, DeepSeek, vLLM): each
/// has other counts (audio, predictions) that are not read; servers send `null` for some.
#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct WireTokenDetails {
    cached_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}
byte_keyed!(WireTokenDetails {
    cached_tokens,
    reasoning_tokens
});

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

// A whole answer, decoded by key as bytes like the stream's events (`byte_keyed!`); a
// required part that is missing is refused in `parse_response`.
#[derive(Default)]
struct WireResponse {
    model: Option<String>,
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}
byte_keyed!(WireResponse {
    model,
    choices,
    usage
});

#[derive(Default)]
struct WireChoice {
    message: Option<WireResponseMessage>,
    finish_reason: Option<String>,
}
byte_keyed!(WireChoice {
    message,
    finish_reason
});

#[derive(Default)]
struct WireResponseMessage {
    content: Option<String>,
    tool_calls: Option<Vec<WireResponseToolCall>>,
    reasoning_content: Option<Value>,
    reasoning: Option<Value>,
}
byte_keyed!(WireResponseMessage {
    content,
    tool_calls,
    reasoning_content,
    reasoning
});

/// A reasoning model's thoughts, where compatible servers put them: `reasoning_content`
/// (DeepSeek, vLLM, llama.cpp, LM Studio) or `reasoning` (Ollama's and OpenRouter's). Read as
/// values: a server that sends something other than a string there (OpenRouter's request-side
/// `reasoning` is an object) has its answer read all the same, without the thoughts.
fn reasoning_of(reasoning_content: Option<Value>, reasoning: Option<Value>) -> Option<String> {
    [reasoning_content, reasoning]
        .into_iter()
        .flatten()
        .find_map(|v| match v {
            Value::String(text) if !text.is_empty() => Some(text),
            _ => None,
        })
}

#[derive(Default)]
struct WireResponseToolCall {
    id: Option<String>,
    function: Option<WireResponseFunction>,
}
byte_keyed!(WireResponseToolCall { id, function });

#[derive(Default)]
struct WireResponseFunction {
    name: Option<String>,
    /// A JSON-encoded string per the spec; some compatible servers send an object.
    arguments: Value,
}
byte_keyed!(WireResponseFunction { name, arguments });

fn map_finish(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn arguments_value(provider: &str, tool: &str, raw: Value) -> Result<Value, ProviderError> {
    match raw {
        Value::String(s) => parse_arguments(provider, tool, &s),
        Value::Null => Ok(Value::Object(Default::default())),
        other => Ok(other),
    }
}

fn parse_response(
    provider: &str,
    body: &[u8],
    requested_model: &str,
) -> Result<ChatResponse, ProviderError> {
    let response: WireResponse = decode(provider, "chat completion", body)?;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| protocol(provider, "chat completion has no choices"))?;
    let message = choice
        .message
        .ok_or_else(|| protocol(provider, "chat completion choice has no message"))?;
    let mut events = Vec::new();
    if let Some(text) = reasoning_of(message.reasoning_content, message.reasoning) {
        events.push(StreamEvent::Reasoning { text });
    }
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        events.push(StreamEvent::Delta { text });
    }
    let calls = message.tool_calls.unwrap_or_default();
    let called_tools = !calls.is_empty();
    for (i, call) in calls.into_iter().enumerate() {
        let (Some(function), id) = (call.function, call.id) else {
            return Err(protocol(provider, "tool call has no function"));
        };
        let name = function
            .name
            .ok_or_else(|| protocol(provider, "tool call has no function name"))?;
        let arguments = arguments_value(provider, &name, function.arguments)?;
        events.push(StreamEvent::ToolCall(ToolCall {
            id: id.unwrap_or_else(|| format!("call_{i}")),
            name,
            arguments,
        }));
    }
    if let Some(usage) = response.usage {
        events.push(StreamEvent::Usage(usage.into()));
    }
    let finish = choice
        .finish_reason
        .as_deref()
        .map_or(FinishReason::Stop, map_finish);
    events.push(StreamEvent::Done {
        finish_reason: finish_with_tools(finish, called_tools),
    });
    let model = response.model.unwrap_or_else(|| requested_model.to_owned());
    crate::wire::response_from_events(provider, events, model)
}

// The stream's events, decoded with keys compared as bytes (see `byte_keyed!`): the largest
// cost of relaying a stream.
#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct Chunk<'a> {
    choices: Vec<ChunkChoice<'a>>,
    usage: Option<WireUsage>,
    error: Option<Value>,
    /// The key of the first of those members, as it sits in the bytes read, when it holds no
    /// escapes: what comes before it is never read (see [`OpenAiDecoder::head`]).
    first_read: Option<&'a [u8]>,
}

impl<'de> Deserialize<'de> for Chunk<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        enum Key {
            Choices,
            Usage,
            Error,
            Other,
        }

        /// A key, and where it sits when it was read as it is.
        struct KeyAt<'a>(Key, Option<&'a [u8]>);

        impl<'de> Deserialize<'de> for KeyAt<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct KeyVisitor;
                impl<'de> serde::de::Visitor<'de> for KeyVisitor {
                    type Value = KeyAt<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a field name")
                    }
                    fn visit_borrowed_bytes<E: serde::de::Error>(
                        self,
                        v: &'de [u8],
                    ) -> Result<KeyAt<'de>, E> {
                        let KeyAt(key, _) = self.visit_bytes(v)?;
                        Ok(KeyAt(key, Some(v)))
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<KeyAt<'de>, E> {
                        Ok(KeyAt(
                            match v {
                                b"choices" => Key::Choices,
                                b"usage" => Key::Usage,
                                b"error" => Key::Error,
                                _ => Key::Other,
                            },
                            None,
                        ))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyAt<'de>, E> {
                        self.visit_bytes(v.as_bytes())
                    }
                }
                d.deserialize_bytes(KeyVisitor)
            }
        }

        struct ObjectVisitor;
        impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
            type Value = Chunk<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object (Chunk)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Chunk<'de>, A::Error> {
                let mut chunk = Chunk::default();
                let mut read_before = false;
                while let Some(KeyAt(key, at)) = map.next_key()? {
                    if !matches!(key, Key::Other) && !read_before {
                        read_before = true;
                        chunk.first_read = at;
                    }
                    match key {
                        Key::Choices => chunk.choices = map.next_value()?,
                        Key::Usage => chunk.usage = map.next_value()?,
                        Key::Error => chunk.error = map.next_value()?,
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(chunk)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct ChunkChoice<'a> {
    delta: Option<ChunkDelta<'a>>,
    finish_reason: Option<String>,
}
byte_keyed!(ChunkChoice<'a> {
    delta,
    finish_reason
});

#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct ChunkDelta<'a> {
    content: Option<Text<'a>>,
    tool_calls: Option<Vec<DeltaToolCall>>,
    reasoning_content: Option<Value>,
    reasoning: Option<Value>,
}
byte_keyed!(ChunkDelta<'a> {
    content,
    tool_calls,
    reasoning_content,
    reasoning
});

/// A chunk's text, borrowed from the chunk's bytes when it holds no escapes: where it sits then
/// gives a text chunk's [`Shape`] without reading the chunk a second time.
#[cfg_attr(test, derive(Debug, PartialEq))]
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct DeltaToolCall {
    index: Option<usize>,
    id: Option<String>,
    function: Option<DeltaFunction>,
}
byte_keyed!(DeltaToolCall {
    index,
    id,
    function
});

#[derive(Default)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct DeltaFunction {
    name: Option<String>,
    arguments: Option<String>,
}
byte_keyed!(DeltaFunction { name, arguments });

#[derive(Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Decodes the SSE stream of `chat.completion.chunk` objects.
pub(crate) struct OpenAiDecoder {
    provider: String,
    sse: SseParser,
    calls: BTreeMap<usize, PartialCall>,
    emitted_calls: usize,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
    /// The last plain text chunk's shape, for [`Shape::text_of`].
    shape: Option<Shape>,
    /// How many more text chunks may be taken for their shape (see [`SHAPE_TRIES`]).
    shapes_left: u8,
    /// The members a chunk decoded in full opened with before its first member that is read
    /// (`choices`, `usage` or `error`), with the `{` before them and the `,` after: `id`,
    /// `object`, `created`, `model`, `system_fingerprint`, … — byte for byte the same in every
    /// chunk of most streams, and never read. A later chunk decoded in full that starts with
    /// these bytes is read from its first read member on (as `{` and the rest, in `scratch`),
    /// which passed over six members in each of the four chunks of an OpenAI stream that are
    /// decoded in full. Empty when there is none.
    head: Vec<u8>,
    scratch: Vec<u8>,
    /// Whether heads are cut (the tests compare with a decoder that does not).
    cut_heads: bool,
}

/// How many text chunks of one stream may give a [`Shape`] (each copies the chunk): a server
/// whose chunks all differ outside their text in other ways, or whose texts keep holding
/// escapes (no shape then), stops paying for the copies after this.
const SHAPE_TRIES: u8 = 8;

/// A chunk that carried only text, cut around that text: `prefix` + a JSON string + `suffix`,
/// or, when the chunk ends with a member whose value is a string, `prefix` + a JSON string +
/// `middle` + any plain JSON string + `suffix`.
///
/// Most servers send a stream's text chunks byte for byte alike but for the text (same id,
/// `created`, model and layout), and decoding each one in full was the largest cost of relaying
/// a stream. A chunk that is this shape's prefix, one JSON string, then its suffix decodes
/// exactly as the chunk the shape came from with that string as its text (a JSON document with
/// one string value replaced by another has the same structure), so only the string is
/// decoded. Anything else is decoded in full.
///
/// OpenAI ends every chunk with `"obfuscation"`, random characters of a length that varies from
/// chunk to chunk (to even out the events' sizes); without the second string no two of its
/// chunks had the same shape and every one was decoded in full, 2.2 times the instructions of a
/// stream. A string that is the last member of a chunk that [`Shape::fits`] is never read (the
/// members read are `choices`, `usage` and `error`, none a string there), so any plain string
/// may stand in its place.
struct Shape {
    /// The chunk the shape was taken from.
    data: Vec<u8>,
    /// Where its text's JSON string starts and ends in `data`.
    start: usize,
    end: usize,
    /// Where the last member's string value, quotes included, starts and ends in `data` when
    /// the chunk ends with one.
    last: Option<(usize, usize)>,
}

impl Shape {
    /// Whether decoding a chunk gave `chunk` holding nothing but one choice's text: no finish
    /// reason, tool calls, usage or error, whose state the fast path would not update.
    fn fits(chunk: &Chunk) -> bool {
        let [choice] = chunk.choices.as_slice() else {
            return false;
        };
        // Not an empty text: servers open a stream with `{"role":"assistant","content":""}`,
        // whose shape (with its role) no later chunk has.
        choice.delta.as_ref().is_some_and(|delta| {
            delta.content.as_deref().is_some_and(|t| !t.is_empty())
                && delta.tool_calls.is_none()
                && delta.reasoning_content.is_none()
                && delta.reasoning.is_none()
                && choice.finish_reason.is_none()
                && chunk.usage.is_none()
                && chunk.error.is_none()
        })
    }

    /// The shape of `data`, a chunk that [`Shape::fits`] with `text` its text as the decoder
    /// read it from `read`: `data` itself, or `data` with its head cut off (see
    /// [`OpenAiDecoder::head`]), so a suffix of `data` whatever precedes it. Only a text
    /// borrowed from those bytes (no escapes) says where it sits; one with escapes gives no
    /// shape (the next chunk may).
    fn at(data: &[u8], read: &[u8], text: &Text<'_>) -> Option<Shape> {
        let Cow::Borrowed(text) = text.0 else {
            return None;
        };
        // The string's quotes around the borrowed text, where they are in `data`.
        let start = (text.as_ptr() as usize)
            .checked_sub(read.as_ptr() as usize)?
            .checked_add(data.len().checked_sub(read.len())?)?
            .checked_sub(1)?;
        let end = start + text.len() + 2;
        (data.get(start) == Some(&b'"') && data.get(end - 1) == Some(&b'"')).then(|| Shape {
            data: data.to_vec(),
            start,
            end,
            last: last_string(data).filter(|&(open, _)| open >= end),
        })
    }

    /// The text of `data` if it is this shape with another string in the text's place (and,
    /// if the shape ends with a string member, any plain string in that one's).
    fn text_of(&self, data: &[u8]) -> Option<String> {
        let rest = data.strip_prefix(&self.data[..self.start])?;
        let text = match self.last {
            None => rest.strip_suffix(&self.data[self.end..])?,
            Some((open, close)) => {
                let (middle, suffix) = (&self.data[self.end..open], &self.data[close..]);
                let rest = rest.strip_suffix(suffix)?;
                let (last_open, _) = last_string(rest)?;
                rest[..last_open].strip_suffix(middle)?
            }
        };
        // Exactly one string and nothing else, or the chunk is decoded in full.
        crate::json::string(text)
    }
}

/// Where the plain JSON string that ends `data` (before one closing `}`, if there is one)
/// starts and ends, quotes included: the string is a member's value (`:` before it) and holds
/// no byte that would need escaping, so its opening quote is the last quote before its closing
/// one. `None` when `data` does not end so.
fn last_string(data: &[u8]) -> Option<(usize, usize)> {
    let body = data.strip_suffix(b"}").unwrap_or(data);
    let inner_end = body.len().checked_sub(1).filter(|&i| body[i] == b'"')?;
    let open = memchr::memrchr(b'"', &body[..inner_end])?;
    let inner = &body[open + 1..inner_end];
    (open > 0
        && body[open - 1] == b':'
        && crate::json::is_plain(inner)
        // OpenAI's padding is ASCII: checked eight bytes at a time, without a call.
        && (inner.is_ascii() || std::str::from_utf8(inner).is_ok()))
    .then_some((open, body.len()))
}

impl OpenAiDecoder {
    pub(crate) fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            sse: SseParser::new(),
            calls: BTreeMap::new(),
            emitted_calls: 0,
            finish: None,
            usage: None,
            done: false,
            shape: None,
            shapes_left: SHAPE_TRIES,
            head: Vec::new(),
            scratch: Vec::new(),
            cut_heads: true,
        }
    }

    /// Takes the head of `data`, a chunk just decoded in full from its own bytes whose first
    /// read member's key is `first_read` (see [`OpenAiDecoder::head`]).
    fn take_head(&mut self, data: &[u8], first_read: Option<&[u8]>) {
        self.head.clear();
        let Some(key) = first_read.filter(|_| self.cut_heads) else {
            return;
        };
        // The key's opening quote. The members before it were decoded as such, so the bytes
        // up to it are `{`, whole members and a `,` (with whatever space was around them).
        let Some(open) = (key.as_ptr() as usize)
            .checked_sub(data.as_ptr() as usize)
            .and_then(|i| i.checked_sub(1))
        else {
            return;
        };
        let head = &data[..open];
        if data.get(open) == Some(&b'"') && head.trim_ascii_end().ends_with(b",") {
            self.head.extend_from_slice(head);
        }
    }

    fn flush_calls(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        for (index, call) in std::mem::take(&mut self.calls) {
            if call.name.is_empty() {
                return Err(protocol(
                    &self.provider,
                    format!("streamed tool call #{index} has no function name"),
                ));
            }
            let arguments = parse_arguments(&self.provider, &call.name, &call.arguments)?;
            let id = call
                .id
                .unwrap_or_else(|| format!("call_{}", self.emitted_calls));
            self.emitted_calls += 1;
            out.push_back(StreamEvent::ToolCall(ToolCall {
                id,
                name: call.name,
                arguments,
            }));
        }
        Ok(())
    }

    fn handle(
        &mut self,
        data: &[u8],
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.flush_calls(out)?;
            if let Some(usage) = self.usage.take() {
                out.push_back(StreamEvent::Usage(usage));
            }
            let finish = self.finish.take().unwrap_or(FinishReason::Stop);
            out.push_back(StreamEvent::Done {
                finish_reason: finish_with_tools(finish, self.emitted_calls > 0),
            });
            self.done = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        if let Some(text) = self.shape.as_ref().and_then(|s| s.text_of(data)) {
            if !text.is_empty() {
                out.push_back(StreamEvent::Delta { text });
            }
            return Ok(());
        }
        // Out of `self` while the chunk borrows from it.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        // What follows the head must be a key: after a `,` nothing else is JSON, but `{` and
        // a `}` would be (`{"id":"c1",}` is not JSON, `{}` is).
        if let Some(rest) = data
            .strip_prefix(self.head.as_slice())
            .filter(|rest| !self.head.is_empty() && rest.first() == Some(&b'"'))
        {
            scratch.push(b'{');
            scratch.extend_from_slice(rest);
        }
        let read = self.read(data, &scratch, out);
        self.scratch = scratch;
        read
    }

    /// Reads a chunk in full: from `cut` (the chunk without its head, see
    /// [`OpenAiDecoder::head`]) unless that is empty, else from `data`.
    fn read(
        &mut self,
        data: &[u8],
        cut: &[u8],
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), ProviderError> {
        // A chunk that does not decode without its head is decoded again in full, for the
        // error to say what the upstream sent.
        let headless = (!cut.is_empty())
            .then(|| serde_json::from_slice::<Chunk<'_>>(cut).ok())
            .flatten();
        let (chunk, read) = match headless {
            Some(chunk) => (chunk, cut),
            None => {
                let chunk: Chunk<'_> = decode(&self.provider, "stream chunk", data)?;
                self.take_head(data, chunk.first_read);
                (chunk, data)
            }
        };
        if self.shapes_left > 0 && Shape::fits(&chunk) {
            self.shapes_left -= 1;
            let text = chunk.choices[0]
                .delta
                .as_ref()
                .and_then(|d| d.content.as_ref());
            if let Some(shape) = text.and_then(|text| Shape::at(data, read, text)) {
                self.shape = Some(shape);
            }
        }
        if let Some(error) = chunk.error {
            let body = serde_json::json!({ "error": error }).to_string();
            let (message, kind) =
                parse_error_body(body.as_bytes()).unwrap_or_else(|| (error.to_string(), None));
            return Err(ProviderError::Upstream {
                provider: self.provider.clone(),
                kind: kind.unwrap_or_else(|| "error".into()),
                message,
            });
        }
        for choice in chunk.choices {
            if let Some(delta) = choice.delta {
                if let Some(text) = reasoning_of(delta.reasoning_content, delta.reasoning) {
                    out.push_back(StreamEvent::Reasoning { text });
                }
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push_back(StreamEvent::Delta {
                        text: text.0.into_owned(),
                    });
                }
                for (position, piece) in
                    delta.tool_calls.unwrap_or_default().into_iter().enumerate()
                {
                    let index = piece.index.unwrap_or(position);
                    let call = self.calls.entry(index).or_default();
                    if let Some(id) = piece.id.filter(|id| !id.is_empty()) {
                        call.id = Some(id);
                    }
                    if let Some(function) = piece.function {
                        if let Some(name) = function.name {
                            call.name.push_str(&name);
                        }
                        if let Some(arguments) = function.arguments {
                            call.arguments.push_str(&arguments);
                        }
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.flush_calls(out)?;
                self.finish = Some(map_finish(&reason));
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        Ok(())
    }
}

impl Decoder for OpenAiDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        // Out of `self` while it hands events to `self.handle`.
        let mut sse = std::mem::take(&mut self.sse);
        let fed = sse.feed_with(chunk, |_, data| self.handle(data, out));
        self.sse = sse;
        fed.map_err(|e| match e {
            FeedError::Sse(e) => protocol(&self.provider, e.0),
            FeedError::Handler(e) => e,
        })
    }

    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        let mut events = Vec::new();
        self.sse.finish(&mut events);
        for event in events {
            self.handle(&event.data, out)?;
        }
        if !self.done {
            return Err(protocol(
                &self.provider,
                "stream ended without `data: [DONE]` (connection closed early)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn chunk(bytes: &[u8]) -> Result<Chunk<'_>, ProviderError> {
        decode("openai", "stream chunk", bytes)
    }

    #[test]
    fn chunks_decode_by_key_with_escapes_unknowns_and_nulls() {
        let raw = r#"{"id": "x", "object": "chat.completion.chunk", "created": 1, "extra": {"deep": [1, {"a": null}]},
            "choices": [{"index": 0, "logprobs": null, "finish_reason": null,
                         "delta": {"role": "assistant", "content": "h\u00e9 \"q\" \n"}},
                        {"delta": null, "finish_reason": "stop"}],
            "us\u0061ge": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}"#;
        // (An escaped key is still the key it spells.)
        let parsed: Result<Chunk, _> = decode("openai", "stream chunk", raw.as_bytes());
        let parsed = parsed.unwrap();
        assert_eq!(parsed.choices.len(), 2);
        let delta = parsed.choices[0].delta.as_ref().unwrap();
        assert_eq!(delta.content.as_deref(), Some("hé \"q\" \n"));
        assert_eq!(parsed.choices[1].delta, None);
        assert_eq!(parsed.choices[1].finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            parsed.usage,
            Some(WireUsage {
                prompt_tokens: 3,
                completion_tokens: 4,
                ..WireUsage::default()
            })
        );
        assert_eq!(parsed.error, None);
        // Missing keys default; a wrong type or a non-object is an error, not a guess.
        assert_eq!(
            chunk(json!({}).to_string().as_bytes()).unwrap(),
            Chunk::default()
        );
        assert!(chunk(json!({"choices": "nope"}).to_string().as_bytes()).is_err());
        assert!(chunk(json!([1, 2]).to_string().as_bytes()).is_err());
        assert!(
            chunk(
                json!({"choices": [{"delta": {"content": 5}}]})
                    .to_string()
                    .as_bytes()
            )
            .is_err()
        );
    }

    #[test]
    fn whole_answers_decode_by_key_and_refuse_missing_parts() {
        let raw = r#"{"usage": {"total_tokens": 7, "completion_tokens": 4, "prompt_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 1, "audio_tokens": null,
                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
            "system_fingerprint": null, "created": 1, "object": "chat.completion",
            "choices": [{"logprobs": null, "finish_reason": "tool_calls", "index": 0,
                "message": {"refusal": null, "role": "assistant", "content": "h\u00e9",
                    "tool_calls": [
                        {"type": "function", "id": "call_a", "function": {"arguments": "{\"q\":1}", "name": "search"}},
                        {"function": {"name": "noop", "arguments": {"x": true}}}]}}],
            "m\u006fdel": "gpt-4o-mini-2024-07-18", "id": "chatcmpl-1"}"#;
        let r = parse_response("openai", raw.as_bytes(), "asked").unwrap();
        assert_eq!(r.message.content, "hé");
        assert_eq!(r.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            r.usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                cached_tokens: 2,
                reasoning_tokens: 1
            })
        );
        let calls = &r.message.tool_calls;
        assert_eq!(
            (calls[0].id.as_str(), calls[0].name.as_str()),
            ("call_a", "search")
        );
        assert_eq!(calls[0].arguments, json!({"q": 1}));
        assert_eq!(
            (calls[1].id.as_str(), calls[1].name.as_str()),
            ("call_1", "noop")
        );
        assert_eq!(calls[1].arguments, json!({"x": true}));

        let minimal = parse_response(
            "openai",
            br#"{"choices": [{"message": {"content": "hi"}}]}"#,
            "asked",
        )
        .unwrap();
        assert_eq!(
            (minimal.message.content.as_str(), minimal.model.as_str()),
            ("hi", "asked")
        );
        assert_eq!(minimal.finish_reason, FinishReason::Stop);

        for (body, says) in [
            (r#"{"choices": []}"#, "no choices"),
            (r#"{"choices": [{"finish_reason": "stop"}]}"#, "no message"),
            (
                r#"{"choices": [{"message": {"tool_calls": [{"id": "c"}]}}]}"#,
                "no function",
            ),
            (
                r#"{"choices": [{"message": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]}"#,
                "no function name",
            ),
            (
                r#"{"choices": {"message": {}}}"#,
                "malformed chat completion",
            ),
            (r#"[1, 2]"#, "malformed chat completion"),
        ] {
            match parse_response("openai", body.as_bytes(), "asked") {
                Err(ProviderError::Protocol { message, .. }) => {
                    assert!(message.contains(says), "{body}: {message}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    proptest! {
        /// Whatever the key order, unknown keys and the text, a chunk decodes to what was sent.
        #[test]
        fn chunks_round_trip(
            text in "\\PC{0,40}",
            finish in proptest::option::of("[a-z_]{1,12}"),
            id in proptest::option::of("\\PC{0,12}"),
            noise in proptest::collection::vec(("[a-z_]{1,10}", "\\PC{0,10}"), 0..4),
            reverse in any::<bool>(),
        ) {
            let mut delta = serde_json::Map::new();
            for (k, v) in &noise {
                if !["content", "tool_calls", "reasoning_content", "reasoning"].contains(&k.as_str()) {
                    delta.insert(k.clone(), json!(v));
                }
            }
            delta.insert("content".into(), json!(text));
            delta.insert("tool_calls".into(), json!([{"index": 2, "id": id, "function": {"name": "f", "arguments": text}}]));
            let mut fields: Vec<(String, Value)> = vec![
                ("choices".into(), json!([{"delta": delta, "finish_reason": finish}])),
                ("model".into(), json!("m")),
            ];
            if reverse {
                fields.reverse();
            }
            let object: serde_json::Map<String, Value> = fields.into_iter().collect();
            let bytes = Value::Object(object).to_string();
            let parsed = chunk(bytes.as_bytes()).unwrap();
            // The first member read is found wherever it is.
            prop_assert_eq!(parsed.first_read, Some(&b"choices"[..]));
            let expected = Chunk {
                choices: vec![ChunkChoice {
                    delta: Some(ChunkDelta {
                        content: Some(Text(text.clone().into())),
                        tool_calls: Some(vec![DeltaToolCall {
                            index: Some(2),
                            id: id.clone(),
                            function: Some(DeltaFunction {
                                name: Some("f".into()),
                                arguments: Some(text.clone()),
                            }),
                        }]),
                        reasoning_content: None,
                        reasoning: None,
                    }),
                    finish_reason: finish.clone(),
                }],
                usage: None,
                error: None,
                first_read: parsed.first_read,
            };
            prop_assert_eq!(parsed, expected);
        }

        /// Hostile bytes are an error or a chunk, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode::<Chunk>("openai", "stream chunk", &bytes);
        }
    }

    /// Decodes `events` (each a `data:` payload) with shapes and heads cut (`fast`) or each
    /// chunk in full.
    fn decode_events(events: &[String], fast: bool) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut d = OpenAiDecoder::new("openai");
        if !fast {
            d.shapes_left = 0;
            d.cut_heads = false;
        }
        let mut out = VecDeque::new();
        for e in events {
            d.feed(format!("data: {e}\n\n").as_bytes(), &mut out)?;
        }
        d.feed(b"data: [DONE]\n\n", &mut out)?;
        d.finish(&mut out)?;
        Ok(out.into())
    }

    /// The texts of `events`' text deltas.
    fn delta_texts(events: &[StreamEvent]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Delta { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// A chunk of one of a few layouts with `text` in it; some put more than a string where
    /// another layout has its text. Those that end with a member `pad` is written into (as a
    /// JSON string, or as it is to make a chunk that is not JSON) are OpenAI's of today.
    fn shaped(kind: u8, text: &str, pad: &str) -> String {
        let t = json!(text).to_string();
        let p = json!(pad).to_string();
        let head = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":"#;
        let openai = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":"#;
        match kind % 21 {
            // Heads other than the usual: another `created` (a head that differs from the
            // last one taken), with spaces, none (`choices` first), `usage` read before
            // `choices`, the first read key escaped.
            15 => format!(
                r#"{{"id":"c1","object":"chat.completion.chunk","created":2,"model":"m","choices":[{{"index":0,"delta":{{"content":{t}}},"finish_reason":null}}],"obfuscation":{p}}}"#
            ),
            16 => format!(
                r#"{{ "id" : "c1" , "created":1, "choices" : [{{"index":0,"delta":{{"content":{t}}},"finish_reason":null}}] }}"#
            ),
            17 => format!(
                r#"{{"choices":[{{"index":0,"delta":{{"content":{t}}},"finish_reason":null}}],"id":"c1","obfuscation":{p}}}"#
            ),
            18 => format!(
                r#"{{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","usage":null,"choices":[{{"index":0,"delta":{{"content":{t}}},"finish_reason":null}}]}}"#
            ),
            19 => format!(
                r#"{{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","ch\u006fices":[{{"index":0,"delta":{{"content":{t}}},"finish_reason":null}}]}}"#
            ),
            // OpenAI's head and nothing after its comma: not JSON (though `{` and the rest is).
            20 => r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","service_tier":"default","system_fingerprint":"fp_1",}"#.to_owned(),
            10 => format!(
                r#"{openai}{{"content":{t}}},"logprobs":null,"finish_reason":null}}],"usage":null,"obfuscation":{p}}}"#
            ),
            // The padding as it is: not always a JSON string.
            11 => format!(
                r#"{openai}{{"content":{t}}},"logprobs":null,"finish_reason":null}}],"usage":null,"obfuscation":"{pad}"}}"#
            ),
            12 => format!(
                r#"{openai}{{"content":{t}}},"logprobs":null,"finish_reason":"stop"}}],"usage":null,"obfuscation":{p}}}"#
            ),
            // A last member that is not a string, and one that is a string but not last.
            13 => format!(
                r#"{openai}{{"content":{t}}},"logprobs":null,"finish_reason":null}}],"usage":null,"obfuscation":[{p}]}}"#
            ),
            14 => format!(
                r#"{openai}{{"content":{t}}},"logprobs":null,"finish_reason":null}}],"obfuscation":{p},"usage":null}}"#
            ),
            kind => shaped_plain(kind, &t, head),
        }
    }

    fn shaped_plain(kind: u8, t: &str, head: &str) -> String {
        match kind {
            0 => format!(r#"{head}{{"content":{t}}},"logprobs":null,"finish_reason":null}}]}}"#),
            1 => format!(r#"{head}{{"role":"assistant","content":{t}}},"finish_reason":null}}]}}"#),
            // The text slot of layout 0 holding a string and another key.
            2 => format!(
                r#"{head}{{"content":{t},"content":"x"}},"logprobs":null,"finish_reason":null}}]}}"#
            ),
            3 => {
                format!(r#"{head}{{"content":{t}}},"logprobs":null,"finish_reason":"length"}}]}}"#)
            }
            4 => format!(
                r#"{head}{{"content":{t},"tool_calls":[{{"index":0,"id":"k","function":{{"name":"f","arguments":"{{}}"}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
            ),
            5 => format!(r#"{head}{{"content": {t} }},"logprobs":null,"finish_reason":null}}]}}"#),
            6 => format!(
                r#"{head}{{"content":{t}}},"logprobs":null,"finish_reason":null}}],"usage":{{"prompt_tokens":1,"completion_tokens":2}}}}"#
            ),
            // DeepSeek's: the reasoning's slot beside the text, null while answering.
            7 => format!(
                r#"{head}{{"content":{t},"reasoning_content":null}},"logprobs":null,"finish_reason":null}}]}}"#
            ),
            // …and the text's slot null while reasoning.
            8 => format!(
                r#"{head}{{"content":null,"reasoning_content":{t}}},"logprobs":null,"finish_reason":null}}]}}"#
            ),
            _ => format!(r#"{head}{{"content":null}},"logprobs":null,"finish_reason":null}}]}}"#),
        }
    }

    #[test]
    fn text_chunks_alike_but_for_their_text_decode_as_in_full() {
        let texts = ["Hel", "lo, \"wo\"", "rld \u{e9}\u{1F600}", "", "\\n", "end"];
        // Layout 0 as most servers send it; 10 as OpenAI does, with padding that differs in
        // length from chunk to chunk.
        let pads = ["q7Z", "k2xWbN4mR", "", "t9", "LpVc3YhJ8sD", "x"];
        for layout in [0, 10] {
            let events: Vec<String> = texts
                .iter()
                .zip(pads)
                .map(|(t, p)| shaped(layout, t, p))
                .collect();
            let fast = decode_events(&events, true).unwrap();
            assert_eq!(fast, decode_events(&events, false).unwrap());
            assert_eq!(delta_texts(&fast).concat(), texts.concat());
            // The shape was taken once and served the rest.
            let mut d = OpenAiDecoder::new("openai");
            let mut out = VecDeque::new();
            for e in &events {
                d.feed(format!("data: {e}\n\n").as_bytes(), &mut out)
                    .unwrap();
            }
            assert_eq!(d.shapes_left, SHAPE_TRIES - 1, "layout {layout}");
            // The head taken from the first chunk: everything before `"choices"`.
            let choices = events[0].find(r#""choices""#).unwrap();
            assert_eq!(d.head, events[0].as_bytes()[..choices], "layout {layout}");
        }
    }

    #[test]
    fn a_text_chunk_read_without_its_head_still_gives_the_shape() {
        // OpenAI's opening chunk: its head is taken.
        let role = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"q7Zk"}"#;
        let mut d = OpenAiDecoder::new("openai");
        let mut out = VecDeque::new();
        d.feed(
            format!(
                "data: {role}

"
            )
            .as_bytes(),
            &mut out,
        )
        .unwrap();
        let choices = role.find(r#""choices""#).unwrap();
        assert_eq!(d.head, role.as_bytes()[..choices]);
        // The first text chunk is decoded without its head, and the text's place in the whole
        // chunk is its shape, which the next chunk takes.
        for (text, pad) in [("Hel", "q7"), ("lo", "k2xWbN4")] {
            let chunk = shaped(10, text, pad);
            d.feed(
                format!(
                    "data: {chunk}

"
                )
                .as_bytes(),
                &mut out,
            )
            .unwrap();
        }
        let shape = d.shape.as_ref().expect("a shape");
        assert_eq!(shape.data, shaped(10, "Hel", "q7").as_bytes());
        assert_eq!(&shape.data[shape.start..shape.end], br#""Hel""#);
        assert_eq!(d.shapes_left, SHAPE_TRIES - 1);
        assert_eq!(delta_texts(out.make_contiguous()), ["Hel", "lo"]);
    }

    #[test]
    fn a_chunk_that_is_its_head_and_no_more_is_not_json() {
        let events = [shaped(10, "Hel", "q7"), shaped(20, "", "")];
        let err = decode_events(&events, true).unwrap_err().to_string();
        assert!(err.contains("malformed stream chunk"), "{err}");
        assert_eq!(err, decode_events(&events, false).unwrap_err().to_string());
    }

    #[test]
    fn only_a_plain_string_closing_the_chunk_stands_for_any_other() {
        assert_eq!(last_string(br#"{"a":1,"o":"xyz"}"#), Some((11, 16)));
        assert_eq!(last_string(br#""a","o":"xyz""#), Some((8, 13)));
        assert_eq!(last_string(br#"{"a":1,"o":""}"#), Some((11, 13)));
        for not in [
            &br#"{"a":1,"o":"x\"y"}"#[..],
            br#"{"a":1,"o":"x\y"}"#,
            br#"{"a":1,"o":["xyz"]}"#,
            br#"{"a":1,"o":7}"#,
            b"{\"a\":1,\"o\":\"x\x01\"}",
            b"{\"a\":1,\"o\":\"\xff\"}",
            br#"{"a":1,"o":"xyz"}}"#,
            br#"""#,
            b"",
        ] {
            assert_eq!(last_string(not), None, "{}", String::from_utf8_lossy(not));
        }
    }

    proptest! {
        /// Whatever mix of layouts, heads and texts, a stream decodes to the same events (or
        /// fails with the same error) with shapes and heads cut as with every chunk decoded in
        /// full.
        #[test]
        fn shapes_never_change_what_a_stream_decodes_to(
            chunks in proptest::collection::vec(
                (0u8..21, "\\PC{0,12}", prop_oneof!["[a-zA-Z0-9]{0,16}", "[a\"\\\\\x01:}\u{e9}]{0,4}"]),
                0..12,
            ),
        ) {
            let events: Vec<String> = chunks.iter().map(|(k, t, p)| shaped(*k, t, p)).collect();
            let fast = decode_events(&events, true).map_err(|e| e.to_string());
            let full = decode_events(&events, false).map_err(|e| e.to_string());
            prop_assert_eq!(fast, full);
        }
    }

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut d = OpenAiDecoder::new("openai");
        let mut out = VecDeque::new();
        for c in chunks {
            d.feed(c, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out.into())
    }

    const TOOL_STREAM: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Let me \"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"check.\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"function\":{\"name\":\"time\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,\"total_tokens\":19}}\n\n",
        "data: [DONE]\n\n",
    );

    fn tool_stream_expected() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Delta {
                text: "Let me ".into(),
            },
            StreamEvent::Delta {
                text: "check.".into(),
            },
            StreamEvent::ToolCall(ToolCall {
                id: "call_a".into(),
                name: "get_weather".into(),
                arguments: json!({"city": "Paris"}),
            }),
            StreamEvent::ToolCall(ToolCall {
                id: "call_b".into(),
                name: "time".into(),
                arguments: json!({}),
            }),
            StreamEvent::Usage(Usage {
                prompt_tokens: 12,
                completion_tokens: 7,
                ..Usage::default()
            }),
            StreamEvent::Done {
                finish_reason: FinishReason::ToolCalls,
            },
        ]
    }

    #[test]
    fn reasoning_comes_out_of_each_servers_field_and_before_the_answer() {
        // DeepSeek's and vLLM's `reasoning_content`, the text's slot null meanwhile.
        let deepseek = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"reasoning_content\":\"Two and \"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"reasoning_content\":\"two.\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\",\"reasoning_content\":null}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\".\",\"reasoning_content\":null},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let expected = vec![
            StreamEvent::Reasoning {
                text: "Two and ".into(),
            },
            StreamEvent::Reasoning {
                text: "two.".into(),
            },
            StreamEvent::Delta { text: "4".into() },
            StreamEvent::Delta { text: ".".into() },
            StreamEvent::Done {
                finish_reason: FinishReason::Stop,
            },
        ];
        let bytes = deepseek.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(
                decode_all(&[&bytes[..i], &bytes[i..]]).unwrap(),
                expected,
                "split at {i}"
            );
        }
        // Ollama's and OpenRouter's `reasoning`; a value that is not text is passed over.
        let ollama = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":\"Hm\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\",\"reasoning\":{\"effort\":\"low\"}}}]}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(
            decode_all(&[ollama.as_bytes()]).unwrap(),
            vec![
                StreamEvent::Reasoning { text: "Hm".into() },
                StreamEvent::Delta { text: "Hi".into() },
                StreamEvent::Done {
                    finish_reason: FinishReason::Stop
                },
            ]
        );
        // A whole answer: the reasoning beside the text.
        let whole = br#"{"model":"deepseek-reasoner","choices":[{"index":0,"message":{"role":"assistant","content":"4.","reasoning_content":"Two and two."},"finish_reason":"stop"}]}"#;
        let r = parse_response("openai", whole, "asked").unwrap();
        assert_eq!(
            (r.message.reasoning.as_str(), r.message.content.as_str()),
            ("Two and two.", "4.")
        );
        let ollama_whole = br#"{"choices":[{"message":{"content":"Hi","reasoning":"Hm"},"finish_reason":"stop"}]}"#;
        let r = parse_response("openai", ollama_whole, "asked").unwrap();
        assert_eq!(r.message.reasoning, "Hm");
    }

    #[test]
    fn reasoning_is_not_sent_back() {
        // DeepSeek refuses a request whose messages carry `reasoning_content`.
        let mut earlier = Message::assistant("4.");
        earlier.reasoning = "Two and two.".into();
        let request = ChatRequest::new("m", vec![Message::user("2+2?"), earlier]);
        let v = serde_json::to_value(wire_request(&request, false, false)).unwrap();
        assert_eq!(
            v["messages"][1],
            json!({"role": "assistant", "content": "4."})
        );
    }

    #[test]
    fn assembles_interleaved_tool_call_deltas() {
        assert_eq!(
            decode_all(&[TOOL_STREAM.as_bytes()]).unwrap(),
            tool_stream_expected()
        );
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let bytes = TOOL_STREAM.as_bytes();
        let expected = tool_stream_expected();
        for i in 0..=bytes.len() {
            let got = decode_all(&[&bytes[..i], &bytes[i..]]).unwrap();
            // Deltas may not be merged or split by the decoder: identical event lists.
            assert_eq!(got, expected, "split at {i}");
        }
    }

    #[test]
    fn missing_done_is_a_protocol_error() {
        let cut = &TOOL_STREAM[..TOOL_STREAM.find("data: [DONE]").unwrap()];
        let err = decode_all(&[cut.as_bytes()]).unwrap_err();
        assert!(matches!(err, ProviderError::Protocol { .. }), "{err}");
    }

    #[test]
    fn text_that_is_not_utf8_is_a_protocol_error() {
        let stream: &[u8] =
            b"data: {\"choices\":[{\"delta\":{\"content\":\"caf\xe9\"}}]}\n\ndata: [DONE]\n\n";
        let err = decode_all(&[stream]).unwrap_err();
        assert!(matches!(err, ProviderError::Protocol { .. }), "{err}");
        assert!(err.to_string().contains("malformed stream chunk"), "{err}");
    }

    #[test]
    fn invalid_arguments_are_a_protocol_error() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"{oops\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let err = decode_all(&[stream.as_bytes()]).unwrap_err();
        assert!(err.to_string().contains("invalid JSON arguments"), "{err}");
    }

    #[test]
    fn error_chunk_is_an_upstream_error() {
        let stream = "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n";
        let err = decode_all(&[stream.as_bytes()]).unwrap_err();
        assert_eq!(
            err,
            ProviderError::Upstream {
                provider: "openai".into(),
                kind: "server_error".into(),
                message: "overloaded".into()
            }
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn request_shape() {
        let mut req = ChatRequest::new(
            "gpt",
            vec![
                Message::system("sys"),
                Message::user("hi"),
                Message::assistant_tool_calls(
                    "",
                    vec![ToolCall {
                        id: "c1".into(),
                        name: "f".into(),
                        arguments: json!({"x": 1}),
                    }],
                ),
                Message::tool_result("c1", "42"),
            ],
        );
        req.max_tokens = Some(10);
        let v = serde_json::to_value(wire_request(&req, true, false)).unwrap();
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
        assert_eq!(v["messages"][2]["content"], Value::Null);
        assert_eq!(
            v["messages"][2]["tool_calls"][0]["function"]["arguments"],
            json!("{\"x\":1}")
        );
        assert_eq!(v["messages"][3]["tool_call_id"], json!("c1"));
        assert_eq!(v["max_tokens"], json!(10));
        assert!(v.get("stop").is_none() && v.get("tools").is_none());
        let v = serde_json::to_value(wire_request(&req, false, false)).unwrap();
        assert!(v.get("stream_options").is_none());
        assert!(
            [
                "tool_choice",
                "parallel_tool_calls",
                "response_format",
                "seed"
            ]
            .iter()
            .all(|k| v.get(k).is_none()),
            "{v}"
        );
    }

    #[test]
    fn tool_choice_format_seed_and_penalties_pass_as_openai_spells_them() {
        let mut req = ChatRequest::new("gpt", vec![Message::user("hi")]);
        req.tool_choice = Some(ToolChoice::Required);
        req.parallel_tool_calls = Some(false);
        req.response_format = Some(Box::new(ResponseFormat::JsonObject));
        req.seed = Some(-7);
        req.presence_penalty = Some(0.5);
        req.frequency_penalty = Some(-0.5);
        // Without tools OpenAI refuses tool_choice and parallel_tool_calls: not sent.
        let v = serde_json::to_value(wire_request(&req, false, false)).unwrap();
        assert!(v.get("tool_choice").is_none() && v.get("parallel_tool_calls").is_none());
        assert_eq!(v["response_format"], json!({"type": "json_object"}));
        assert_eq!(v["seed"], json!(-7));
        assert_eq!(v["presence_penalty"], json!(0.5));
        assert_eq!(v["frequency_penalty"], json!(-0.5));
        req.tools = vec![crate::ToolSpec {
            name: "f".into(),
            description: String::new(),
            parameters: json!({"type": "object"}),
        }];
        let v = serde_json::to_value(wire_request(&req, false, false)).unwrap();
        assert_eq!(v["tool_choice"], json!("required"));
        assert_eq!(v["parallel_tool_calls"], json!(false));
        for (choice, wire) in [
            (ToolChoice::Auto, json!("auto")),
            (ToolChoice::None, json!("none")),
            (
                ToolChoice::Tool("f".into()),
                json!({"type": "function", "function": {"name": "f"}}),
            ),
        ] {
            req.tool_choice = Some(choice);
            let v = serde_json::to_value(wire_request(&req, true, false)).unwrap();
            assert_eq!(v["tool_choice"], wire);
        }
        req.response_format = Some(Box::new(ResponseFormat::JsonSchema {
            name: "city".into(),
            description: None,
            schema: json!({"type": "object", "properties": {"name": {"type": "string"}}}),
            strict: Some(true),
        }));
        let v = serde_json::to_value(wire_request(&req, false, false)).unwrap();
        assert_eq!(
            v["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "city", "strict": true,
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}})
        );
        req.response_format = Some(Box::new(ResponseFormat::Text));
        let v = serde_json::to_value(wire_request(&req, false, false)).unwrap();
        assert!(v.get("response_format").is_none());
        assert!(v.get("reasoning_effort").is_none());
        req.reasoning_effort = Some("high".into());
        let v = serde_json::to_value(wire_request(&req, false, false)).unwrap();
        assert_eq!(v["reasoning_effort"], json!("high"));
        for key in [
            "user",
            "safety_identifier",
            "prompt_cache_key",
            "top_k",
            "metadata",
            "store",
            "service_tier",
        ] {
            assert!(v.get(key).is_none(), "{v}");
        }
        req.top_k = Some(40);
        req.ids = Some(Box::new(crate::types::RequestIds {
            user: Some("u-1".into()),
            safety_identifier: Some("9f86d0".into()),
            prompt_cache_key: Some("docs".into()),
            metadata: Some([("team".to_owned(), "search".to_owned())].into()),
            store: Some(false),
            service_tier: Some("flex".into()),
        }));
        let v = serde_json::to_value(wire_request(&req, false, false)).unwrap();
        assert_eq!(
            (&v["user"], &v["safety_identifier"], &v["prompt_cache_key"]),
            (&json!("u-1"), &json!("9f86d0"), &json!("docs"))
        );
        assert_eq!(
            (&v["metadata"], &v["store"], &v["service_tier"]),
            (&json!({"team": "search"}), &json!(false), &json!("flex"))
        );
        assert_eq!(v["top_k"], json!(40));
    }

    #[test]
    fn openais_own_api_gets_the_token_limit_as_max_completion_tokens() {
        let mut req = ChatRequest::new("o4-mini", vec![Message::user("hi")]);
        req.max_tokens = Some(64);
        let v = serde_json::to_value(wire_request(&req, false, true)).unwrap();
        assert_eq!(v["max_completion_tokens"], json!(64));
        assert!(v.get("max_tokens").is_none());
        let v = serde_json::to_value(wire_request(&req, false, false)).unwrap();
        assert_eq!(v["max_tokens"], json!(64));
        assert!(v.get("max_completion_tokens").is_none());
        let client = |url: &str| {
            OpenAiClient::new(crate::ClientConfig::new().with_base_url(url))
                .unwrap()
                .completion_limit
        };
        assert!(client("https://api.openai.com"));
        assert!(client("https://API.openai.com/v1"));
        assert!(!client("http://127.0.0.1:8000/v1"));
        assert!(!client("https://openrouter.ai/api/v1"));
    }
}
