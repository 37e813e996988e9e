//! Protocol-faithful fake upstreams for Ollama, OpenAI-compatible servers and Anthropic.
//!
//! A [`Fake`] listens on a real socket (port 0) and answers chat requests from a queue of
//! scripted [`Reply`]s (a default completion when the queue is empty), rendered in the wire
//! format of its [`Wire`]: SSE or NDJSON when the request body says `"stream": true`, a JSON
//! document otherwise. It validates authentication headers the way the real services do and
//! records every request it receives.

#![allow(dead_code)] // each test binary uses a different subset

pub mod render;
pub mod scenarios;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use zentoria_providers::{ClientConfig, Provider, ProviderKind, ProviderOptions};

pub use render::{Chunk, Wire};

/// The API key the fakes expect (OpenAI and Anthropic).
pub const API_KEY: &str = "sk-test-0123456789-secret";

/// A tool call the fake model makes; `args_pieces` are streamed one delta each where the wire
/// format streams arguments (OpenAI, Anthropic) and joined otherwise.
#[derive(Clone, Debug)]
pub struct FakeCall {
    pub id: String,
    pub name: String,
    pub args_pieces: Vec<String>,
}

impl FakeCall {
    pub fn new(id: &str, name: &str, pieces: &[&str]) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            args_pieces: pieces.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn arguments(&self) -> Value {
        serde_json::from_str(&self.args_pieces.concat()).expect("fake arguments are JSON")
    }
}

/// What the fake model "generates".
#[derive(Clone, Debug)]
pub struct Completion {
    pub model: String,
    /// What the model thinks before its answer, piece by piece (each provider's own field).
    pub reasoning: Vec<String>,
    pub text: Vec<String>,
    pub tool_calls: Vec<FakeCall>,
    /// Native finish/stop reason; `None` picks the natural one for the content.
    pub finish: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Completion {
    pub fn text(pieces: &[&str]) -> Self {
        Self {
            model: "fake-model".into(),
            reasoning: Vec::new(),
            text: pieces.iter().map(|s| s.to_string()).collect(),
            tool_calls: Vec::new(),
            finish: None,
            prompt_tokens: 11,
            completion_tokens: 7,
        }
    }

    pub fn tools(text: &[&str], calls: Vec<FakeCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::text(text)
        }
    }

    pub fn thinking(mut self, pieces: &[&str]) -> Self {
        self.reasoning = pieces.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn finish(mut self, reason: &str) -> Self {
        self.finish = Some(reason.into());
        self
    }
}

/// One scripted answer to a chat request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A normal answer (streamed or not, as the request asked).
    Complete(Completion),
    /// An HTTP error with the provider's documented error body.
    Error {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<String>,
    },
    /// Stream everything before text piece `before_text_piece`, optionally half of the next
    /// chunk, then abort the connection.
    Cut {
        completion: Completion,
        before_text_piece: usize,
        partial_next: bool,
    },
    /// Stream everything before text piece `before_text_piece`, then go silent while keeping the
    /// connection open; record when the client goes away.
    Stall {
        completion: Completion,
        before_text_piece: usize,
    },
    /// Stream everything before text piece `before_text_piece`, then the provider's in-stream
    /// error, then end the body.
    StreamError {
        completion: Completion,
        before_text_piece: usize,
        kind: String,
        message: String,
    },
}

impl Reply {
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        Reply::Error {
            status,
            kind: kind.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, value: &str) -> Self {
        if let Reply::Error { retry_after, .. } = &mut self {
            *retry_after = Some(value.into());
        }
        self
    }
}

/// A request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
}

pub struct FakeState {
    pub wire: Wire,
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Signalled whenever a stalled stream's client disconnects.
    pub disconnected: Notify,
    pub disconnects: AtomicUsize,
    /// Connections accepted.
    pub connections: AtomicUsize,
}

/// A running fake upstream.
pub struct Fake {
    pub base_url: String,
    pub state: Arc<FakeState>,
}

impl Fake {
    pub async fn start(wire: Wire) -> Self {
        let state = Arc::new(FakeState {
            wire,
            replies: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            disconnected: Notify::new(),
            disconnects: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counted = Arc::clone(&state);
        let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
            counted.connections.fetch_add(1, Ordering::Relaxed);
        });
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fake {
            base_url: format!("http://{addr}"),
            state,
        }
    }

    pub fn push(&self, reply: Reply) -> &Self {
        self.state.replies.lock().unwrap().push_back(reply);
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Chat requests only (not model listings).
    pub fn chat_requests(&self) -> Vec<Recorded> {
        let path = self.state.wire.chat_path();
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn last_body(&self) -> Value {
        self.chat_requests()
            .last()
            .expect("a chat request")
            .body
            .clone()
    }

    pub fn kind(&self) -> ProviderKind {
        match self.state.wire {
            Wire::OpenAi => ProviderKind::OpenAi,
            Wire::Anthropic => ProviderKind::Anthropic,
            Wire::Ollama => ProviderKind::Ollama,
        }
    }

    /// A client for this fake with the correct API key.
    pub fn provider(&self, options: ProviderOptions) -> Provider {
        self.provider_with_key(options, Some(API_KEY))
    }

    pub fn provider_with_key(&self, options: ProviderOptions, key: Option<&str>) -> Provider {
        let mut config = ClientConfig::new()
            .with_base_url(&self.base_url)
            .with_options(options);
        if let Some(key) = key {
            config = config.with_api_key(key);
        }
        Provider::new(self.kind(), config).unwrap()
    }

    /// Waits (bounded, so a broken test fails instead of hanging) for a client disconnect.
    pub async fn wait_disconnect(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.state.disconnected.notified())
            .await
            .expect("the fake should observe the client closing the connection");
    }
}

/// Options for tests: quick backoff, breaker effectively off, generous timeouts.
pub fn fast_options() -> ProviderOptions {
    ProviderOptions {
        connect_timeout: Duration::from_secs(2),
        first_token_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        max_retries: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(200),
        breaker_threshold: 1000,
        breaker_cooldown: Duration::from_secs(1),
        ..ProviderOptions::default()
    }
}

async fn handle(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_json = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error_response(
                    state.wire,
                    400,
                    "invalid_request_error",
                    &e.to_string(),
                    None,
                );
            }
        }
    };
    state.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers.clone(),
        body: body_json.clone(),
    });
    let wire = state.wire;
    if let Err((status, kind, message)) =
        wire.check_request(&headers, &body_json, &method, uri.path())
    {
        return error_response(wire, status, kind, &message, None);
    }
    if uri.path() == wire.models_path() {
        return axum::Json(wire.models_body(uri.query())).into_response();
    }
    let stream = body_json
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let reply = state
        .replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::Complete(Completion::text(&["Hello", ", world!"])));
    match reply {
        Reply::Error {
            status,
            kind,
            message,
            retry_after,
        } => error_response(wire, status, &kind, &message, retry_after.as_deref()),
        Reply::Complete(completion) if !stream => {
            axum::Json(wire.render_json(&completion)).into_response()
        }
        Reply::Complete(completion) => {
            let chunks = wire.render_stream(&completion);
            streaming(wire, &state, chunks, Ending::Clean)
        }
        Reply::Cut {
            completion,
            before_text_piece,
            partial_next,
        } => {
            let (mut sent, rest) =
                split_before_text(wire.render_stream(&completion), before_text_piece);
            if partial_next && let Some(next) = rest.first() {
                let half = next.bytes.len() / 2;
                sent.push(Chunk {
                    bytes: next.bytes[..half].to_vec(),
                    text: false,
                });
            }
            streaming(wire, &state, sent, Ending::Abort)
        }
        Reply::Stall {
            completion,
            before_text_piece,
        } => {
            let (sent, _) = split_before_text(wire.render_stream(&completion), before_text_piece);
            streaming(wire, &state, sent, Ending::Stall)
        }
        Reply::StreamError {
            completion,
            before_text_piece,
            kind,
            message,
        } => {
            let (mut sent, _) =
                split_before_text(wire.render_stream(&completion), before_text_piece);
            sent.push(Chunk {
                bytes: wire.stream_error_chunk(&kind, &message).into_bytes(),
                text: false,
            });
            streaming(wire, &state, sent, Ending::Clean)
        }
    }
}

fn split_before_text(chunks: Vec<Chunk>, piece: usize) -> (Vec<Chunk>, Vec<Chunk>) {
    let mut seen = 0;
    let mut at = chunks.len();
    for (i, chunk) in chunks.iter().enumerate() {
        if chunk.text {
            if seen == piece {
                at = i;
                break;
            }
            seen += 1;
        }
    }
    let mut sent = chunks;
    let rest = sent.split_off(at);
    (sent, rest)
}

enum Ending {
    Clean,
    Abort,
    Stall,
}

fn streaming(wire: Wire, state: &Arc<FakeState>, chunks: Vec<Chunk>, ending: Ending) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let state = Arc::clone(state);
    tokio::spawn(async move {
        for chunk in chunks {
            if tx.send(Ok(Bytes::from(chunk.bytes))).await.is_err() {
                return;
            }
        }
        match ending {
            Ending::Clean => {}
            Ending::Abort => {
                // Let hyper flush what was written: an aborted connection discards its
                // unflushed write buffer, and the test wants the cut *after* that data.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = tx
                    .send(Err(std::io::Error::other(
                        "fake upstream cut the connection",
                    )))
                    .await;
            }
            Ending::Stall => {
                tx.closed().await;
                state.disconnects.fetch_add(1, Ordering::SeqCst);
                state.disconnected.notify_one();
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, wire.stream_content_type())
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap()
}

fn error_response(
    wire: Wire,
    status: u16,
    kind: &str,
    message: &str,
    retry_after: Option<&str>,
) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(wire.error_body(kind, message)),
    )
        .into_response();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, value.parse().unwrap());
    }
    response
}

/// Convenience: JSON of a tool spec.
pub fn weather_tool() -> zentoria_providers::ToolSpec {
    zentoria_providers::ToolSpec {
        name: "get_weather".into(),
        description: "Current weather for a city".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }),
    }
}
