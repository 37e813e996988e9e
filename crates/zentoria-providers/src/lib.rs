//! Chat-completion and embedding clients for three model-provider wire protocols behind one
//! normalized interface, built for reliability:
//!
//! * [`OllamaClient`]: Ollama's native `/api/chat` (NDJSON streaming), `/api/embed` and
//!   `/api/tags`.
//! * [`OpenAiClient`]: OpenAI-compatible `/v1/chat/completions` (SSE streaming),
//!   `/v1/embeddings` and `/v1/models`.
//! * [`AnthropicClient`]: Anthropic Messages API `/v1/messages` (SSE streaming) and `/v1/models`.
//!
//! [`Provider`] wraps any of them. Every call goes through the same machinery
//! ([`ProviderOptions`]): a connect timeout, a first-token timeout, an idle timeout between
//! stream chunks, retries with exponential backoff (honouring `Retry-After`) for transient
//! failures *only before anything was yielded to the caller*, and a per-client circuit breaker.
//! Errors ([`ProviderError`]) name the provider instance and carry the upstream's own message;
//! API keys never appear in errors or `Debug` output.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use zentoria_providers::{ChatRequest, ClientConfig, Message, Provider, ProviderKind, StreamEvent};
//!
//! # async fn demo() -> Result<(), zentoria_providers::ProviderError> {
//! let provider = Provider::new(ProviderKind::Ollama, ClientConfig::new())?;
//! let request = ChatRequest::new("llama3.2", vec![Message::user("Hello!")]);
//! let mut stream = provider.chat_stream(&request).await?;
//! while let Some(event) = stream.next().await {
//!     match event? {
//!         StreamEvent::Delta { text } => print!("{text}"),
//!         StreamEvent::Done { finish_reason } => println!("\n[{finish_reason:?}]"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod anthropic;
mod breaker;
mod client;
mod embed;
mod error;
pub mod json;
pub mod ndjson;
mod ollama;
mod openai;
mod options;
mod provider;
pub mod sse;
mod transport;
mod types;
mod wire;

/// The longest line a streamed answer (SSE or NDJSON) may hold, and the most data one SSE event
/// may carry: far beyond any provider's events, small enough that a hostile or broken upstream
/// cannot grow one without bound.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

pub use anthropic::{ANTHROPIC_VERSION, AnthropicClient};
pub use breaker::BreakerState;
pub use client::Proxy;
pub use embed::Embeddings;
pub use error::{ProviderError, TimeoutPhase};
pub use ollama::OllamaClient;
pub use openai::OpenAiClient;
pub use options::ProviderOptions;
pub use provider::{ClientConfig, Provider, ProviderKind};
pub use transport::ChatStream;
pub use types::{
    CacheMark, CachePoint, CacheTtl, ChatRequest, ChatResponse, FinishReason, Image, ImageDetail,
    ImageSource, Message, ModelInfo, Part, RequestIds, ResponseFormat, Role, StreamEvent,
    ThinkingBlock, ToolCall, ToolChoice, ToolSpec, Usage,
};
