//! The OpenAPI 3.1 document, generated from the handlers' annotations, and Swagger UI served
//! from files compiled into the binary (no network needed).

use std::sync::Arc;

use axum::Router;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Zentoria API",
        description = "The self-hosted AI control plane. Authenticate with an API key in \
                       `X-API-Key` (or `Authorization: Bearer`), or with an access token from \
                       `POST /api/v1/auth/login`. Every error has the shape \
                       `{\"error\": {\"code\", \"message\", \"request_id\"}}`.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(crate::error::ErrorBody)),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "auth", description = "Logins, sessions and the current principal"),
        (name = "keys", description = "API keys and their scopes"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "jobs", description = "The durable job queue"),
        (name = "events", description = "Live domain events over SSE and WebSocket"),
        (name = "files", description = "Files, collections, ingestion and search with citations"),
        (name = "gateway", description = "The OpenAI-compatible API: models of every configured provider, chat completions"),
        (name = "chat", description = "Chat sessions with persisted history, streamed answers and answers from your documents with citations"),
    )
)]
pub(crate) struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key, znt_live_sk_…",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token (JWT) or an API key"))
                    .build(),
            ),
        );
    }
}

/// The document as served at `/api/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    crate::routes::routers().2
}

pub(crate) fn docs_router(doc: Arc<utoipa::openapi::OpenApi>) -> Router<AppState> {
    let json = serde_json::to_vec_pretty(&*doc).expect("the OpenAPI document serialises");
    let json = axum::body::Bytes::from(json);
    Router::new()
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let json = json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        json,
                    )
                }
            }),
        )
        .merge(
            SwaggerUi::new("/api/docs")
                .config(utoipa_swagger_ui::Config::from("/api/openapi.json")),
        )
}
