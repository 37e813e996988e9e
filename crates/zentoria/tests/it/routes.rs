//! Every route in the OpenAPI document is either on the short public list or refuses a
//! request without credentials (401) and one whose key lacks the declared scope (403).

use serde_json::Value;
use zentoria_core::{Role, Scope};

use crate::harness::{TestServer, assert_error};

const PUBLIC: &[&str] = &[
    "GET /health",
    "GET /health/ready",
    "GET /metrics",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/register",
];

fn concrete(path: &str) -> String {
    // Any id-shaped value will do: the request must be refused before it is looked up.
    let re = regex::Regex::new(r"\{[^}]+\}").unwrap();
    re.replace_all(path, "0192a6b0-0000-7000-8000-000000000000")
        .into_owned()
}

#[tokio::test]
async fn every_route_needs_credentials_and_its_scope() {
    let s = TestServer::start().await;
    let doc: Value = s
        .http
        .get(s.at("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_user = s.user("sam", Role::Admin).await;
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            let security = op.get("security").and_then(Value::as_array);
            let Some(security) = security.filter(|s| !s.is_empty()) else {
                assert!(
                    PUBLIC.contains(&name.as_str()),
                    "{name} is public but not on the public list"
                );
                continue;
            };
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let url = s.at(&concrete(path));

            let r = s.http.request(method.clone(), &url).send().await.unwrap();
            assert_eq!(r.status(), 401, "{name} without credentials");
            assert_error(r, 401, "unauthenticated").await;

            let required: Vec<String> = security[0]
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            if let Some(required) = required.first() {
                // A key with every scope but the required one (and never admin).
                let others: Vec<&str> = Scope::ALL
                    .iter()
                    .filter(|sc| sc.as_str() != required && **sc != Scope::Admin)
                    .map(|sc| sc.as_str())
                    .collect();
                let key = s.key_for(&admin_user, &others.join(",")).await;
                let r = s
                    .http
                    .request(method.clone(), &url)
                    .header("X-API-Key", &key)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 403, "{name} with a key lacking {required}");
                assert_error(r, 403, "forbidden").await;
            }
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} protected routes were found");
    for public in PUBLIC {
        let (method, path) = public.split_once(' ').unwrap();
        assert!(
            doc["paths"][path][method.to_lowercase()].is_object(),
            "{public} is missing from the document"
        );
    }
}

#[tokio::test]
async fn metrics_can_require_credentials() {
    let s = TestServer::start_with(|c| c.http.metrics_require_auth = true).await;
    let r = s.http.get(s.at("/metrics")).send().await.unwrap();
    assert_error(r, 401, "unauthenticated").await;
    let alice = s.user("alice", Role::User).await;
    let key = s.key_for(&alice, "chat").await;
    let r = s.get("/metrics", Some(&key)).await;
    assert_error(r, 403, "forbidden").await;
    let r = s.get("/metrics", Some(&s.admin_key)).await;
    assert_eq!(r.status(), 200);
}
