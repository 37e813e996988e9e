use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use zentoria_core::Error;
use zentoria_platform::Principal;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    status: &'static str,
    version: &'static str,
    database: &'static str,
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Ready), (status = 503, body = crate::error::ErrorBody)))]
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Ready>> {
    state.db.ping().await?;
    Ok(Json(Ready {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        database: match state.db.backend() {
            zentoria_store::Backend::Sqlite => "sqlite",
            zentoria_store::Backend::Postgres => "postgres",
        },
    }))
}

/// Prometheus metrics in the text exposition format. Public unless
/// `http.metrics_require_auth` is set, in which case the `admin` scope is needed.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(
    State(state): State<AppState>,
    principal: Option<axum::Extension<std::sync::Arc<Principal>>>,
) -> Response {
    if state.settings.metrics_require_auth {
        let allowed = principal
            .as_ref()
            .map(|p| p.require(zentoria_core::Scope::Admin));
        match allowed {
            None => {
                return ApiError(Error::unauthenticated(
                    "metrics require credentials with the admin scope",
                ))
                .into_response();
            }
            Some(Err(e)) => return ApiError(e).into_response(),
            Some(Ok(())) => {}
        }
    }
    let pool = state.db.pool_stats();
    metrics::gauge!("zentoria_db_pool_connections", "state" => "idle").set(pool.idle as f64);
    metrics::gauge!("zentoria_db_pool_connections", "state" => "in_use")
        .set(pool.size.saturating_sub(pool.idle) as f64);
    metrics::gauge!("zentoria_db_pool_max_connections").set(pool.max as f64);
    state.metrics.run_upkeep();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
