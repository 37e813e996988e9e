use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use zentoria_core::Error;
use zentoria_platform::audit::AuditEntry;
use zentoria_store::repo::audit::AuditFilter;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Authed, scope};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Exact action, e.g. `auth.login` or `key.created`.
    action: Option<String>,
    actor_id: Option<String>,
    /// `success`, `failure` or `denied`.
    outcome: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    /// RFC 3339; entries at or after this time.
    since: Option<String>,
    /// RFC 3339; entries before this time.
    until: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<i64>,
    /// 1 to 500; default 50.
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<i64>,
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, Error> {
    value
        .map(|v| {
            zentoria_core::time::parse_rfc3339(v).ok_or_else(|| {
                Error::invalid(format!(
                    "{name} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"
                ))
            })
        })
        .transpose()
}

/// The audit log, newest first, with details decrypted.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    security(("api_key" = ["audit:read"]), ("bearer" = ["audit:read"])),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: Authed<scope::AuditRead>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid("limit must be between 1 and 500").into());
    }
    if let Some(o) = &q.outcome
        && !matches!(o.as_str(), "success" | "failure" | "denied")
    {
        return Err(Error::invalid("outcome must be success, failure or denied").into());
    }
    let filter = AuditFilter {
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        action: q.action,
        actor_id: q.actor_id,
        outcome: q.outcome,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        before_seq: q.cursor,
        limit,
    };
    // Read-your-writes: what this process has queued is on disk before we look.
    state.platform.audit().flush().await;
    let entries = state.platform.audit().list(&filter).await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}
