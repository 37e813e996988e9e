//! Chat sessions and answers: whole as JSON, or streamed as server-sent events when the body
//! says `"stream": true` or the client sends `Accept: text/event-stream`.

use std::convert::Infallible;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use zentoria_ai::chat::{
    ChatEvent, DirectChat, NewSession, Reply, SendMessage, SessionList, SessionPage, SessionPatch,
    SessionView, SessionWithMessages, Turn,
};
use zentoria_ai::command::{CommandReply, CommandRequest};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Authed, Client, json_body, scope, wants_event_stream};

/// A question with its options; generous for pasted text, bounded all the same.
const MAX_BODY: usize = 1024 * 1024;

/// Starts a chat session.
#[utoipa::path(post, path = "/api/v1/chat/sessions", tag = "chat",
    request_body = NewSession,
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 201, body = SessionView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_session(
    State(state): State<AppState>,
    auth: Authed<scope::Chat>,
    Json(req): Json<NewSession>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    let s = state.chat.create_session(&auth, req).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// The caller's chat sessions, most recently active first.
#[utoipa::path(get, path = "/api/v1/chat/sessions", tag = "chat",
    params(SessionPage),
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn sessions(
    State(state): State<AppState>,
    auth: Authed<scope::Chat>,
    Query(page): Query<SessionPage>,
) -> ApiResult<Json<SessionList>> {
    Ok(Json(state.chat.sessions(&auth, &page).await?))
}

/// A session with all its messages.
#[utoipa::path(get, path = "/api/v1/chat/sessions/{id}", tag = "chat",
    params(("id" = String, Path, description = "The session's id")),
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 200, body = SessionWithMessages), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn session(
    State(state): State<AppState>,
    auth: Authed<scope::Chat>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionWithMessages>> {
    Ok(Json(state.chat.session(&auth, &id).await?))
}

/// Renames a session or changes its model, system prompt or knowledge settings.
#[utoipa::path(patch, path = "/api/v1/chat/sessions/{id}", tag = "chat",
    params(("id" = String, Path, description = "The session's id")),
    request_body = SessionPatch,
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 200, body = SessionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_session(
    State(state): State<AppState>,
    auth: Authed<scope::Chat>,
    Path(id): Path<String>,
    Json(patch): Json<SessionPatch>,
) -> ApiResult<Json<SessionView>> {
    Ok(Json(state.chat.update_session(&auth, &id, patch).await?))
}

/// Deletes a session and its messages.
#[utoipa::path(delete, path = "/api/v1/chat/sessions/{id}", tag = "chat",
    params(("id" = String, Path, description = "The session's id")),
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_session(
    State(state): State<AppState>,
    auth: Authed<scope::Chat>,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.chat.delete_session(&auth, &client, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Asks a question in a session. With `knowledge` (or a collection) the answer comes from the
/// caller's documents, citing them as [1], [2], …; when nothing relevant is found it says so.
#[utoipa::path(post, path = "/api/v1/chat/sessions/{id}/messages", tag = "chat",
    params(("id" = String, Path, description = "The session's id")),
    request_body = SendMessage,
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 200, body = Reply, description = "The answer; with streaming, `text/event-stream` of `start`, `reasoning`… (a reasoning model's thoughts), `delta`…, `done` or `error` events (ChatEvent)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    auth: Authed<scope::Chat>,
    Client(client): Client,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: SendMessage = json_body(body, MAX_BODY).await?;
    let stream = req.stream.unwrap_or(false) || wants_event_stream(&headers);
    let turn = state.chat.prepare(&auth, &client, &id, req).await?;
    respond(&state, &auth, turn, stream).await
}

/// The seeds' direct chat: one question, answered in a new session (or in `session_id`'s).
#[utoipa::path(post, path = "/api/v1/chat", tag = "chat",
    request_body = DirectChat,
    security(("api_key" = ["chat"]), ("bearer" = ["chat"])),
    responses((status = 200, body = Reply, description = "The answer; with streaming, `text/event-stream` of ChatEvent"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn direct(
    State(state): State<AppState>,
    auth: Authed<scope::Chat>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: DirectChat = json_body(body, MAX_BODY).await?;
    let stream = req.stream.unwrap_or(false) || wants_event_stream(&headers);
    let turn = state.chat.direct(&auth, &client, req).await?;
    respond(&state, &auth, turn, stream).await
}

async fn respond(
    state: &AppState,
    auth: &Authed<scope::Chat>,
    turn: Turn,
    stream: bool,
) -> ApiResult<Response> {
    if !stream {
        return Ok(Json(state.chat.answer(auth, turn).await?).into_response());
    }
    let events = state
        .chat
        .answer_stream(auth, turn)
        .await?
        .map(|ev: ChatEvent| {
            let data = serde_json::to_string(&ev).unwrap_or_else(|_| "{}".into());
            Ok::<_, Infallible>(SseEvent::default().event(ev.name()).data(data))
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The seeds' AI command: a command in words, carried out by the model with the tools the
/// caller's scopes allow (search, files, keys), each run as the caller and audited.
#[utoipa::path(post, path = "/api/v1/mcp/command", tag = "chat",
    request_body = CommandRequest,
    security(("api_key" = ["ai:command"]), ("bearer" = ["ai:command"])),
    responses((status = 200, body = CommandReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn command(
    State(state): State<AppState>,
    auth: Authed<scope::AiCommand>,
    Client(client): Client,
    body: Body,
) -> ApiResult<Json<CommandReply>> {
    let req: CommandRequest = json_body(body, MAX_BODY).await?;
    Ok(Json(state.commands.run(&auth, &client, req).await?))
}
