//! Model providers managed through the API (admins only: they hold shared credentials).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use zentoria_ai::providers::{NewProvider, ProviderPatch, ProviderView};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Authed, Client, scope};

/// Every provider instance: configured in the file or managed here, with its circuit breaker.
/// API keys are never shown.
#[utoipa::path(get, path = "/api/v1/providers", tag = "gateway",
    security(("api_key" = ["admin"]), ("bearer" = ["admin"])),
    responses((status = 200, body = [ProviderView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Authed<scope::Admin>,
) -> ApiResult<Json<Vec<ProviderView>>> {
    Ok(Json(state.ai.providers(&auth)?))
}

/// Adds a provider (or overrides a configured one of the same name); its key is stored
/// encrypted.
#[utoipa::path(post, path = "/api/v1/providers", tag = "gateway",
    request_body = NewProvider,
    security(("api_key" = ["admin"]), ("bearer" = ["admin"])),
    responses((status = 201, body = ProviderView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Authed<scope::Admin>,
    Client(client): Client,
    Json(req): Json<NewProvider>,
) -> ApiResult<(StatusCode, Json<ProviderView>)> {
    let v = state.ai.create_provider(&auth, &client, req).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Changes a managed provider's kind, address or key.
#[utoipa::path(patch, path = "/api/v1/providers/{name}", tag = "gateway",
    params(("name" = String, Path, description = "The provider's name")),
    request_body = ProviderPatch,
    security(("api_key" = ["admin"]), ("bearer" = ["admin"])),
    responses((status = 200, body = ProviderView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Authed<scope::Admin>,
    Client(client): Client,
    Path(name): Path<String>,
    Json(patch): Json<ProviderPatch>,
) -> ApiResult<Json<ProviderView>> {
    Ok(Json(
        state
            .ai
            .update_provider(&auth, &client, &name, patch)
            .await?,
    ))
}

/// Removes a managed provider (a configured one of the same name comes back).
#[utoipa::path(delete, path = "/api/v1/providers/{name}", tag = "gateway",
    params(("name" = String, Path, description = "The provider's name")),
    security(("api_key" = ["admin"]), ("bearer" = ["admin"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Authed<scope::Admin>,
    Client(client): Client,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.ai.delete_provider(&auth, &client, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
