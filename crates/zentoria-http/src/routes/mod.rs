//! Routes by domain. Each module exposes its handlers; [`router`] assembles them with their
//! OpenAPI descriptions.

mod audit;
mod auth;
mod events;
mod health;
mod jobs;
mod keys;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::openapi::ApiDoc;

/// The request/response routes, the streaming routes, and the OpenAPI document of both.
pub(crate) fn routers() -> (
    axum::Router<AppState>,
    axum::Router<AppState>,
    utoipa::openapi::OpenApi,
) {
    let (api, mut doc) = router().split_for_parts();
    let (streams, streams_doc) = OpenApiRouter::new()
        .routes(routes!(events::sse))
        .routes(routes!(events::ws))
        .split_for_parts();
    doc.merge(streams_doc);
    (api, streams, doc)
}

fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::register))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(keys::mcp_create_key))
        .routes(routes!(audit::list))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
}
