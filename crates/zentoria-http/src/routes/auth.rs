use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use zentoria_platform::{Principal, TokenPair, User};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Authed, Client};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct LogoutRequest {
    /// End the session this refresh token belongs to, instead of the access token's.
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Signs in with a username and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair),
              (status = 401, body = ErrorBody, description = "Wrong username or password"),
              (status = 429, body = ErrorBody, description = "Too many failed logins")))]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<TokenPair>> {
    Ok(Json(
        state
            .platform
            .login(&req.username, req.password, &client)
            .await?,
    ))
}

/// Exchanges a refresh token for a new pair; the old one stops working. Presenting an
/// already-used refresh token revokes its whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    Ok(Json(
        state.platform.refresh(&req.refresh_token, &client).await?,
    ))
}

/// Creates an account (role `user`) when `auth.allow_registration` is on.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = LoginRequest,
    responses((status = 201, body = User),
              (status = 403, body = ErrorBody, description = "Registration is disabled"),
              (status = 409, body = ErrorBody, description = "The username is taken")))]
pub async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    Json(req): Json<LoginRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = state
        .platform
        .register(&req.username, req.password, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Ends the current session: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body(content = LogoutRequest, description = "Optional"),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    auth: Authed,
    Client(client): Client,
    body: Option<Json<LogoutRequest>>,
) -> ApiResult<StatusCode> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    state
        .platform
        .logout(&auth, req.refresh_token.as_deref(), &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the credential belongs to, and what it may do.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = Principal), (status = 401, body = ErrorBody)))]
pub async fn me(auth: Authed) -> Json<Principal> {
    Json(Principal::clone(&auth.principal))
}
