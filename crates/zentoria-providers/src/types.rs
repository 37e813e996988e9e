//! Provider-neutral request, response and streaming types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who authored a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model. Anthropic receives these in the top-level `system` field.
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call; pair it with [`Message::tool_call_id`].
    Tool,
}

impl Role {
    /// The lowercase wire name used by OpenAI-compatible servers and Ollama.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Author of the turn.
    pub role: Role,
    /// Text content (may be empty for an assistant turn that only calls tools).
    #[serde(default)]
    pub content: String,
    /// Tool calls made by the assistant in this turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For [`Role::Tool`] messages: the [`ToolCall::id`] this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// What a reasoning model thought before this assistant turn's answer, as text: Ollama's
    /// `thinking`, the `reasoning_content` of DeepSeek, vLLM and llama.cpp, Anthropic's
    /// thinking blocks. Sent back only to Ollama (see [`Message::thinking_blocks`] for
    /// Anthropic); OpenAI-compatible servers refuse or ignore it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    /// Anthropic's signed thinking blocks of this assistant turn, to be sent back as they came:
    /// Anthropic requires them before a turn's tool calls when thinking is on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock>,
    /// Images given with a user turn, each placed among the text by [`Image::at`]
    /// ([`Message::parts`] gives them in order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// A prompt-cache breakpoint in this turn: the conversation up to it is to be cached by
    /// providers that are told what to cache (Anthropic's `cache_control`). Others cache on
    /// their own or not at all, and are not told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheMark>,
}

/// A prompt-cache breakpoint ([`Message::cache`]): how long to keep the prefix, and where in
/// its turn the prefix ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheMark {
    /// How long the provider keeps it.
    pub ttl: CacheTtl,
    /// Where the cached prefix ends inside the turn; `None`: at its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<CachePoint>,
}

impl CacheMark {
    /// A breakpoint at the end of its turn.
    pub fn end(ttl: CacheTtl) -> Self {
        CacheMark { ttl, at: None }
    }
}

/// A place inside a turn, between its parts ([`Message::parts`]): after the first `text`
/// bytes of [`Message::content`] and the first `images` of [`Message::images`]. A document
/// given with a question is cached without the question this way, so that the next question
/// about it finds it in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePoint {
    /// Bytes of the content before the point.
    pub text: usize,
    /// Images before the point.
    pub images: usize,
}

/// How long a provider keeps a cached prompt prefix ([`Message::cache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheTtl {
    /// The provider's default (Anthropic: five minutes, renewed on every hit).
    #[serde(rename = "default")]
    Default,
    /// Five minutes.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// An hour (Anthropic bills writing it at twice the input price).
    #[serde(rename = "1h")]
    OneHour,
}

/// An image given to the model with a user turn: inline as a `data:` URL
/// (`data:image/png;base64,…`, what chat front ends send) or as a web address for the
/// provider to fetch (OpenAI-compatible servers and Anthropic; Ollama takes inline images only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The `data:` URL or `http(s)://` address, as the client gave it.
    pub url: String,
    /// OpenAI's level of detail; passed on to OpenAI-compatible servers, which alone take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<ImageDetail>,
    /// Where the image stood among the message's text parts: a byte offset into
    /// [`Message::content`] (0 before all the text, its length after it).
    #[serde(default)]
    pub at: usize,
}

/// How closely an OpenAI model looks at an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDetail {
    /// The model decides.
    Auto,
    /// A low-resolution look, for fewer tokens.
    Low,
    /// A high-resolution look.
    High,
}

impl ImageDetail {
    /// OpenAI's name for the level.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageDetail::Auto => "auto",
            ImageDetail::Low => "low",
            ImageDetail::High => "high",
        }
    }
}

/// Where an [`Image`]'s bytes are, read from its URL by [`Image::source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource<'a> {
    /// Inline, base64-encoded.
    Inline {
        /// The media type, as written (`image/png`); compare it ignoring ASCII case.
        media_type: &'a str,
        /// The base64 text (standard alphabet, padded).
        data: &'a str,
    },
    /// At a web address.
    Web(&'a str),
}

impl Image {
    /// An image at `url`, before all of a message's text.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            detail: None,
            at: 0,
        }
    }

    /// Where the bytes are, or why the URL is not one a provider takes: a `data:` URL must be
    /// an `image/…` type in base64 (standard alphabet, padded); an address must be
    /// `http://` or `https://` with a host and no spaces.
    pub fn source(&self) -> Result<ImageSource<'_>, String> {
        let url = self.url.as_str();
        if let Some(rest) = strip_prefix_ignore_case(url, "data:") {
            let (head, data) = rest
                .split_once(',')
                .ok_or("a data: URL needs a comma before its data")?;
            let mut params = head.split(';');
            let media_type = params.next().unwrap_or_default();
            if !params.any(|p| p.eq_ignore_ascii_case("base64")) {
                return Err(
                    "a data: URL image must be base64-encoded (data:image/png;base64,…)".into(),
                );
            }
            let subtype = strip_prefix_ignore_case(media_type, "image/").ok_or_else(|| {
                format!("a data: URL image must have an image/… media type, not {media_type:?}")
            })?;
            if subtype.is_empty()
                || !subtype
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-._".contains(&b))
            {
                return Err(format!("{media_type:?} is not a media type"));
            }
            check_base64(data)?;
            return Ok(ImageSource::Inline { media_type, data });
        }
        let rest = strip_prefix_ignore_case(url, "https://")
            .or_else(|| strip_prefix_ignore_case(url, "http://"))
            .ok_or("an image URL must be a data: URL or an http(s):// address")?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() {
            return Err("an image address needs a host".into());
        }
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("an image address may not hold spaces or control characters".into());
        }
        Ok(ImageSource::Web(url))
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Standard base64, padded: what every provider decodes. Checked, not decoded (an image can
/// be megabytes, and the providers decode it themselves).
fn check_base64(data: &str) -> Result<(), String> {
    let bytes = data.as_bytes();
    if bytes.is_empty() {
        return Err("the image's data is empty".into());
    }
    if !bytes.len().is_multiple_of(4) {
        return Err(
            "the image's base64 data is cut short (its length is not a multiple of 4)".into(),
        );
    }
    let pad = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return Err("the image's base64 data has more than two '=' at its end".into());
    }
    match bytes[..bytes.len() - pad]
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/'))
    {
        Some(at) => Err(format!(
            "the image's data is not base64: byte {at} is {:?}",
            char::from(bytes[at])
        )),
        None => Ok(()),
    }
}

/// A piece of a [`Message`]'s content, in order: see [`Message::parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// Text (never empty).
    Text(&'a str),
    /// An image.
    Image(&'a Image),
}

/// One of Anthropic's thinking blocks, as its API sends and takes it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingBlock {
    /// Reasoning in the clear, signed so that Anthropic can tell it was its own.
    Thinking {
        /// The reasoning's text.
        thinking: String,
        /// Anthropic's signature over it.
        signature: String,
    },
    /// Reasoning Anthropic's safety systems encrypted.
    RedactedThinking {
        /// The encrypted reasoning.
        data: String,
    },
}

impl Message {
    fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning: String::new(),
            thinking_blocks: Vec::new(),
            images: Vec::new(),
            cache: None,
        }
    }

    /// The content as text pieces and images in the order the client gave them. An image's
    /// [`Image::at`] past the text, or inside a character, or before an earlier image's, is
    /// taken as the nearest place that exists.
    pub fn parts(&self) -> Vec<Part<'_>> {
        let text = self.content.as_str();
        let mut parts = Vec::with_capacity(2 * self.images.len() + 1);
        let mut from = 0;
        for image in &self.images {
            let mut at = image.at.clamp(from, text.len());
            // `from` is a boundary, so this stops at it at the latest.
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            if at > from {
                parts.push(Part::Text(&text[from..at]));
            }
            parts.push(Part::Image(image));
            from = at;
        }
        if from < text.len() {
            parts.push(Part::Text(&text[from..]));
        }
        parts
    }

    /// [`Message::parts`], a text part cut in two where the cache breakpoint falls inside it,
    /// and the index of the part the breakpoint follows (`None` without one). A point before
    /// every part is taken as after the first; one past the content, as at the end.
    pub fn parts_with_cache(&self) -> (Vec<Part<'_>>, Option<usize>) {
        let parts = self.parts();
        let Some(mark) = self.cache else {
            return (parts, None);
        };
        let Some(point) = mark.at else {
            let last = parts.len().checked_sub(1);
            return (parts, last);
        };
        let mut out = Vec::with_capacity(parts.len() + 1);
        let (mut text, mut images, mut after) = (0, 0, None);
        for part in parts {
            match part {
                Part::Image(image) => {
                    out.push(Part::Image(image));
                    images += 1;
                }
                Part::Text(t) => {
                    let cut = point.text.checked_sub(text).filter(|&cut| {
                        images == point.images
                            && cut > 0
                            && cut < t.len()
                            && t.is_char_boundary(cut)
                    });
                    if let Some(cut) = cut {
                        out.push(Part::Text(&t[..cut]));
                        after = Some(out.len() - 1);
                        out.push(Part::Text(&t[cut..]));
                    } else {
                        out.push(Part::Text(t));
                    }
                    text += t.len();
                }
            }
            if after.is_none() && text >= point.text && images >= point.images {
                after = Some(out.len() - 1);
            }
        }
        let last = out.len().checked_sub(1);
        (out, after.or(last))
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message with text only.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// An assistant message that calls tools.
    pub fn assistant_tool_calls(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::new(Role::Assistant, content)
        }
    }

    /// The result of the tool call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Function name.
    pub name: String,
    /// What the tool does, for the model.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// A complete tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Identifier used to match the tool result. Synthesized (`call_0`, `call_1`, …) for Ollama.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Parsed JSON arguments (an object for well-behaved models).
    pub arguments: Value,
}

/// A chat-completion request. `model` is the provider's own model name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Upstream model name, e.g. `llama3.2`, `gpt-4o-mini`, `claude-sonnet-4-5`.
    pub model: String,
    /// Conversation so far.
    pub messages: Vec<Message>,
    /// Tools offered to the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Maximum number of tokens to generate. Anthropic requires one; the client supplies a
    /// default when this is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Sampling from the `k` likeliest tokens only (Ollama, Anthropic, vLLM and llama.cpp take
    /// it; OpenAI's own API does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Whether and which tool the model must call; `None` leaves it to the provider (which
    /// is [`ToolChoice::Auto`] when tools are offered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` asks for at most one tool call per turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The shape of the answer's text: free text, any JSON object, or JSON matching a schema.
    /// Boxed: seldom set and large, and a request is moved through several futures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Box<ResponseFormat>>,
    /// Seed for sampling, for answers that repeat as far as the provider can make them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Penalty on tokens that have appeared at all (-2.0 to 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// Penalty on tokens by how often they have appeared (-2.0 to 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// How hard a reasoning model thinks (`low`, `medium`, `high`, …), as OpenAI names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Who the request is for and how the provider may group it, as the client said. Boxed:
    /// seldom set, and a request is moved through several futures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Box<RequestIds>>,
}

/// What a client attaches to a request for the provider (OpenAI's names): who it is for, how
/// its prompt is cached, tags, whether the provider keeps it and on which tier it runs. Passed
/// to providers that take them, left out for others (they change no answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestIds {
    /// The end user, for the provider's abuse monitoring (OpenAI's older `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The end user, hashed or opaque, for the provider's abuse monitoring (OpenAI's
    /// `safety_identifier`; Anthropic's `metadata.user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<String>,
    /// Requests with the same key are routed to the same prompt cache (OpenAI's
    /// `prompt_cache_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    /// Tags for the request, as the provider shows them in its own dashboards (OpenAI's
    /// `metadata`: string values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    /// Whether the provider keeps the completion for its own tools (OpenAI's `store`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// The processing tier asked for (OpenAI's `service_tier`: `auto`, `default`, `flex`,
    /// `priority`, …): how fast and at what price, not what is answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model answers in text and calls no tool.
    None,
    /// The model calls at least one tool.
    Required,
    /// The model calls this tool.
    Tool(String),
}

/// The shape of an answer's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// A JSON object, of any shape.
    JsonObject,
    /// JSON matching `schema`.
    JsonSchema {
        /// The schema's name (`^[a-zA-Z0-9_-]{1,64}$`).
        name: String,
        /// What the answer is for, to guide the model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// A JSON Schema.
        schema: Value,
        /// Whether the provider must follow the schema exactly (OpenAI's structured outputs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

impl ResponseFormat {
    /// The JSON Schema an answer must match; `None` for free text.
    pub fn schema(&self) -> Option<std::borrow::Cow<'_, Value>> {
        match self {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some(std::borrow::Cow::Owned(
                serde_json::json!({"type": "object"}),
            )),
            ResponseFormat::JsonSchema { schema, .. } => Some(std::borrow::Cow::Borrowed(schema)),
        }
    }
}

impl ChatRequest {
    /// A request for `model` with the given messages and default sampling.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            messages,
            ..Self::default()
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end of the turn or a stop sequence.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model wants tool results.
    ToolCalls,
    /// The provider filtered or refused the output.
    ContentFilter,
    /// Any other provider-specific reason, verbatim.
    Other(String),
}

/// Token accounting reported by the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Of the prompt's tokens, those the provider read from its prompt cache (OpenAI's
    /// `prompt_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`), which
    /// providers bill for less; 0 when it did not say.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_tokens: u64,
    /// Of the tokens generated, those a reasoning model spent thinking
    /// (`completion_tokens_details.reasoning_tokens`); 0 when the provider did not say.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Sum of prompt and completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// One normalized streaming event.
///
/// A successful stream is a sequence of `Reasoning`, `ThinkingBlock`, `Delta` and `ToolCall`
/// events, then at most one `Usage`,
/// then exactly one `Done`, after which the stream ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// A piece of assistant text.
    Delta {
        /// The text fragment.
        text: String,
    },
    /// A piece of the model's reasoning, before its answer.
    Reasoning {
        /// The text fragment.
        text: String,
    },
    /// A whole signed thinking block (Anthropic), after the [`StreamEvent::Reasoning`]
    /// pieces of its text: what must be sent back with the turn ([`Message::thinking_blocks`]).
    ThinkingBlock(ThinkingBlock),
    /// A complete tool call with parsed arguments.
    ToolCall(ToolCall),
    /// Token usage for the whole response.
    Usage(Usage),
    /// The terminal event.
    Done {
        /// Why generation stopped.
        finish_reason: FinishReason,
    },
}

/// A complete (non-streaming) chat response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The assistant message, including any tool calls.
    pub message: Message,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Token usage, when the upstream reported it.
    pub usage: Option<Usage>,
    /// The model that answered (as reported by the upstream, else the requested one).
    pub model: String,
    /// How long the call waited on the upstream: from sending the request until the answer
    /// had arrived (retries and their backoff included; decoding not). Zero when the answer
    /// was assembled from a stream. Not part of the wire format.
    #[serde(skip)]
    pub upstream_wait: std::time::Duration,
}

/// A model offered by a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The provider's model name, usable as [`ChatRequest::model`].
    pub id: String,
    /// Owner as reported by the upstream (OpenAI `owned_by`), if any.
    pub owned_by: Option<String>,
    /// Name of the provider instance that listed the model.
    pub provider: String,
}

/// Folds stream events into a [`ChatResponse`]; shared by streaming and non-streaming paths.
#[derive(Debug, Default)]
pub(crate) struct ResponseBuilder {
    text: String,
    reasoning: String,
    thinking_blocks: Vec<ThinkingBlock>,
    tool_calls: Vec<ToolCall>,
    usage: Option<Usage>,
    finish_reason: Option<FinishReason>,
}

impl ResponseBuilder {
    pub(crate) fn push(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Delta { text } => self.text.push_str(&text),
            StreamEvent::Reasoning { text } => self.reasoning.push_str(&text),
            StreamEvent::ThinkingBlock(block) => self.thinking_blocks.push(block),
            StreamEvent::ToolCall(call) => self.tool_calls.push(call),
            StreamEvent::Usage(usage) => self.usage = Some(usage),
            StreamEvent::Done { finish_reason } => self.finish_reason = Some(finish_reason),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// Builds the response. Callers must check [`Self::is_done`] first.
    pub(crate) fn finish(self, model: String) -> ChatResponse {
        ChatResponse {
            message: Message {
                reasoning: self.reasoning,
                thinking_blocks: self.thinking_blocks,
                ..Message::assistant_tool_calls(self.text, self.tool_calls)
            },
            finish_reason: self.finish_reason.unwrap_or(FinishReason::Stop),
            usage: self.usage,
            model,
            upstream_wait: std::time::Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_events_serialize_with_type_tag() {
        let v = serde_json::to_value(StreamEvent::Delta { text: "hi".into() }).unwrap();
        assert_eq!(v, serde_json::json!({"type": "delta", "text": "hi"}));
        let v = serde_json::to_value(StreamEvent::Done {
            finish_reason: FinishReason::Other("load".into()),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "done", "finish_reason": {"other": "load"}})
        );
    }

    fn image_at(url: &str, at: usize) -> Image {
        Image {
            at,
            ..Image::new(url)
        }
    }

    #[test]
    fn image_sources_are_read_from_their_urls() {
        let png = "data:image/png;base64,iVBORw0KGgo=";
        assert_eq!(
            Image::new(png).source(),
            Ok(ImageSource::Inline {
                media_type: "image/png",
                data: "iVBORw0KGgo="
            })
        );
        assert_eq!(
            Image::new("DATA:Image/JPEG;charset=x;BASE64,/9j/").source(),
            Ok(ImageSource::Inline {
                media_type: "Image/JPEG",
                data: "/9j/"
            })
        );
        assert_eq!(
            Image::new("https://example.com/cat.png?s=1").source(),
            Ok(ImageSource::Web("https://example.com/cat.png?s=1"))
        );
        for (url, says) in [
            ("data:image/png,iVBORw0KGgo=", "base64-encoded"),
            ("data:image/png;base64", "comma"),
            ("data:text/plain;base64,aGk=", "image/"),
            ("data:image/;base64,aGk=", "not a media type"),
            ("data:image/png;base64,", "empty"),
            ("data:image/png;base64,aGk", "multiple of 4"),
            ("data:image/png;base64,a===", "two '='"),
            ("data:image/png;base64,a\nG=", "byte 1"),
            ("data:image/png;base64,aG=k", "byte 2"),
            ("ftp://example.com/a.png", "http(s)"),
            ("cat.png", "http(s)"),
            ("https:///a.png", "host"),
            ("https://example.com/a cat.png", "spaces"),
        ] {
            let err = Image::new(url).source().unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn parts_keep_images_where_they_stood_among_the_text() {
        let mut m = Message::user("Compare thisto that.");
        m.images = vec![image_at("a", 12), image_at("b", 20)];
        let (a, b) = (&m.images[0], &m.images[1]);
        assert_eq!(
            m.parts(),
            vec![
                Part::Text("Compare this"),
                Part::Image(a),
                Part::Text("to that."),
                Part::Image(b)
            ]
        );
        // Images before the text, and text alone.
        m.images = vec![image_at("a", 0), image_at("b", 0)];
        let (a, b) = (&m.images[0], &m.images[1]);
        assert_eq!(
            m.parts(),
            vec![
                Part::Image(a),
                Part::Image(b),
                Part::Text("Compare thisto that.")
            ]
        );
        assert_eq!(Message::user("hi").parts(), vec![Part::Text("hi")]);
        assert_eq!(Message::user("").parts(), vec![]);
        // Out of range, inside a character, out of order: the nearest place that exists.
        let mut m = Message::user("é!");
        m.images = vec![image_at("a", 1), image_at("b", 99), image_at("c", 0)];
        let (a, b, c) = (&m.images[0], &m.images[1], &m.images[2]);
        assert_eq!(
            m.parts(),
            vec![
                Part::Image(a),
                Part::Text("é!"),
                Part::Image(b),
                Part::Image(c)
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_url_is_read_or_refused_without_panicking(url in "(data:|https?://)?\\PC{0,40}") {
            let image = Image::new(url);
            if let Ok(ImageSource::Inline { data, .. }) = image.source() {
                proptest::prop_assert!(data.len().is_multiple_of(4) && !data.is_empty());
            }
        }

        #[test]
        fn parts_hold_the_whole_text_and_every_image_in_order(
            text in "\\PC{0,20}",
            at in proptest::collection::vec(0usize..64, 0..5),
        ) {
            let mut m = Message::user(text.clone());
            m.images = at.iter().map(|&at| image_at(&at.to_string(), at)).collect();
            let parts = m.parts();
            let mut joined = String::new();
            let mut seen = Vec::new();
            for part in parts {
                match part {
                    Part::Text(t) => {
                        proptest::prop_assert!(!t.is_empty());
                        joined.push_str(t);
                    }
                    Part::Image(i) => seen.push(i.url.clone()),
                }
            }
            proptest::prop_assert_eq!(joined, text);
            proptest::prop_assert_eq!(seen, at.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        }

        #[test]
        fn a_cache_point_cuts_no_text_away_and_follows_what_is_before_it(
            text in "\\PC{0,20}",
            at in proptest::collection::vec(0usize..24, 0..4),
            point in (0usize..28, 0usize..5),
        ) {
            let mut m = Message::user(text.clone());
            let mut at = at;
            at.sort_unstable();
            m.images = at.iter().map(|&at| image_at(&at.to_string(), at)).collect();
            let point = CachePoint { text: point.0, images: point.1 };
            m.cache = Some(CacheMark { ttl: CacheTtl::Default, at: Some(point) });
            let whole = m.parts().len();
            let (parts, mark) = m.parts_with_cache();
            // At most one text is cut; nothing is lost or reordered.
            proptest::prop_assert!(parts.len() == whole || parts.len() == whole + 1);
            let mut joined = String::new();
            let (mut before_text, mut before_images) = (0, 0);
            for (i, part) in parts.iter().enumerate() {
                match part {
                    Part::Text(t) => {
                        proptest::prop_assert!(!t.is_empty());
                        joined.push_str(t);
                    }
                    Part::Image(_) => {}
                }
                if Some(i) == mark {
                    (before_text, before_images) = (joined.len(), parts[..=i].iter().filter(|p| matches!(p, Part::Image(_))).count());
                }
            }
            proptest::prop_assert_eq!(&joined, &text);
            match mark {
                None => proptest::prop_assert!(parts.is_empty()),
                Some(i) => {
                    proptest::prop_assert!(i < parts.len());
                    // The breakpoint is at the point when the point is a place between parts
                    // (or a character boundary inside a text), and never before the first part.
                    let exact = text.is_char_boundary(point.text.min(text.len()))
                        && point.text <= text.len()
                        && point.images <= m.images.len()
                        && (point.text, point.images) != (0, 0);
                    if exact && parts.len() > whole {
                        proptest::prop_assert_eq!((before_text, before_images), (point.text, point.images));
                    }
                    proptest::prop_assert!(i > 0 || before_text > 0 || before_images > 0);
                }
            }
        }
    }

    #[test]
    fn a_cache_point_inside_a_text_cuts_it_there() {
        let mut m = Message::user("A document. A question?");
        m.cache = Some(CacheMark {
            ttl: CacheTtl::OneHour,
            at: Some(CachePoint {
                text: 12,
                images: 0,
            }),
        });
        let (parts, mark) = m.parts_with_cache();
        assert_eq!(
            parts,
            [Part::Text("A document. "), Part::Text("A question?")]
        );
        assert_eq!(mark, Some(0));
        m.cache = Some(CacheMark::end(CacheTtl::Default));
        assert_eq!(
            m.parts_with_cache(),
            (vec![Part::Text("A document. A question?")], Some(0))
        );
        m.cache = None;
        assert_eq!(m.parts_with_cache().1, None);
    }

    #[test]
    fn builder_folds_events() {
        let mut b = ResponseBuilder::default();
        b.push(StreamEvent::Delta { text: "a".into() });
        b.push(StreamEvent::Delta { text: "b".into() });
        b.push(StreamEvent::Usage(Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
            ..Usage::default()
        }));
        assert!(!b.is_done());
        b.push(StreamEvent::Done {
            finish_reason: FinishReason::Length,
        });
        assert!(b.is_done());
        let r = b.finish("m".into());
        assert_eq!(r.message.content, "ab");
        assert_eq!(r.message.role, Role::Assistant);
        assert_eq!(r.finish_reason, FinishReason::Length);
        assert_eq!(r.usage.unwrap().total(), 3);
    }
}
