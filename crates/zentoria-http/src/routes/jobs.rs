use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use zentoria_jobs::{JobView, ListJobs};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Authed, Client};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct JobsQuery {
    /// Only this kind, e.g. `knowledge.ingest`.
    kind: Option<String>,
    /// queued, running, succeeded, failed, dead or cancelled.
    status: Option<String>,
    /// The id of the last job of the previous page.
    cursor: Option<String>,
    /// 1 to 500; default 50.
    limit: Option<i64>,
}

/// Jobs the caller may see (their own, of kinds whose scope they hold; admins see all),
/// newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobsQuery),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = Vec<JobView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Authed,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Json<Vec<JobView>>> {
    let q = ListJobs {
        kind: q.kind,
        status: q.status,
        cursor: q.cursor,
        limit: q.limit.unwrap_or(50),
    };
    Ok(Json(state.jobs.list(Some(&auth), q).await?))
}

/// One job, with its progress and last error.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(state.jobs.get(Some(&auth), &id).await?))
}

/// Cancels a queued job at once; asks a running job to stop (its handler notices within a
/// heartbeat).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Authed,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(state.jobs.cancel(Some(&auth), &id, &client).await?))
}

/// Queues a failed, dead or cancelled job again, with fresh attempts.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    auth: Authed,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(state.jobs.retry(Some(&auth), &id, &client).await?))
}
