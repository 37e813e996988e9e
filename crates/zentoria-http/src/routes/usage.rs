//! What the caller (or, for admins, everyone) spent on models.

use axum::Json;
use axum::extract::{Query, State};
use zentoria_ai::usage::{UsageQuery, UsageReport};
use zentoria_core::Error;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Authed;

/// Requests and tokens per user, API key and model (totals, and per UTC day), from the
/// gateway and chat alike.
#[utoipa::path(get, path = "/api/v1/usage", tag = "gateway",
    params(UsageQuery),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = UsageReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn usage(
    State(state): State<AppState>,
    auth: Authed,
    Query(q): Query<UsageQuery>,
) -> ApiResult<Json<UsageReport>> {
    let log = state
        .ai
        .usage()
        .ok_or_else(|| Error::Unavailable("usage accounting is not running".into()))?;
    Ok(Json(log.report(&auth, &q).await?))
}
