//! Extractors that make authentication and authorisation a matter of types: a handler that
//! takes [`Authed<S>`] cannot run without a principal holding scope `S`.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use zentoria_core::Error;
use zentoria_platform::{AuditEvent, ClientInfo, Outcome, Principal};

use crate::AppState;
use crate::error::ApiError;

/// A scope requirement known at compile time.
pub trait ScopeReq: Send + Sync + 'static {
    const SCOPE: Option<zentoria_core::Scope>;
}

/// Scope markers for [`Authed`].
pub mod scope {
    use super::ScopeReq;
    use zentoria_core::Scope;

    macro_rules! markers {
        ($($name:ident => $scope:expr),+ $(,)?) => {$(
            #[derive(Debug)]
            pub struct $name;
            impl ScopeReq for $name {
                const SCOPE: Option<Scope> = $scope;
            }
        )+};
    }

    // `Any` admits every authenticated caller; the others need their scope (or `admin`).
    markers! {
        Any => None,
        Admin => Some(Scope::Admin),
        KeysManage => Some(Scope::KeysManage),
        FilesRead => Some(Scope::FilesRead),
        FilesWrite => Some(Scope::FilesWrite),
        Chat => Some(Scope::Chat),
        AiCommand => Some(Scope::AiCommand),
        Agents => Some(Scope::Agents),
        Workflows => Some(Scope::Workflows),
        Deploy => Some(Scope::Deploy),
        AuditRead => Some(Scope::AuditRead),
        Mcp => Some(Scope::Mcp),
    }
}

/// The authenticated caller, proven to hold scope `S`.
pub struct Authed<S: ScopeReq = scope::Any> {
    pub principal: Arc<Principal>,
    _scope: PhantomData<S>,
}

impl<S: ScopeReq> std::ops::Deref for Authed<S> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<S: ScopeReq> FromRequestParts<AppState> for Authed<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = principal_of(&parts.extensions)?;
        if let Some(scope) = S::SCOPE
            && let Err(e) = principal.require(scope)
        {
            metrics::counter!("zentoria_auth_failures_total", "reason" => "scope").increment(1);
            let client = client_of(parts);
            state
                .platform
                .audit()
                .record(
                    AuditEvent::new("access.denied", Outcome::Denied, &client)
                        .actor(Some(principal.actor()))
                        .resource("route", parts.uri.path())
                        .details(serde_json::json!({
                            "method": parts.method.as_str(),
                            "required_scope": scope.as_str(),
                        })),
                )
                .await;
            return Err(e.into());
        }
        Ok(Authed {
            principal,
            _scope: PhantomData,
        })
    }
}

/// The principal that [`crate::middleware::authenticate`] found, or the refusal of a request
/// that brought no credential.
pub(crate) fn principal_of(
    extensions: &axum::http::Extensions,
) -> Result<Arc<Principal>, ApiError> {
    extensions
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(unauthenticated)
}

/// The refusal of a request that needs a principal and brought no credential.
pub(crate) fn unauthenticated() -> ApiError {
    metrics::counter!("zentoria_auth_failures_total", "reason" => "missing").increment(1);
    Error::unauthenticated(
        "authentication required: send an API key in X-API-Key or a token in Authorization: Bearer",
    )
    .into()
}

/// Where the request came from (address, user agent, request id).
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(client_of(parts)))
    }
}

fn client_of(parts: &Parts) -> ClientInfo {
    parts
        .extensions
        .get::<ClientInfo>()
        .cloned()
        .unwrap_or_default()
}

/// Reads a JSON body of at most `limit` bytes, for routes that live outside the default body
/// limit (streamed answers) and so must bound what they read themselves.
pub async fn json_body<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
) -> Result<T, Error> {
    let bytes = body_bytes(body, limit).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("the body is not a valid request: {e}")))
}

/// A request's whole body, refused with 413 past `limit` bytes.
pub async fn body_bytes(body: axum::body::Body, limit: usize) -> Result<axum::body::Bytes, Error> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        Error::TooLarge(format!(
            "the request body is larger than {} KiB",
            limit / 1024
        ))
    })
}

/// Whether the client asked for server-sent events.
pub fn wants_event_stream(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}
