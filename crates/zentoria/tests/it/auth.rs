use serde_json::{Value, json};
use zentoria_core::Role;

use crate::harness::{ADMIN, ADMIN_PASSWORD, TestServer, assert_error};

#[tokio::test]
async fn login_returns_a_token_pair_that_authenticates() {
    let s = TestServer::start().await;
    let t = s.tokens(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 900, "15 minute access tokens by default");
    assert_eq!(t["access_token"].as_str().unwrap().split('.').count(), 3);
    assert!(t["refresh_token"].as_str().unwrap().starts_with("znt_rt_"));

    let me: Value = s
        .http
        .get(s.at("/api/v1/auth/me"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], ADMIN);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["scopes"], json!(["admin"]));
    assert_eq!(me["via"]["kind"], "session");

    // Usernames are case-insensitive.
    assert_eq!(s.login("ADMIN", ADMIN_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn wrong_credentials_get_401_in_the_error_shape() {
    let s = TestServer::start().await;
    let body = assert_error(
        s.login(ADMIN, "not-the-password").await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(body["error"]["message"], "wrong username or password");
    // An unknown user gets the very same answer.
    let body2 = assert_error(
        s.login("nobody", "whatever-123").await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(body2["error"]["message"], body["error"]["message"]);
    // A garbage bearer token is refused outright.
    let r = s
        .http
        .get(s.at("/api/v1/auth/me"))
        .bearer_auth("a.b.c")
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "unauthenticated").await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let s = TestServer::start().await;
    let first = s.tokens(ADMIN, ADMIN_PASSWORD).await;
    let refresh = |rt: Value| {
        let s = &s;
        async move {
            s.http
                .post(s.at("/api/v1/auth/refresh"))
                .json(&json!({ "refresh_token": rt }))
                .send()
                .await
                .unwrap()
        }
    };
    let r = refresh(first["refresh_token"].clone()).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let me = |token: &Value| {
        let s = &s;
        let token = token.as_str().unwrap().to_owned();
        async move {
            s.http
                .get(s.at("/api/v1/auth/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(me(&second["access_token"]).await, 200);

    // The rotated token is presented again: refused, and the family is revoked.
    let reused = refresh(first["refresh_token"].clone()).await;
    let body = assert_error(reused, 401, "unauthenticated").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    // Its descendant no longer works either, nor the access tokens of that login.
    assert_error(
        refresh(second["refresh_token"].clone()).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(me(&second["access_token"]).await, 401);
    assert_eq!(me(&first["access_token"]).await, 401);

    // Another login is unaffected.
    let other = s.tokens(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(me(&other["access_token"]).await, 200);
    // Garbage is refused cleanly.
    assert_error(refresh(json!("znt_rt_nope")).await, 401, "unauthenticated").await;
    assert_error(refresh(json!(42)).await, 422, "invalid_request").await;
}

#[tokio::test]
async fn logout_ends_the_session() {
    let s = TestServer::start().await;
    let t = s.tokens(ADMIN, ADMIN_PASSWORD).await;
    let access = t["access_token"].as_str().unwrap();
    let r = s
        .http
        .post(s.at("/api/v1/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = s
        .http
        .get(s.at("/api/v1/auth/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "unauthenticated").await;
    let r = s
        .http
        .post(s.at("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": t["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "unauthenticated").await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_username_and_address() {
    let s = TestServer::start_with(|c| c.auth.login_failures_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(s.login(ADMIN, "wrong-password").await.status(), 401);
    }
    let r = s.login(ADMIN, ADMIN_PASSWORD).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_error(r, 429, "rate_limited").await;
    // The address is limited too, whatever username it tries next.
    assert_eq!(
        s.login("someone-else", "wrong-password").await.status(),
        429
    );
}

#[tokio::test]
async fn registration_only_when_enabled() {
    let s = TestServer::start().await;
    let body = json!({"username": "newbie", "password": "newbie-password"});
    let r = s.post("/api/v1/auth/register", None, &body).await;
    assert_error(r, 403, "forbidden").await;

    let s = TestServer::start_with(|c| c.auth.allow_registration = true).await;
    let r = s.post("/api/v1/auth/register", None, &body).await;
    assert_eq!(r.status(), 201);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["role"], "user");
    assert!(user.get("password_hash").is_none());
    let r = s.post("/api/v1/auth/register", None, &body).await;
    assert_error(r, 409, "conflict").await;
    let short = json!({"username": "x", "password": "short"});
    let r = s.post("/api/v1/auth/register", None, &short).await;
    assert_error(r, 400, "invalid_request").await;
    assert_eq!(s.login("newbie", "newbie-password").await.status(), 200);
}

#[tokio::test]
async fn viewer_sessions_carry_only_viewer_scopes() {
    let s = TestServer::start().await;
    s.user("vera", Role::Viewer).await;
    let t = s.tokens("vera", "password-vera").await;
    let access = t["access_token"].as_str().unwrap();
    let me: Value = s
        .http
        .get(s.at("/api/v1/auth/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["scopes"], json!(["files:read"]));
    let r = s
        .http
        .get(s.at("/api/v1/keys"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;
}
