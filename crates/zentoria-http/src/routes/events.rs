//! Live events: Server-Sent Events at `/api/v1/events` (resumable with `Last-Event-ID`) and a
//! WebSocket at `/ws` (the seeds' `{"type": …, "data": …}` messages). A subscriber receives
//! only events its scopes allow, and is cut off with a clear reason when it falls too far
//! behind, so a slow client never slows anyone else.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use zentoria_core::Error;
use zentoria_events::Event;
use zentoria_platform::{ClientInfo, Principal};

use crate::AppState;
use crate::error::ErrorBody;
use crate::extract::{Authed, Client};

/// How long a WebSocket send may take before the client counts as stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Comma-separated names or prefixes, e.g. `job.*,key.created`; all when absent.
    events: Option<String>,
    /// Resume after this event id (as the `Last-Event-ID` header does).
    last_event_id: Option<u64>,
    /// An API key or access token, for clients that cannot set headers (browsers'
    /// EventSource and WebSocket).
    #[allow(dead_code)]
    token: Option<String>,
}

fn filters(q: &EventsQuery) -> Vec<String> {
    q.events
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

fn wanted(ev: &Event, p: &Principal, filters: &[String]) -> bool {
    ev.matches(filters) && ev.visible_to(&p.user_id, p.scopes)
}

enum Phase {
    Replay(
        std::vec::IntoIter<Arc<Event>>,
        broadcast::Receiver<Arc<Event>>,
    ),
    Live(broadcast::Receiver<Arc<Event>>),
    Done,
}

/// A stream of events as Server-Sent Events; each has its id, its name as the SSE event type,
/// and `{"type", "id", "at", "data"}` as data. After a `Last-Event-ID` the kept events since
/// are replayed first; when some were already gone, a `reset` event says so.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = Event), (status = 401, body = ErrorBody)))]
pub async fn sse(
    State(state): State<AppState>,
    auth: Authed,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let filters = filters(&q);
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(q.last_event_id);
    let principal = auth.principal.clone();
    let (first, phase) = match last {
        Some(last) => match state.events.resume(last) {
            (rx, Some(replay)) => (None, Phase::Replay(replay.into_iter(), rx)),
            (rx, None) => (
                Some(SseEvent::default().event("reset").data(
                    r#"{"type":"reset","data":{"reason":"some events since the given Last-Event-ID are no longer kept; reload current state"}}"#,
                )),
                Phase::Live(rx),
            ),
        },
        None => (None, Phase::Live(state.events.subscribe())),
    };
    metrics::gauge!("zentoria_event_subscribers", "transport" => "sse").increment(1.0);
    let guard = Gauge("sse");
    let events = stream::unfold(
        (phase, principal, filters, guard),
        |(mut phase, principal, filters, guard)| async move {
            loop {
                match phase {
                    Phase::Done => return None,
                    Phase::Replay(mut it, rx) => match it.next() {
                        Some(ev) => {
                            phase = Phase::Replay(it, rx);
                            if wanted(&ev, &principal, &filters) {
                                let out = sse_event(&ev);
                                return Some((Ok(out), (phase, principal, filters, guard)));
                            }
                        }
                        None => phase = Phase::Live(rx),
                    },
                    Phase::Live(mut rx) => match rx.recv().await {
                        Ok(ev) => {
                            phase = Phase::Live(rx);
                            if wanted(&ev, &principal, &filters) {
                                let out = sse_event(&ev);
                                return Some((Ok(out), (phase, principal, filters, guard)));
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            metrics::counter!("zentoria_event_subscribers_dropped_total", "transport" => "sse").increment(1);
                            let out = SseEvent::default().event("error").data(
                                serde_json::json!({"type": "error", "data": {
                                    "code": "slow_consumer",
                                    "message": format!("this stream fell {n} events behind and was closed; reconnect with Last-Event-ID"),
                                }})
                                .to_string(),
                            );
                            return Some((Ok(out), (Phase::Done, principal, filters, guard)));
                        }
                        Err(RecvError::Closed) => return None,
                    },
                }
            }
        },
    );
    let head = stream::iter(first.map(Ok));
    Sse::new(futures_util::StreamExt::chain(head, events)).keep_alive(KeepAlive::default())
}

fn sse_event(ev: &Event) -> SseEvent {
    SseEvent::default()
        .id(ev.id.to_string())
        .event(&ev.name)
        .data(ev.message())
}

/// Decrements the subscriber gauge when a stream ends, however it ends.
struct Gauge(&'static str);

impl Drop for Gauge {
    fn drop(&mut self) {
        metrics::gauge!("zentoria_event_subscribers", "transport" => self.0).decrement(1.0);
    }
}

/// The same events over a WebSocket, as text messages `{"type", "id", "at", "data"}`. The
/// client may also chat on it: it sends `{"type": "chat", "id"?, "message", "session_id"?,
/// "model"?, "knowledge"?, "collection"?, …}` (the body of `POST /api/v1/chat`) and receives
/// `chat.start`, `chat.delta`…, then `chat.done` or `chat.error`, each `{"type", "id", "data"}`
/// with the `id` it sent.
#[utoipa::path(get, path = "/ws", tag = "events", params(EventsQuery),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 101, description = "Switching to the WebSocket protocol"), (status = 401, body = ErrorBody)))]
pub async fn ws(
    State(state): State<AppState>,
    auth: Authed,
    Client(client): Client,
    Query(q): Query<EventsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let filters = filters(&q);
    let principal = auth.principal.clone();
    let rx = state.events.subscribe();
    let chat = state.chat.clone();
    upgrade.on_upgrade(move |socket| websocket(socket, rx, principal, filters, chat, client))
}

/// Chat messages a socket may have in flight at once.
const CHATS_PER_SOCKET: usize = 4;

async fn websocket(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<Arc<Event>>,
    principal: Arc<Principal>,
    filters: Vec<String>,
    chat: zentoria_ai::Chat,
    client: ClientInfo,
) {
    // Chat answers reach the socket through here; their tasks end with the socket.
    let (answers_tx, mut answers) = tokio::sync::mpsc::channel::<String>(256);
    let mut chats = tokio::task::JoinSet::new();
    metrics::gauge!("zentoria_event_subscribers", "transport" => "ws").increment(1.0);
    let _guard = Gauge("ws");
    let close = |code: u16, reason: String| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                // Clients may ping or send nothing; text is a request; a close ends it.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(Message::Text(text))) => {
                    while chats.try_join_next().is_some() {}
                    if chats.len() >= CHATS_PER_SOCKET {
                        let _ = answers_tx.try_send(ws_error(None, &Error::RateLimited { retry_after_secs: 1 }));
                        continue;
                    }
                    match parse_request(&text) {
                        Ok((id, req)) => {
                            chats.spawn(ws_chat(chat.clone(), principal.clone(), client.clone(), id, req, answers_tx.clone()));
                        }
                        Err(e) => { let _ = answers_tx.try_send(ws_error(None, &e)); }
                    }
                }
                Some(Ok(_)) => {}
            },
            Some(out) = answers.recv() => {
                let send = socket.send(Message::Text(out.into()));
                match tokio::time::timeout(SEND_TIMEOUT, send).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            },
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if !wanted(&ev, &principal, &filters) {
                        continue;
                    }
                    let send = socket.send(Message::Text(ev.message().into()));
                    match tokio::time::timeout(SEND_TIMEOUT, send).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return,
                        Err(_) => {
                            metrics::counter!("zentoria_event_subscribers_dropped_total", "transport" => "ws").increment(1);
                            return;
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    metrics::counter!("zentoria_event_subscribers_dropped_total", "transport" => "ws").increment(1);
                    let _ = socket
                        .send(close(4008, format!("slow consumer: fell {n} events behind; reconnect")))
                        .await;
                    return;
                }
                Err(RecvError::Closed) => {
                    let _ = socket.send(close(1001, "server shutting down".into())).await;
                    return;
                }
            }
        }
    }
}

/// A text message from the client: `{"type": "chat", "id"?, …DirectChat}`.
fn parse_request(text: &str) -> Result<(Option<String>, zentoria_ai::chat::DirectChat), Error> {
    let mut v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("a WebSocket message must be JSON: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::invalid("a WebSocket message must be a JSON object"))?;
    match obj.remove("type").as_ref().and_then(|t| t.as_str()) {
        Some("chat") => {}
        other => {
            return Err(Error::invalid(format!(
                "unknown message type {other:?}; send {{\"type\": \"chat\", \"message\": …}}"
            )));
        }
    }
    let id = obj.remove("id").and_then(|i| i.as_str().map(str::to_owned));
    obj.remove("stream");
    let req = serde_json::from_value(v)
        .map_err(|e| Error::invalid(format!("not a chat request: {e}")))?;
    Ok((id, req))
}

fn ws_message(kind: &str, id: Option<&str>, data: serde_json::Value) -> String {
    serde_json::json!({"type": kind, "id": id, "data": data}).to_string()
}

fn ws_error(id: Option<&str>, e: &Error) -> String {
    ws_chat_event(id, &zentoria_ai::chat::ChatEvent::error(e))
}

fn ws_chat_event(id: Option<&str>, ev: &zentoria_ai::chat::ChatEvent) -> String {
    let data = serde_json::to_value(ev).unwrap_or_default();
    ws_message(&format!("chat.{}", ev.name()), id, data)
}

/// One chat turn, streamed to the socket as `chat.*` messages.
async fn ws_chat(
    chat: zentoria_ai::Chat,
    principal: Arc<Principal>,
    client: ClientInfo,
    id: Option<String>,
    req: zentoria_ai::chat::DirectChat,
    out: tokio::sync::mpsc::Sender<String>,
) {
    use futures_util::StreamExt;
    let id = id.as_deref();
    let events = match chat.direct(&principal, &client, req).await {
        Ok(turn) => chat.answer_stream(&principal, turn).await,
        Err(e) => Err(e),
    };
    let mut events = match events {
        Ok(events) => events,
        Err(e) => {
            let _ = out.send(ws_error(id, &e)).await;
            return;
        }
    };
    while let Some(ev) = events.next().await {
        if out.send(ws_chat_event(id, &ev)).await.is_err() {
            return;
        }
    }
}
