//! Routes by domain. Each module exposes its handlers; [`router`] assembles them with their
//! OpenAPI descriptions.

mod audit;
mod auth;
mod chat;
mod events;
mod files;
pub(crate) mod gateway;
mod health;
mod jobs;
mod keys;
mod providers;
mod usage;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::openapi::ApiDoc;

/// The request/response routes; the long-lived routes (event streams, uploads and downloads,
/// which set their own limits and may outlast the request timeout); and the OpenAPI document
/// of both.
pub(crate) fn routers() -> (
    axum::Router<AppState>,
    axum::Router<AppState>,
    utoipa::openapi::OpenApi,
) {
    let (api, mut doc) = router().split_for_parts();
    let (long, long_doc) = OpenApiRouter::new()
        .routes(routes!(events::sse))
        .routes(routes!(events::ws))
        .routes(routes!(files::upload, files::list))
        .routes(routes!(files::mcp_upload))
        .routes(routes!(files::content))
        .routes(routes!(gateway::chat_completions))
        .routes(routes!(gateway::embeddings))
        .routes(routes!(chat::send))
        .routes(routes!(chat::direct))
        .routes(routes!(chat::command))
        .split_for_parts();
    doc.merge(long_doc);
    (api, long, doc)
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
        .routes(routes!(gateway::models))
        .routes(routes!(gateway::model))
        .route(
            gateway::MODEL_WITH_SLASHES,
            axum::routing::get(gateway::model_with_slashes),
        )
        .routes(routes!(usage::usage))
        .routes(routes!(providers::list, providers::create))
        .routes(routes!(providers::update, providers::delete))
        .routes(routes!(chat::sessions, chat::create_session))
        .routes(routes!(
            chat::session,
            chat::update_session,
            chat::delete_session
        ))
        .routes(routes!(files::mcp_list))
        .routes(routes!(files::get, files::update, files::delete))
        .routes(routes!(files::reindex))
        .routes(routes!(files::collections, files::create_collection))
        .routes(routes!(files::delete_collection))
        .routes(routes!(files::search))
}
