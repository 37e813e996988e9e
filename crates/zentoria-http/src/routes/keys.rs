use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use zentoria_platform::{ApiKeyInfo, CreatedKey, NewKeyRequest};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Authed, Client, scope};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Every user's keys (admin only).
    #[serde(default)]
    all: bool,
}

/// Lists the caller's API keys (never their secrets).
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", params(ListQuery),
    security(("api_key" = ["keys:manage"]), ("bearer" = ["keys:manage"])),
    responses((status = 200, body = Vec<ApiKeyInfo>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Authed<scope::KeysManage>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<ApiKeyInfo>>> {
    Ok(Json(state.platform.list_keys(&auth, q.all).await?))
}

/// Creates an API key for the caller. The key is in the answer and never shown again; it
/// cannot carry a scope the caller lacks.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = NewKeyRequest,
    security(("api_key" = ["keys:manage"]), ("bearer" = ["keys:manage"])),
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Authed<scope::KeysManage>,
    Client(client): Client,
    Json(req): Json<NewKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let owner = state.platform.user_by_id(&auth.user_id).await?;
    let created = state
        .platform
        .create_key(&owner, auth.scopes, req, Some(auth.actor()), &client)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The seeds' key-creation route: the same as `POST /api/v1/keys`.
#[utoipa::path(post, path = "/api/v1/mcp/create-key", tag = "keys", request_body = NewKeyRequest,
    security(("api_key" = ["keys:manage"]), ("bearer" = ["keys:manage"])),
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn mcp_create_key(
    state: State<AppState>,
    auth: Authed<scope::KeysManage>,
    client: Client,
    req: Json<NewKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    create(state, auth, client, req).await
}

/// Revokes a key at once. Callers revoke their own keys; an admin any key.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    security(("api_key" = ["keys:manage"]), ("bearer" = ["keys:manage"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Authed<scope::KeysManage>,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.platform.revoke_key(Some(&auth), &id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
