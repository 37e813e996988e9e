//! Anthropic Messages API (`/v1/messages`, SSE streaming).

use std::collections::{HashMap, VecDeque};

use http::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::breaker::BreakerState;
use crate::error::{ProviderError, Secret, protocol, unsupported};
use crate::provider::{ClientConfig, base_url};
use crate::sse::{FeedError, SseParser};
use crate::transport::{ChatStream, Decoder, RequestSpec, Transport};
use crate::types::{
    CacheTtl, ChatRequest, ChatResponse, FinishReason, Image, ImageSource, Message, ModelInfo,
    Part, ResponseFormat, Role, StreamEvent, ThinkingBlock, ToolCall, ToolChoice, Usage,
};
use crate::wire::{decode, parse_arguments, parse_error_body};

/// The API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Most pages fetched by [`AnthropicClient::models`].
const MAX_MODEL_PAGES: usize = 50;

/// Client for the Anthropic Messages API.
#[derive(Debug)]
pub struct AnthropicClient {
    transport: Transport,
    base: String,
    messages_url: crate::client::Endpoint,
    default_max_tokens: u32,
}

impl AnthropicClient {
    /// Default base URL.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";
    /// Default instance name used in errors.
    pub const DEFAULT_NAME: &'static str = "anthropic";
    /// `max_tokens` sent when the request does not set one (the API requires it).
    pub const DEFAULT_MAX_TOKENS: u32 = 4096;

    /// Creates a client sending `x-api-key` and `anthropic-version` headers.
    pub fn new(config: ClientConfig) -> Result<Self, ProviderError> {
        let name = config.name.as_deref().unwrap_or(Self::DEFAULT_NAME);
        let base = base_url(name, config.base_url.as_deref(), Self::DEFAULT_BASE_URL)?;
        let secret = config.api_key.as_deref().and_then(Secret::new);
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        if let Some(secret) = &secret {
            let mut value =
                HeaderValue::from_str(secret.expose()).map_err(|_| ProviderError::Config {
                    provider: name.to_owned(),
                    message: "API key contains characters not allowed in an HTTP header".into(),
                })?;
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        let transport = Transport::new(name, &config, secret, headers, parse_error_body)?;
        let messages_url = transport.endpoint(&format!("{base}/v1/messages"))?;
        Ok(Self {
            transport,
            base,
            messages_url,
            default_max_tokens: Self::DEFAULT_MAX_TOKENS,
        })
    }

    /// Sets the `max_tokens` used when a request has none.
    pub fn with_default_max_tokens(mut self, max_tokens: u32) -> Self {
        self.default_max_tokens = max_tokens.max(1);
        self
    }

    /// Instance name used in errors and [`ModelInfo::provider`].
    pub fn name(&self) -> &str {
        self.transport.name()
    }

    /// State of this client's circuit breaker.
    pub fn breaker_state(&self) -> BreakerState {
        self.transport.breaker_state()
    }

    /// Non-streaming message.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let name = self.name();
        let body = wire_request(name, request, false, self.default_max_tokens)?;
        let spec = RequestSpec::post_json(&self.messages_url, &body);
        let answer = answer_tool(request);
        self.transport
            .call_chat(&spec, |body| {
                parse_response(name, body, &request.model, answer)
            })
            .await
    }

    /// Streaming message (SSE).
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let name = self.name();
        let body = wire_request(name, request, true, self.default_max_tokens)?;
        let spec = RequestSpec::post_json(&self.messages_url, &body);
        let answer = answer_tool(request);
        self.transport
            .stream(&spec, &request.model, || {
                AnthropicDecoder::new(name).answering_through(answer)
            })
            .await
    }

    /// Lists models (`GET /v1/models`, following pagination).
    pub async fn models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let name = self.name();
        let mut models = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_MODEL_PAGES {
            let mut url = format!("{}/v1/models?limit=1000", self.base);
            if let Some(id) = &after {
                url.push_str("&after_id=");
                url.push_str(&encode_query_value(id));
            }
            let page: ModelPage = self
                .transport
                .call(&RequestSpec::get(self.transport.endpoint(&url)?), |body| {
                    decode(name, "model list", body)
                })
                .await?;
            models.extend(page.data.into_iter().map(|m| ModelInfo {
                id: m.id,
                owned_by: Some("anthropic".to_owned()),
                provider: name.to_owned(),
            }));
            match (page.has_more, page.last_id) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        Ok(models)
    }
}

/// Percent-encodes a query value (model ids are plain, but never trust the upstream).
fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Request encoding

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<WireSystem<'a>>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<WireThinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<WireMetadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'static str>,
}

/// Anthropic's `service_tier` for OpenAI's: `auto` (Priority Tier capacity when there is
/// some) for `auto` and `priority`, `standard_only` for `default`; Anthropic has no tier for
/// the others (`flex`, `scale`), which are not sent.
fn service_tier(openai: &str) -> Option<&'static str> {
    match openai {
        "auto" | "priority" => Some("auto"),
        "default" => Some("standard_only"),
        _ => None,
    }
}

/// `metadata`: the end user, for Anthropic's abuse monitoring.
#[derive(Serialize)]
struct WireMetadata<'a> {
    user_id: &'a str,
}

/// Extended thinking: `{"type": "enabled", "budget_tokens": …}`.
#[derive(Serialize)]
struct WireThinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u32,
}

/// The thinking budget `reasoning_effort` asks of Claude, in tokens (`None`: no thinking).
/// 1,024 is the least the API takes; each step up quadruples it.
fn thinking_budget(provider: &str, effort: Option<&str>) -> Result<Option<u32>, ProviderError> {
    match effort {
        None | Some("none") => Ok(None),
        Some("minimal" | "low") => Ok(Some(1024)),
        Some("medium") => Ok(Some(4096)),
        Some("high") => Ok(Some(16384)),
        Some(other) => Err(unsupported(
            provider,
            format!(
                "reasoning_effort {other:?} has no thinking budget for Claude: give \"minimal\", \"low\", \"medium\", \"high\" or \"none\""
            ),
        )),
    }
}

/// What extended thinking cannot be combined with, as the Messages API documents it.
fn refuse_with_thinking(
    provider: &str,
    request: &ChatRequest,
    budget: u32,
) -> Result<(), ProviderError> {
    let refusal = if request.temperature.is_some_and(|t| t != 1.0) {
        Some(
            "Claude's extended thinking (reasoning_effort) takes no temperature: leave one out"
                .to_owned(),
        )
    } else if request.top_p.is_some_and(|p| p < 0.95) {
        Some(
            "Claude's extended thinking (reasoning_effort) takes top_p only from 0.95 to 1"
                .to_owned(),
        )
    } else if request.top_k.is_some() {
        Some(
            "Claude's extended thinking (reasoning_effort) takes no top_k: leave it out".to_owned(),
        )
    } else if matches!(
        request.tool_choice,
        Some(ToolChoice::Required | ToolChoice::Tool(_))
    ) && !request.tools.is_empty()
    {
        Some("Claude's extended thinking (reasoning_effort) cannot be combined with a forced tool call (tool_choice \"required\" or a named tool)".to_owned())
    } else if answer_tool(request).is_some() {
        Some("a JSON response_format is asked of Anthropic through a forced tool call, which extended thinking (reasoning_effort) cannot be combined with: leave one out".to_owned())
    } else if request.max_tokens.is_some_and(|m| m <= budget) {
        Some(format!(
            "max_tokens must exceed Claude's thinking budget of {budget} tokens that this reasoning_effort asks for"
        ))
    } else {
        None
    };
    refusal.map_or(Ok(()), |message| Err(unsupported(provider, message)))
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    input_schema: std::borrow::Cow<'a, Value>,
}

/// `tool_choice`: `{"type": "auto" | "any" | "none"}` or `{"type": "tool", "name": …}`.
#[derive(Serialize)]
struct WireToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_parallel_tool_use: bool,
}

/// The tool through which a JSON answer is asked for, when one is: the Messages API has no
/// JSON mode, so the model is made to call a tool whose input schema is the answer's, and
/// that call's input is the answer (Anthropic's documented way to get JSON). Named after the
/// schema, or `json_answer` for any JSON object.
fn answer_tool(request: &ChatRequest) -> Option<&str> {
    match request.response_format.as_deref()? {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some("json_answer"),
        ResponseFormat::JsonSchema { name, .. } => Some(name),
    }
}

/// What Anthropic's API has no field for.
fn refuse_unsupported(provider: &str, request: &ChatRequest) -> Result<(), ProviderError> {
    let unsupported_field = [
        ("seed", request.seed.is_some()),
        ("presence_penalty", request.presence_penalty.is_some()),
        ("frequency_penalty", request.frequency_penalty.is_some()),
    ]
    .into_iter()
    .find_map(|(field, set)| set.then_some(field));
    if let Some(field) = unsupported_field {
        return Err(unsupported(
            provider,
            format!("the Anthropic Messages API has no {field}; leave it out"),
        ));
    }
    if answer_tool(request).is_some() && !request.tools.is_empty() {
        return Err(unsupported(
            provider,
            "a JSON response_format is asked of Anthropic through a tool of its own, which cannot be combined with tools: leave one out",
        ));
    }
    if let Some(schema) = request
        .response_format
        .as_deref()
        .and_then(ResponseFormat::schema)
        && schema.get("type").and_then(Value::as_str) != Some("object")
    {
        return Err(unsupported(
            provider,
            "Anthropic answers in JSON through a tool's input, which must be an object: give the schema \"type\": \"object\"",
        ));
    }
    Ok(())
}

/// `system`: one string, or text blocks when one of them is a cache breakpoint.
#[derive(Serialize)]
#[serde(untagged)]
enum WireSystem<'a> {
    Text(String),
    Blocks(Vec<CachedBlock<'a>>),
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<CachedBlock<'a>>,
}

/// A content block, with `cache_control` on the last block of a turn that is a cache
/// breakpoint.
#[derive(Serialize)]
struct CachedBlock<'a> {
    #[serde(flatten)]
    kind: WireBlock<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<WireCache>,
}

/// `{"type": "ephemeral"}`, with a `ttl` when one was asked for.
#[derive(Serialize)]
struct WireCache {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'static str>,
}

impl WireCache {
    fn of(ttl: CacheTtl) -> Self {
        WireCache {
            kind: "ephemeral",
            ttl: match ttl {
                CacheTtl::Default => None,
                CacheTtl::FiveMinutes => Some("5m"),
                CacheTtl::OneHour => Some("1h"),
            },
        }
    }
}

/// The most cache breakpoints the Messages API takes in one request.
const MAX_CACHE_BREAKPOINTS: usize = 4;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    Image {
        source: WireImageSource<'a>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireImageSource<'a> {
    Base64 {
        media_type: &'static str,
        data: &'a str,
    },
    Url {
        url: &'a str,
    },
}

/// An image as Claude takes it: inline in one of the four formats it reads, or by address.
fn wire_image<'a>(provider: &str, image: &'a Image) -> Result<WireBlock<'a>, ProviderError> {
    let source = match image.source().map_err(|why| unsupported(provider, why))? {
        ImageSource::Web(url) => WireImageSource::Url { url },
        ImageSource::Inline { media_type, data } => {
            let media_type = ["image/jpeg", "image/png", "image/gif", "image/webp"]
                .into_iter()
                .find(|known| known.eq_ignore_ascii_case(media_type))
                .ok_or_else(|| {
                    unsupported(
                        provider,
                        format!(
                            "Anthropic reads JPEG, PNG, GIF and WebP images, not {media_type:?}"
                        ),
                    )
                })?;
            WireImageSource::Base64 { media_type, data }
        }
    };
    Ok(WireBlock::Image { source })
}

fn wire_request<'a>(
    provider: &str,
    request: &'a ChatRequest,
    stream: bool,
    default_max_tokens: u32,
) -> Result<WireRequest<'a>, ProviderError> {
    refuse_unsupported(provider, request)?;
    let budget = thinking_budget(provider, request.reasoning_effort.as_deref())?;
    if let Some(budget) = budget {
        refuse_with_thinking(provider, request, budget)?;
    }
    let breakpoints = request
        .messages
        .iter()
        .filter(|m| m.cache.is_some())
        .count();
    if breakpoints > MAX_CACHE_BREAKPOINTS {
        return Err(unsupported(
            provider,
            format!(
                "Anthropic takes at most {MAX_CACHE_BREAKPOINTS} cache breakpoints (cache_control) a request; this one has {breakpoints}"
            ),
        ));
    }
    let system_messages = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System && !m.content.is_empty());
    let system = if system_messages.clone().any(|m| m.cache.is_some()) {
        let mut blocks = Vec::new();
        for m in system_messages {
            let (parts, mark) = m.parts_with_cache();
            // (Images come with user turns only: `Ai::admit` refuses them anywhere else.)
            blocks.extend(
                parts
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, part)| match part {
                        Part::Text(text) => Some(CachedBlock {
                            kind: WireBlock::Text { text },
                            cache_control: cache_control(m, mark, i),
                        }),
                        Part::Image(_) => None,
                    }),
            );
        }
        Some(WireSystem::Blocks(blocks))
    } else {
        let texts: Vec<&str> = system_messages.map(|m| m.content.as_str()).collect();
        (!texts.is_empty()).then(|| WireSystem::Text(texts.join("\n\n")))
    };
    let mut messages: Vec<WireMessage<'_>> = Vec::new();
    for message in request.messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks, mark) = wire_blocks(provider, message)?;
        let blocks = blocks.into_iter().enumerate().map(|(i, kind)| CachedBlock {
            kind,
            cache_control: cache_control(message, mark, i),
        });
        // The API wants alternating roles; parallel tool results must share one user turn.
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(WireMessage {
                role,
                content: blocks.collect(),
            }),
        }
    }
    let disable_parallel_tool_use = request.parallel_tool_calls == Some(false);
    let (tools, tool_choice) = match (answer_tool(request), request.response_format.as_deref()) {
        (Some(name), Some(format)) => {
            let description = match format {
                ResponseFormat::JsonSchema {
                    description: Some(d),
                    ..
                } => d.as_str(),
                _ => "Give your whole answer as this tool's input.",
            };
            let tool = WireTool {
                name,
                description,
                input_schema: format.schema().unwrap_or_default(),
            };
            let choice = WireToolChoice {
                kind: "tool",
                name: Some(name),
                disable_parallel_tool_use: true,
            };
            (vec![tool], Some(choice))
        }
        _ => {
            let tools: Vec<WireTool<'_>> = request
                .tools
                .iter()
                .map(|t| WireTool {
                    name: &t.name,
                    description: &t.description,
                    input_schema: std::borrow::Cow::Borrowed(&t.parameters),
                })
                .collect();
            let (kind, name) = match &request.tool_choice {
                None | Some(ToolChoice::Auto) => ("auto", None),
                Some(ToolChoice::None) => ("none", None),
                Some(ToolChoice::Required) => ("any", None),
                Some(ToolChoice::Tool(name)) => ("tool", Some(name.as_str())),
            };
            // The API refuses a tool_choice without tools, and the default needs none.
            let choice = (!tools.is_empty()
                && (request.tool_choice.is_some() || disable_parallel_tool_use))
                .then_some(WireToolChoice {
                    kind,
                    name,
                    disable_parallel_tool_use: disable_parallel_tool_use && kind != "none",
                });
            (tools, choice)
        }
    };
    Ok(WireRequest {
        model: &request.model,
        // Thinking counts against max_tokens: without a limit of the caller's, the answer keeps
        // the default's room after the budget.
        max_tokens: request
            .max_tokens
            .unwrap_or_else(|| default_max_tokens.saturating_add(budget.unwrap_or(0))),
        system,
        messages,
        tools,
        tool_choice,
        // With thinking, the only temperature let through is the default 1: not sent.
        temperature: request.temperature.filter(|_| budget.is_none()),
        top_p: request.top_p,
        top_k: request.top_k,
        stop_sequences: &request.stop,
        stream,
        thinking: budget.map(|budget_tokens| WireThinking {
            kind: "enabled",
            budget_tokens,
        }),
        // The identifier meant for abuse monitoring, or the older one with the same purpose.
        metadata: request
            .ids
            .as_deref()
            .and_then(|i| i.safety_identifier.as_deref().or(i.user.as_deref()))
            .map(|user_id| WireMetadata { user_id }),
        service_tier: request
            .ids
            .as_deref()
            .and_then(|i| i.service_tier.as_deref())
            .and_then(service_tier),
    })
}

/// The `cache_control` of a turn's block `i`, when the turn's breakpoint follows it.
fn cache_control(message: &Message, mark: Option<usize>, i: usize) -> Option<WireCache> {
    message
        .cache
        .filter(|_| mark == Some(i))
        .map(|c| WireCache::of(c.ttl))
}

/// A turn's role, its blocks, and the block its cache breakpoint follows.
type Blocks<'a> = (&'static str, Vec<WireBlock<'a>>, Option<usize>);

fn wire_blocks<'a>(provider: &str, message: &'a Message) -> Result<Blocks<'a>, ProviderError> {
    let (role, blocks) = match message.role {
        Role::User | Role::System => return user_blocks(provider, message),
        Role::Tool => (
            "user",
            vec![WireBlock::ToolResult {
                tool_use_id: message.tool_call_id.as_deref().unwrap_or_default(),
                content: &message.content,
            }],
        ),
        Role::Assistant => {
            // Signed thinking first, as it came; reasoning without a signature (another
            // provider's) is not Claude's to take back.
            let mut blocks: Vec<WireBlock<'_>> = message
                .thinking_blocks
                .iter()
                .map(|b| match b {
                    ThinkingBlock::Thinking {
                        thinking,
                        signature,
                    } => WireBlock::Thinking {
                        thinking,
                        signature,
                    },
                    ThinkingBlock::RedactedThinking { data } => {
                        WireBlock::RedactedThinking { data }
                    }
                })
                .collect();
            if !message.content.is_empty() {
                blocks.push(WireBlock::Text {
                    text: &message.content,
                });
            }
            blocks.extend(message.tool_calls.iter().map(|c| WireBlock::ToolUse {
                id: &c.id,
                name: &c.name,
                input: &c.arguments,
            }));
            ("assistant", blocks)
        }
    };
    // A breakpoint on an answer or a tool result follows its last block.
    let mark = blocks.len().checked_sub(1);
    Ok((role, blocks, mark))
}

/// A question's (or system prompt's) blocks: text and images in their order, the text cut
/// where a breakpoint falls inside it. An empty one is one empty text block, as it was sent.
fn user_blocks<'a>(provider: &str, message: &'a Message) -> Result<Blocks<'a>, ProviderError> {
    let (parts, mark) = message.parts_with_cache();
    if parts.is_empty() {
        let text = WireBlock::Text {
            text: &message.content,
        };
        return Ok(("user", vec![text], Some(0)));
    }
    let blocks = parts
        .into_iter()
        .map(|part| match part {
            Part::Text(text) => Ok(WireBlock::Text { text }),
            Part::Image(image) => wire_image(provider, image),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(("user", blocks, mark))
}

// ---------------------------------------------------------------------------------------------
// Response decoding

#[derive(Deserialize)]
struct ModelPage {
    #[serde(default)]
    data: Vec<ModelEntry>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Anthropic's `input_tokens` are the prompt's tokens after the last cache breakpoint;
    /// those written to and read from the cache are counted apart. The prompt is all three
    /// (what OpenAI's `prompt_tokens` counts), the cached part what was read.
    fn usage(&self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: self.input_tokens.unwrap_or(0)
                + self.cache_creation_input_tokens.unwrap_or(0)
                + read,
            completion_tokens: self.output_tokens.unwrap_or(0),
            cached_tokens: read,
            reasoning_tokens: 0,
        }
    }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

fn map_stop(reason: Option<&str>) -> FinishReason {
    match reason {
        None | Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

/// The finish reason, where a call of the answer tool is the answer's natural end.
fn finish_of(reason: Option<&str>, answered: bool) -> FinishReason {
    match reason {
        Some("tool_use") if answered => FinishReason::Stop,
        other => map_stop(other),
    }
}

fn block_str<'a>(block: &'a Value, key: &str) -> Option<&'a str> {
    block.get(key).and_then(Value::as_str)
}

/// `answer` names the tool a JSON answer was asked through (see [`answer_tool`]): its call's
/// input is the answer's text.
fn parse_response(
    provider: &str,
    body: &[u8],
    requested_model: &str,
    answer: Option<&str>,
) -> Result<ChatResponse, ProviderError> {
    let response: WireResponse = decode(provider, "message", body)?;
    let mut events = Vec::new();
    let mut answered = false;
    for block in &response.content {
        if answer.is_some()
            && block_str(block, "type") == Some("tool_use")
            && block_str(block, "name") == answer
        {
            let input = block
                .get("input")
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default()));
            events.push(StreamEvent::Delta {
                text: input.to_string(),
            });
            answered = true;
            continue;
        }
        match block_str(block, "type") {
            Some("text") => {
                let text = block_str(block, "text").unwrap_or_default();
                if !text.is_empty() {
                    events.push(StreamEvent::Delta {
                        text: text.to_owned(),
                    });
                }
            }
            Some("tool_use") => {
                let (Some(id), Some(name)) = (block_str(block, "id"), block_str(block, "name"))
                else {
                    return Err(protocol(provider, "tool_use block without id or name"));
                };
                events.push(StreamEvent::ToolCall(ToolCall {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    arguments: block
                        .get("input")
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Default::default())),
                }));
            }
            Some("thinking") => {
                let thinking = block_str(block, "thinking").unwrap_or_default();
                if !thinking.is_empty() {
                    events.push(StreamEvent::Reasoning {
                        text: thinking.to_owned(),
                    });
                }
                events.push(StreamEvent::ThinkingBlock(ThinkingBlock::Thinking {
                    thinking: thinking.to_owned(),
                    signature: block_str(block, "signature").unwrap_or_default().to_owned(),
                }));
            }
            Some("redacted_thinking") => {
                events.push(StreamEvent::ThinkingBlock(
                    ThinkingBlock::RedactedThinking {
                        data: block_str(block, "data").unwrap_or_default().to_owned(),
                    },
                ));
            }
            _ => {} // server tools and other block types carry no chat text
        }
    }
    if let Some(usage) = response.usage {
        events.push(StreamEvent::Usage(usage.usage()));
    }
    events.push(StreamEvent::Done {
        finish_reason: finish_of(response.stop_reason.as_deref(), answered),
    });
    let model = response.model.unwrap_or_else(|| requested_model.to_owned());
    crate::wire::response_from_events(provider, events, model)
}

/// One event of the Messages stream, as far as it is read: decoded straight into these fields
/// (into a `serde_json::Value` first, every event's every key and value was a map entry and
/// an allocation). Fields of other event and block kinds are skipped.
#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    message: Option<WireStartMessage>,
    #[serde(default)]
    content_block: Option<WireStartBlock>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireStreamError>,
}

#[derive(Deserialize)]
struct WireStartMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// `content_block_start`'s block: text, a tool call, or a kind that carries no chat text.
#[derive(Deserialize, Default)]
struct WireStartBlock {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

/// `content_block_delta`'s and `message_delta`'s delta.
#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireStreamError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

enum Block {
    Text,
    /// Reasoning: its text streams as it comes and is kept, with the signature that ends it,
    /// for the whole block sent after it.
    Thinking {
        thinking: String,
        signature: String,
    },
    /// The call of the tool a JSON answer was asked through: its input streams as text.
    Answer {
        streamed: bool,
        start_input: Option<Value>,
    },
    Tool {
        id: String,
        name: String,
        json: String,
        start_input: Option<Value>,
    },
}

/// Decodes the Messages API event stream.
pub(crate) struct AnthropicDecoder {
    provider: String,
    sse: SseParser,
    blocks: HashMap<u64, Block>,
    usage: WireUsage,
    saw_usage: bool,
    stop_reason: Option<String>,
    done: bool,
    /// The tool a JSON answer was asked through, if one was ([`answer_tool`]).
    answer: Option<String>,
    answered: bool,
}

impl AnthropicDecoder {
    pub(crate) fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            sse: SseParser::new(),
            blocks: HashMap::new(),
            usage: WireUsage::default(),
            saw_usage: false,
            stop_reason: None,
            done: false,
            answer: None,
            answered: false,
        }
    }

    /// Decodes the calls of tool `answer` as the answer's text.
    pub(crate) fn answering_through(mut self, answer: Option<&str>) -> Self {
        self.answer = answer.map(str::to_owned);
        self
    }

    fn merge_usage(&mut self, usage: Option<WireUsage>) {
        let Some(usage) = usage else { return };
        if let Some(n) = usage.input_tokens {
            self.usage.input_tokens = Some(n);
            self.saw_usage = true;
        }
        if let Some(n) = usage.output_tokens {
            self.usage.output_tokens = Some(n);
            self.saw_usage = true;
        }
        // Later events repeat the cache counts (or leave them out).
        if let Some(n) = usage.cache_creation_input_tokens {
            self.usage.cache_creation_input_tokens = Some(n);
        }
        if let Some(n) = usage.cache_read_input_tokens {
            self.usage.cache_read_input_tokens = Some(n);
        }
    }

    fn index(&self, event: &WireEvent) -> Result<u64, ProviderError> {
        event
            .index
            .ok_or_else(|| protocol(&self.provider, "content block event without index"))
    }

    /// Handles one SSE event: its type (`event:`) and its data.
    fn handle(
        &mut self,
        event: Option<&str>,
        data: &[u8],
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        let value: WireEvent = decode(&self.provider, "stream event", data)?;
        let kind = value.kind.as_deref().or(event).unwrap_or_default();
        match kind {
            "message_start" => {
                self.merge_usage(value.message.and_then(|m| m.usage));
            }
            "content_block_start" => {
                let index = self.index(&value)?;
                let block = value.content_block.unwrap_or_default();
                match block.kind.as_deref() {
                    Some("tool_use") if self.answer.is_some() && block.name == self.answer => {
                        self.blocks.insert(
                            index,
                            Block::Answer {
                                streamed: false,
                                start_input: block.input,
                            },
                        );
                    }
                    Some("tool_use") => {
                        let (Some(id), Some(name)) = (block.id, block.name) else {
                            return Err(protocol(
                                &self.provider,
                                "tool_use block without id or name",
                            ));
                        };
                        self.blocks.insert(
                            index,
                            Block::Tool {
                                id,
                                name,
                                json: String::new(),
                                start_input: block.input,
                            },
                        );
                    }
                    Some("text") => {
                        if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                            out.push_back(StreamEvent::Delta { text });
                        }
                        self.blocks.insert(index, Block::Text);
                    }
                    Some("thinking") => {
                        let thinking = block.thinking.unwrap_or_default();
                        if !thinking.is_empty() {
                            out.push_back(StreamEvent::Reasoning {
                                text: thinking.clone(),
                            });
                        }
                        self.blocks.insert(
                            index,
                            Block::Thinking {
                                thinking,
                                signature: block.signature.unwrap_or_default(),
                            },
                        );
                    }
                    Some("redacted_thinking") => {
                        out.push_back(StreamEvent::ThinkingBlock(
                            ThinkingBlock::RedactedThinking {
                                data: block.data.unwrap_or_default(),
                            },
                        ));
                    }
                    _ => {} // server tools, …: no chat text
                }
            }
            "content_block_delta" => {
                let index = self.index(&value)?;
                let delta = value.delta.unwrap_or_default();
                match (delta.kind.as_deref(), self.blocks.get_mut(&index)) {
                    (Some("text_delta"), _) => {
                        if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                            out.push_back(StreamEvent::Delta { text });
                        }
                    }
                    (Some("input_json_delta"), Some(Block::Tool { json, .. })) => {
                        json.push_str(delta.partial_json.as_deref().unwrap_or_default());
                    }
                    (Some("input_json_delta"), Some(Block::Answer { streamed, .. })) => {
                        if let Some(text) = delta.partial_json.filter(|t| !t.is_empty()) {
                            *streamed = true;
                            out.push_back(StreamEvent::Delta { text });
                        }
                    }
                    (Some("thinking_delta"), Some(Block::Thinking { thinking, .. })) => {
                        if let Some(text) = delta.thinking.filter(|t| !t.is_empty()) {
                            thinking.push_str(&text);
                            out.push_back(StreamEvent::Reasoning { text });
                        }
                    }
                    (Some("signature_delta"), Some(Block::Thinking { signature, .. })) => {
                        signature.push_str(delta.signature.as_deref().unwrap_or_default());
                    }
                    (Some("input_json_delta"), _) => {
                        return Err(protocol(
                            &self.provider,
                            format!("input_json_delta for unknown tool_use block {index}"),
                        ));
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = self.index(&value)?;
                match self.blocks.remove(&index) {
                    Some(Block::Answer {
                        streamed,
                        start_input,
                    }) => {
                        // A call whose input came whole at its start, not in deltas.
                        if !streamed {
                            let input =
                                start_input.unwrap_or_else(|| Value::Object(Default::default()));
                            out.push_back(StreamEvent::Delta {
                                text: input.to_string(),
                            });
                        }
                        self.answered = true;
                    }
                    Some(Block::Tool {
                        id,
                        name,
                        json,
                        start_input,
                    }) => {
                        let arguments = if json.trim().is_empty() {
                            start_input.unwrap_or_else(|| Value::Object(Default::default()))
                        } else {
                            parse_arguments(&self.provider, &name, &json)?
                        };
                        out.push_back(StreamEvent::ToolCall(ToolCall {
                            id,
                            name,
                            arguments,
                        }));
                    }
                    Some(Block::Thinking {
                        thinking,
                        signature,
                    }) => {
                        out.push_back(StreamEvent::ThinkingBlock(ThinkingBlock::Thinking {
                            thinking,
                            signature,
                        }));
                    }
                    Some(Block::Text) | None => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = value.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason);
                }
                self.merge_usage(value.usage);
            }
            "message_stop" => {
                if self
                    .blocks
                    .values()
                    .any(|b| matches!(b, Block::Tool { .. } | Block::Answer { .. }))
                {
                    return Err(protocol(
                        &self.provider,
                        "message_stop before a tool_use block was closed",
                    ));
                }
                if self.saw_usage {
                    out.push_back(StreamEvent::Usage(self.usage.usage()));
                }
                out.push_back(StreamEvent::Done {
                    finish_reason: finish_of(self.stop_reason.as_deref(), self.answered),
                });
                self.done = true;
            }
            "error" => {
                let error = value.error.unwrap_or_default();
                return Err(ProviderError::Upstream {
                    provider: self.provider.clone(),
                    kind: error.kind.unwrap_or_else(|| "error".to_owned()),
                    message: error.message.unwrap_or_else(|| "unknown error".to_owned()),
                });
            }
            _ => {} // ping and event types added in later API versions
        }
        Ok(())
    }
}

impl Decoder for AnthropicDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        // Out of `self` while it hands events to `self.handle`.
        let mut sse = std::mem::take(&mut self.sse);
        let fed = sse.feed_with(chunk, |event, data| self.handle(event, data, out));
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
            self.handle(event.event.as_deref(), &event.data, out)?;
        }
        if !self.done {
            return Err(protocol(
                &self.provider,
                "stream ended without `message_stop` (connection closed early)",
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
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking \u{1F324}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, ProviderError> {
        decode_answering(chunks, None)
    }

    fn decode_answering(
        chunks: &[&[u8]],
        answer: Option<&str>,
    ) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut d = AnthropicDecoder::new("anthropic").answering_through(answer);
        let mut out = VecDeque::new();
        for c in chunks {
            d.feed(c, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out.into())
    }

    fn expected() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Delta {
                text: "Checking \u{1F324}".into(),
            },
            StreamEvent::ToolCall(ToolCall {
                id: "toolu_1".into(),
                name: "get_weather".into(),
                arguments: json!({"city": "Paris"}),
            }),
            StreamEvent::Usage(Usage {
                prompt_tokens: 25,
                completion_tokens: 15,
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

    /// What the stream carries besides chat text, reasoning and tool calls — citations, pings,
    /// event kinds of later API versions, fields that are null — is passed over.
    #[test]
    fn what_is_not_chat_is_passed_over() {
        let s = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"content\":[],\"usage\":{\"input_tokens\":9,\"output_tokens\":null,\"cache_read_input_tokens\":null}}}\n\n",
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hmm\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"abc\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"Hi\",\"citations\":[]}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"citations_delta\",\"citation\":{\"type\":\"char_location\"}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\" th\\u00e9re\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: a_later_kind\ndata: {\"type\":\"a_later_kind\",\"payload\":[1,2]}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":4}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        assert_eq!(
            decode_all(&[s.as_bytes()]).unwrap(),
            vec![
                StreamEvent::Reasoning { text: "Hmm".into() },
                StreamEvent::ThinkingBlock(ThinkingBlock::Thinking {
                    thinking: "Hmm".into(),
                    signature: "abc".into()
                }),
                StreamEvent::Delta { text: "Hi".into() },
                StreamEvent::Delta {
                    text: " th\u{e9}re".into()
                },
                StreamEvent::Usage(Usage {
                    prompt_tokens: 9,
                    completion_tokens: 4,
                    ..Usage::default()
                }),
                StreamEvent::Done {
                    finish_reason: FinishReason::Stop,
                },
            ]
        );
        // A field Zentoria reads must have the documented type.
        let bad = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":\"one\",\"delta\":{}}\n\n";
        assert!(matches!(
            decode_all(&[bad.as_bytes()]).unwrap_err(),
            ProviderError::Protocol { .. }
        ));
    }

    #[test]
    fn error_event_is_upstream_error() {
        let s = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let err = decode_all(&[s.as_bytes()]).unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "anthropic: upstream error (overloaded_error): Overloaded"
        );
    }

    #[test]
    fn missing_message_stop_is_protocol_error() {
        let cut = &STREAM[..STREAM.find("event: message_stop").unwrap()];
        assert!(matches!(
            decode_all(&[cut.as_bytes()]).unwrap_err(),
            ProviderError::Protocol { .. }
        ));
    }

    #[test]
    fn request_shape() {
        let req = ChatRequest::new(
            "claude",
            vec![
                Message::system("be brief"),
                Message::user("weather in Paris and Rome?"),
                Message::assistant_tool_calls(
                    "Checking",
                    vec![
                        ToolCall {
                            id: "t1".into(),
                            name: "w".into(),
                            arguments: json!({"city": "Paris"}),
                        },
                        ToolCall {
                            id: "t2".into(),
                            name: "w".into(),
                            arguments: json!({"city": "Rome"}),
                        },
                    ],
                ),
                Message::tool_result("t1", "sunny"),
                Message::tool_result("t2", "rain"),
            ],
        );
        let v = serde_json::to_value(wire_request("anthropic", &req, true, 4096).unwrap()).unwrap();
        assert!(v.get("tool_choice").is_none(), "{v}");
        assert_eq!(v["system"], json!("be brief"));
        assert_eq!(v["max_tokens"], json!(4096));
        let messages = v["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"][1]["type"], json!("tool_use"));
        assert_eq!(
            messages[2],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "rain"},
            ]})
        );
    }

    #[test]
    fn query_encoding() {
        assert_eq!(encode_query_value("claude-3.5_x~"), "claude-3.5_x~");
        assert_eq!(encode_query_value("a b&c"), "a%20b%26c");
    }

    fn weather_tool() -> crate::ToolSpec {
        crate::ToolSpec {
            name: "w".into(),
            description: String::new(),
            parameters: json!({"type": "object"}),
        }
    }

    #[test]
    fn tool_choices_map_to_anthropics_and_need_tools() {
        let mut req = ChatRequest::new("claude", vec![Message::user("hi")]);
        req.tool_choice = Some(ToolChoice::Required);
        let v = serde_json::to_value(wire_request("a", &req, false, 10).unwrap()).unwrap();
        assert!(
            v.get("tool_choice").is_none(),
            "no tools, no tool_choice: {v}"
        );
        req.tools = vec![weather_tool()];
        for (choice, wire) in [
            (ToolChoice::Auto, json!({"type": "auto"})),
            (ToolChoice::None, json!({"type": "none"})),
            (ToolChoice::Required, json!({"type": "any"})),
            (
                ToolChoice::Tool("w".into()),
                json!({"type": "tool", "name": "w"}),
            ),
        ] {
            req.tool_choice = Some(choice);
            let v = serde_json::to_value(wire_request("a", &req, false, 10).unwrap()).unwrap();
            assert_eq!(v["tool_choice"], wire);
        }
        req.parallel_tool_calls = Some(false);
        req.tool_choice = None;
        let v = serde_json::to_value(wire_request("a", &req, false, 10).unwrap()).unwrap();
        assert_eq!(
            v["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        req.tool_choice = Some(ToolChoice::Required);
        let v = serde_json::to_value(wire_request("a", &req, false, 10).unwrap()).unwrap();
        assert_eq!(
            v["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn a_json_answer_is_asked_through_a_forced_tool_of_its_schema() {
        let mut req = ChatRequest::new("claude", vec![Message::user("a city")]);
        req.response_format = Some(Box::new(ResponseFormat::JsonObject));
        let v = serde_json::to_value(wire_request("a", &req, true, 10).unwrap()).unwrap();
        assert_eq!(v["tools"][0]["name"], json!("json_answer"));
        assert_eq!(v["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(
            v["tool_choice"],
            json!({"type": "tool", "name": "json_answer", "disable_parallel_tool_use": true})
        );
        let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}});
        req.response_format = Some(Box::new(ResponseFormat::JsonSchema {
            name: "city".into(),
            description: Some("A city".into()),
            schema: schema.clone(),
            strict: Some(true),
        }));
        let v = serde_json::to_value(wire_request("a", &req, true, 10).unwrap()).unwrap();
        assert_eq!(
            v["tools"],
            json!([{"name": "city", "description": "A city", "input_schema": schema}])
        );
        assert_eq!(v["tool_choice"]["name"], json!("city"));
        req.response_format = Some(Box::new(ResponseFormat::Text));
        let v = serde_json::to_value(wire_request("a", &req, true, 10).unwrap()).unwrap();
        assert!(v.get("tools").is_none() && v.get("tool_choice").is_none());
    }

    #[test]
    fn what_the_messages_api_cannot_do_is_refused_before_sending() {
        let refused = |req: &ChatRequest| match wire_request("claude", req, false, 10) {
            Err(e @ ProviderError::Unsupported { .. }) => e.to_string(),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("{req:?} was not refused"),
        };
        let base = ChatRequest::new("claude", vec![Message::user("hi")]);
        let mut req = base.clone();
        req.seed = Some(1);
        assert_eq!(
            refused(&req),
            "claude: not supported: the Anthropic Messages API has no seed; leave it out"
        );
        let mut req = base.clone();
        req.frequency_penalty = Some(0.1);
        assert!(refused(&req).contains("frequency_penalty"));
        let mut req = base.clone();
        req.response_format = Some(Box::new(ResponseFormat::JsonObject));
        req.tools = vec![weather_tool()];
        assert!(refused(&req).contains("cannot be combined with tools"));
        let mut req = base;
        req.response_format = Some(Box::new(ResponseFormat::JsonSchema {
            name: "list".into(),
            description: None,
            schema: json!({"type": "array"}),
            strict: None,
        }));
        assert!(refused(&req).contains("must be an object"));
    }

    #[test]
    fn top_k_is_sent_as_claude_takes_it() {
        let mut req = ChatRequest::new("claude", vec![Message::user("hi")]);
        let body = |req: &ChatRequest| {
            serde_json::to_value(wire_request("claude", req, false, 4096).unwrap()).unwrap()
        };
        assert!(body(&req).get("top_k").is_none());
        req.top_k = Some(40);
        assert_eq!(body(&req)["top_k"], json!(40));
    }

    #[test]
    fn the_end_user_goes_in_metadata() {
        let body = |req: &ChatRequest| {
            serde_json::to_value(wire_request("claude", req, false, 4096).unwrap()).unwrap()
        };
        let mut req = ChatRequest::new("claude", vec![Message::user("hi")]);
        assert!(body(&req).get("metadata").is_none());
        let mut ids = crate::types::RequestIds {
            user: Some("u-1".into()),
            prompt_cache_key: Some("docs".into()),
            ..Default::default()
        };
        req.ids = Some(Box::new(ids.clone()));
        let v = body(&req);
        assert_eq!(v["metadata"], json!({"user_id": "u-1"}));
        assert!(
            v.get("prompt_cache_key").is_none() && v.get("user").is_none(),
            "{v}"
        );
        // The identifier meant for abuse monitoring comes first.
        ids.safety_identifier = Some("9f86d0".into());
        req.ids = Some(Box::new(ids.clone()));
        assert_eq!(body(&req)["metadata"], json!({"user_id": "9f86d0"}));
        // OpenAI's tags and `store` have no place here; its tiers become Anthropic's where
        // there is one.
        ids.metadata = Some([("team".to_owned(), "search".to_owned())].into());
        ids.store = Some(true);
        for (openai, anthropic) in [
            ("auto", Some("auto")),
            ("priority", Some("auto")),
            ("default", Some("standard_only")),
            ("flex", None),
            ("scale", None),
        ] {
            ids.service_tier = Some(openai.into());
            req.ids = Some(Box::new(ids.clone()));
            let v = body(&req);
            assert_eq!(v["metadata"], json!({"user_id": "9f86d0"}));
            assert!(v.get("store").is_none(), "{v}");
            assert_eq!(v.get("service_tier"), anthropic.map(|t| json!(t)).as_ref());
        }
    }

    #[test]
    fn reasoning_effort_asks_claude_to_think_within_a_budget() {
        let body = |req: &ChatRequest| {
            serde_json::to_value(wire_request("claude", req, true, 4096).unwrap()).unwrap()
        };
        let mut req = ChatRequest::new("claude", vec![Message::user("hi")]);
        assert!(body(&req).get("thinking").is_none());
        for (effort, budget) in [
            ("minimal", 1024),
            ("low", 1024),
            ("medium", 4096),
            ("high", 16384),
        ] {
            req.reasoning_effort = Some(effort.into());
            let v = body(&req);
            assert_eq!(
                v["thinking"],
                json!({"type": "enabled", "budget_tokens": budget}),
                "{effort}"
            );
            // The answer keeps the default's room after the budget.
            assert_eq!(v["max_tokens"], json!(4096 + budget), "{effort}");
        }
        req.reasoning_effort = Some("none".into());
        assert!(body(&req).get("thinking").is_none());
        req.reasoning_effort = Some("medium".into());
        req.max_tokens = Some(8000);
        assert_eq!(body(&req)["max_tokens"], json!(8000));
        // Tools with the model's own choice, and top_p in the documented range, go together
        // with thinking.
        req.tools = vec![weather_tool()];
        req.tool_choice = Some(ToolChoice::Auto);
        req.top_p = Some(0.95);
        req.temperature = Some(1.0);
        let v = body(&req);
        assert_eq!(v["tool_choice"], json!({"type": "auto"}));
        assert!((v["top_p"].as_f64().unwrap() - 0.95).abs() < 1e-6, "{v}");
        assert!(v.get("temperature").is_none(), "{v}");

        let refused = |req: &ChatRequest| match wire_request("claude", req, false, 10) {
            Err(e @ ProviderError::Unsupported { .. }) => e.to_string(),
            other => panic!("{req:?} was not refused: {:?}", other.map(|_| ())),
        };
        let base = ChatRequest {
            reasoning_effort: Some("medium".into()),
            ..ChatRequest::new("claude", vec![Message::user("hi")])
        };
        let mut r = base.clone();
        r.reasoning_effort = Some("extreme".into());
        assert!(refused(&r).contains("\"extreme\""));
        let mut r = base.clone();
        r.max_tokens = Some(4096);
        assert!(refused(&r).contains("max_tokens must exceed"));
        let mut r = base.clone();
        r.temperature = Some(0.2);
        assert!(refused(&r).contains("temperature"));
        let mut r = base.clone();
        r.top_p = Some(0.5);
        assert!(refused(&r).contains("top_p"));
        let mut r = base.clone();
        r.top_k = Some(40);
        assert!(refused(&r).contains("takes no top_k"));
        let mut r = base.clone();
        r.tools = vec![weather_tool()];
        r.tool_choice = Some(ToolChoice::Required);
        assert!(refused(&r).contains("forced tool call"));
        let mut r = base;
        r.response_format = Some(Box::new(ResponseFormat::JsonObject));
        assert!(refused(&r).contains("JSON response_format"));
    }

    #[test]
    fn signed_thinking_goes_back_first_and_unsigned_reasoning_not_at_all() {
        let mut turn = Message::assistant_tool_calls(
            "",
            vec![ToolCall {
                id: "toolu_1".into(),
                name: "get_weather".into(),
                arguments: json!({"city": "Paris"}),
            }],
        );
        turn.reasoning = "Need the weather.".into();
        turn.thinking_blocks = vec![
            ThinkingBlock::Thinking {
                thinking: "Need the weather.".into(),
                signature: "sig==".into(),
            },
            ThinkingBlock::RedactedThinking {
                data: "enc==".into(),
            },
        ];
        let mut other = Message::assistant("Sunny.");
        other.reasoning = "another provider's thoughts".into();
        let req = ChatRequest::new(
            "claude",
            vec![
                Message::user("weather?"),
                turn,
                Message::tool_result("toolu_1", "sunny"),
                other,
            ],
        );
        let v = serde_json::to_value(wire_request("claude", &req, false, 10).unwrap()).unwrap();
        assert_eq!(
            v["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "Need the weather.", "signature": "sig=="},
                {"type": "redacted_thinking", "data": "enc=="},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ])
        );
        assert_eq!(
            v["messages"][3]["content"],
            json!([{"type": "text", "text": "Sunny."}])
        );
    }

    #[test]
    fn a_whole_answers_thinking_is_its_reasoning_and_its_blocks() {
        let body = br#"{"model":"claude","content":[
            {"type":"thinking","thinking":"Two and two.","signature":"sig=="},
            {"type":"redacted_thinking","data":"enc=="},
            {"type":"text","text":"4."}],"stop_reason":"end_turn"}"#;
        let r = parse_response("anthropic", body, "claude", None).unwrap();
        assert_eq!(r.message.reasoning, "Two and two.");
        assert_eq!(r.message.content, "4.");
        assert_eq!(
            r.message.thinking_blocks,
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
    }

    #[test]
    fn streamed_thinking_comes_as_it_is_written_then_whole_with_its_signature() {
        let s = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"content\":[],\"usage\":{\"input_tokens\":9}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Two and \"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"two.\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig==\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"enc==\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"4.\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":30}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let expected = vec![
            StreamEvent::Reasoning {
                text: "Two and ".into(),
            },
            StreamEvent::Reasoning {
                text: "two.".into(),
            },
            StreamEvent::ThinkingBlock(ThinkingBlock::Thinking {
                thinking: "Two and two.".into(),
                signature: "sig==".into(),
            }),
            StreamEvent::ThinkingBlock(ThinkingBlock::RedactedThinking {
                data: "enc==".into(),
            }),
            StreamEvent::Delta { text: "4.".into() },
            StreamEvent::Usage(Usage {
                prompt_tokens: 9,
                completion_tokens: 30,
                ..Usage::default()
            }),
            StreamEvent::Done {
                finish_reason: FinishReason::Stop,
            },
        ];
        let bytes = s.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(
                decode_all(&[&bytes[..i], &bytes[i..]]).unwrap(),
                expected,
                "split at {i}"
            );
        }
    }

    const ANSWER_STREAM: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"stop_reason\":null,\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"city\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"name\\\": \\\"Par\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn the_answer_tools_input_streams_as_the_answers_text() {
        let events = decode_answering(&[ANSWER_STREAM.as_bytes()], Some("city")).unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta {
                    text: "{\"name\": \"Par".into()
                },
                StreamEvent::Delta {
                    text: "is\"}".into()
                },
                StreamEvent::Usage(Usage {
                    prompt_tokens: 20,
                    completion_tokens: 9,
                    ..Usage::default()
                }),
                StreamEvent::Done {
                    finish_reason: FinishReason::Stop,
                },
            ]
        );
        // Another tool's call stays a tool call.
        let events = decode_answering(&[ANSWER_STREAM.as_bytes()], Some("other")).unwrap();
        assert!(matches!(&events[0], StreamEvent::ToolCall(c) if c.name == "city"));
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Done {
                finish_reason: FinishReason::ToolCalls
            })
        );
        // Split anywhere, the same events.
        let bytes = ANSWER_STREAM.as_bytes();
        let whole = decode_answering(&[bytes], Some("city")).unwrap();
        for i in 0..=bytes.len() {
            let split = decode_answering(&[&bytes[..i], &bytes[i..]], Some("city")).unwrap();
            assert_eq!(split, whole, "split at {i}");
        }
    }

    #[test]
    fn a_whole_answer_through_the_answer_tool_is_its_input_as_text() {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "json_answer",
                "input": {"name": "Paris", "population": 2102650}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 12, "output_tokens": 8},
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        let answer = parse_response("a", &bytes, "claude", Some("json_answer")).unwrap();
        let text: Value = serde_json::from_str(&answer.message.content).unwrap();
        assert_eq!(text, json!({"name": "Paris", "population": 2102650}));
        assert!(answer.message.tool_calls.is_empty());
        assert_eq!(answer.finish_reason, FinishReason::Stop);
        let answer = parse_response("a", &bytes, "claude", None).unwrap();
        assert_eq!(answer.message.tool_calls[0].name, "json_answer");
        assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    }

    #[test]
    fn prompt_caches_count_in_the_prompt_and_as_cached() {
        let want = Usage {
            prompt_tokens: 2105,
            completion_tokens: 8,
            cached_tokens: 2000,
            reasoning_tokens: 0,
        };
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 2000, "output_tokens": 8},
        });
        let answer =
            parse_response("a", &serde_json::to_vec(&body).unwrap(), "claude", None).unwrap();
        assert_eq!(answer.usage, Some(want));
        let stream = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"content\":[],\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":8}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ]
        .concat();
        let events = decode_all(&[stream.as_bytes()]).unwrap();
        assert!(events.contains(&StreamEvent::Usage(want)), "{events:?}");
    }
}
