use serde_json::{Value, json};
use zentoria_core::Role;

use crate::harness::{TestServer, assert_error};

async fn create(s: &TestServer, key: &str, body: Value, path: &str) -> reqwest::Response {
    s.post(path, Some(key), &body).await
}

async fn me_status(s: &TestServer, key: &str) -> u16 {
    s.get("/api/v1/auth/me", Some(key)).await.status().as_u16()
}

#[tokio::test]
async fn keys_are_shown_once_hashed_and_work_in_both_headers() {
    let s = TestServer::start().await;
    let r = create(
        &s,
        &s.admin_key,
        json!({"name": "ci", "scopes": ["chat", "files:read"]}),
        "/api/v1/keys",
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let re = regex::Regex::new(r"^znt_live_sk_[0-9A-Za-z]{43}$").unwrap();
    assert!(re.is_match(&key), "{key}");
    assert_eq!(created["scopes"], json!(["files:read", "chat"]));
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    // Accepted as X-API-Key and as a bearer token.
    assert_eq!(me_status(&s, &key).await, 200);
    let r = s
        .http
        .get(s.at("/api/v1/auth/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["via"]["kind"], "api_key");
    assert_eq!(me["scopes"], json!(["files:read", "chat"]));

    // Listed without the secret; the database holds only a digest.
    let list: Value = s
        .get("/api/v1/keys", Some(&s.admin_key))
        .await
        .json()
        .await
        .unwrap();
    let text = list.to_string();
    assert!(!text.contains(&key));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == created["id"])
    );
    let stored: String = zentoria_store::on_db!(&s.db, pool =>
        sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = $1")
            .bind(created["id"].as_str().unwrap())
            .fetch_one(pool)
            .await)
    .unwrap();
    assert_eq!(stored, zentoria_core::crypto::sha256_hex(key.as_bytes()));
}

#[tokio::test]
async fn revocation_takes_effect_at_once() {
    let s = TestServer::start().await;
    let created: Value = create(
        &s,
        &s.admin_key,
        json!({"name": "short-lived", "scopes": ["chat"]}),
        "/api/v1/keys",
    )
    .await
    .json()
    .await
    .unwrap();
    let key = created["key"].as_str().unwrap();
    // Warm the cache, then revoke.
    assert_eq!(me_status(&s, key).await, 200);
    let r = s
        .http
        .delete(s.at(&format!("/api/v1/keys/{}", created["id"].as_str().unwrap())))
        .header("X-API-Key", &s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me_status(&s, key).await, 401);
    // Unknown and malformed ids are 404.
    let r = s
        .http
        .delete(s.at("/api/v1/keys/not-an-id"))
        .header("X-API-Key", &s.admin_key)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn a_key_never_gets_a_scope_its_creator_lacks() {
    let s = TestServer::start().await;
    let alice = s.user("alice", Role::User).await;
    let limited = s.key_for(&alice, "keys:manage").await;
    // A key holding only keys:manage cannot mint a chat key.
    let r = create(
        &s,
        &limited,
        json!({"name": "x", "scopes": ["chat"]}),
        "/api/v1/keys",
    )
    .await;
    assert_error(r, 403, "forbidden").await;
    // It can mint what it holds.
    let r = create(
        &s,
        &limited,
        json!({"name": "x", "scopes": ["keys:manage"]}),
        "/api/v1/keys",
    )
    .await;
    assert_eq!(r.status(), 201);
    // A user session cannot mint admin or audit keys.
    let t = s.tokens("alice", "password-alice").await;
    let r = s
        .http
        .post(s.at("/api/v1/keys"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .json(&json!({"name": "x", "scopes": ["audit:read"]}))
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;
    // Unknown scopes and empty names are bad requests.
    let r = create(
        &s,
        &s.admin_key,
        json!({"name": "x", "scopes": ["root"]}),
        "/api/v1/keys",
    )
    .await;
    assert_error(r, 422, "invalid_request").await;
    let r = create(
        &s,
        &s.admin_key,
        json!({"name": " ", "scopes": ["chat"]}),
        "/api/v1/keys",
    )
    .await;
    assert_error(r, 400, "invalid_request").await;
    let r = create(
        &s,
        &s.admin_key,
        json!({"name": "x", "scopes": []}),
        "/api/v1/keys",
    )
    .await;
    assert_error(r, 400, "invalid_request").await;
}

#[tokio::test]
async fn users_see_and_revoke_only_their_own_keys() {
    let s = TestServer::start().await;
    let alice = s.user("alice", Role::User).await;
    let bob = s.user("bob", Role::User).await;
    let alice_key = s.key_for(&alice, "keys:manage,chat").await;
    let bob_key = s.key_for(&bob, "keys:manage").await;
    let bobs: Value = s
        .get("/api/v1/keys", Some(&bob_key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bobs.as_array().unwrap().len(), 1);
    let bob_key_id = bobs[0]["id"].as_str().unwrap().to_owned();
    // Alice cannot see or revoke Bob's key.
    let r = s
        .http
        .delete(s.at(&format!("/api/v1/keys/{bob_key_id}")))
        .header("X-API-Key", &alice_key)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    let r = s.get("/api/v1/keys?all=true", Some(&alice_key)).await;
    assert_error(r, 403, "forbidden").await;
    // The admin sees everyone's.
    let all: Value = s
        .get("/api/v1/keys?all=true", Some(&s.admin_key))
        .await
        .json()
        .await
        .unwrap();
    assert!(all.as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn seed_create_key_route_and_expiry() {
    let s = TestServer::start().await;
    let r = create(
        &s,
        &s.admin_key,
        json!({"name": "seed", "scopes": ["mcp"], "expires_in": "1s"}),
        "/api/v1/mcp/create-key",
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert!(created["expires_at"].is_string());
    let key = created["key"].as_str().unwrap();
    assert_eq!(me_status(&s, key).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(me_status(&s, key).await, 401);
    let r = create(
        &s,
        &s.admin_key,
        json!({"name": "bad", "scopes": ["mcp"], "expires_in": "whenever"}),
        "/api/v1/keys",
    )
    .await;
    assert_error(r, 400, "invalid_request").await;
}
