use serde_json::{Value, json};

use crate::harness::{ADMIN, ADMIN_PASSWORD, TestServer, assert_error};

#[tokio::test]
async fn health_ready_and_headers() {
    let s = TestServer::start().await;
    let r = s.http.get(s.at("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS over plain HTTP"
    );
    assert!(!h["x-request-id"].is_empty());
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );

    let ready: Value = s
        .http
        .get(s.at("/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ok");
    let backend = if s.test_db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(ready["database"], backend);

    // A sane request id is kept; an unsafe one is replaced.
    let r = s
        .http
        .get(s.at("/health"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-123");
    let r = s
        .http
        .get(s.at("/health"))
        .header("x-request-id", "bad id\t<>")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id\t<>");
}

#[tokio::test]
async fn hsts_when_configured() {
    let s = TestServer::start_with(|c| c.http.hsts = true).await;
    let r = s.http.get(s.at("/health")).send().await.unwrap();
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
}

#[tokio::test]
async fn framework_errors_share_the_json_shape() {
    let s = TestServer::start().await;
    assert_error(
        s.http.get(s.at("/no/such/route")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let r = s.http.delete(s.at("/health")).send().await.unwrap();
    assert_error(r, 405, "method_not_allowed").await;
    let r = s
        .http
        .post(s.at("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "bad_request").await;
    let r = s
        .http
        .post(s.at("/api/v1/auth/login"))
        .body("username=a")
        .send()
        .await
        .unwrap();
    assert_error(r, 415, "unsupported_media_type").await;
    let r = s
        .http
        .post(s.at("/api/v1/auth/login"))
        .json(&json!({"username": "a"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(r, 422, "invalid_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );
    let r = s
        .get("/api/v1/audit?limit=100000", Some(&s.admin_key))
        .await;
    assert_error(r, 400, "invalid_request").await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let s = TestServer::start_with(|c| c.http.body_limit_bytes = 1024).await;
    let big = json!({"username": "a".repeat(4096), "password": "x"});
    let r = s
        .http
        .post(s.at("/api/v1/auth/login"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "payload_too_large").await;
    // Still serving afterwards.
    assert_eq!(s.login(ADMIN, ADMIN_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn rate_limits_per_key_answer_429_with_retry_after() {
    let s = TestServer::start_with(|c| {
        c.http.rate_limit_per_minute = 60;
        c.http.rate_limit_burst = 5;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = s.get("/api/v1/auth/me", Some(&s.admin_key)).await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&retry), "retry-after {retry}");
            assert_error(r, 429, "rate_limited").await;
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let s =
        TestServer::start_with(|c| c.http.cors_origins = vec!["https://app.example".into()]).await;
    let preflight = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, s.at("/api/v1/keys"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "x-api-key")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // An error rewritten into the shared shape keeps its CORS headers, so the page can read it.
    let missing = s
        .http
        .get(s.at("/api/v1/nowhere"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        missing.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(missing.headers()["x-frame-options"], "DENY");
    assert_error(missing, 404, "not_found").await;
}

#[tokio::test]
async fn without_cors_origins_no_cross_origin_access_is_granted() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(s.at("/health"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let preflight = s
        .http
        .request(reqwest::Method::OPTIONS, s.at("/api/v1/keys"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert!(
        preflight
            .headers()
            .get("access-control-allow-methods")
            .is_none()
    );
}

#[tokio::test]
async fn metrics_expose_requests_auth_failures_and_pool() {
    let s = TestServer::start().await;
    let _ = s.http.get(s.at("/api/v1/keys")).send().await.unwrap();
    let _ = s.http.get(s.at("/health")).send().await.unwrap();
    // A made-up method is counted, under one label whatever its name.
    for name in ["BREW", "WHEN"] {
        let method = reqwest::Method::from_bytes(name.as_bytes()).unwrap();
        let r = s
            .http
            .request(method, s.at("/nowhere"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let r = s.http.get(s.at("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("zentoria_http_requests_total{"), "{text}");
    assert!(text.contains("route=\"/api/v1/keys\""));
    assert!(
        text.lines()
            .any(|l| l.starts_with("zentoria_http_requests_total{")
                && l.contains("method=\"OTHER\"")
                && l.contains("route=\"unmatched\"")
                && l.contains("status=\"404\"")),
        "{text}"
    );
    assert!(!text.contains("BREW") && !text.contains("WHEN"), "{text}");
    assert!(text.contains("zentoria_http_request_duration_seconds_bucket"));
    assert!(text.contains("zentoria_auth_failures_total"));
    assert!(text.contains("zentoria_db_pool_connections"));
}

#[tokio::test]
async fn openapi_document_and_offline_docs() {
    let s = TestServer::start().await;
    let r = s.http.get(s.at("/api/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    insta::assert_json_snapshot!("openapi", doc);

    let page = s.http.get(s.at("/api/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"));
    // Every script the page loads is served by us: no CDN.
    let re = regex::Regex::new(r#"src="([^"]+)""#).unwrap();
    for cap in re.captures_iter(&html) {
        let src = &cap[1];
        assert!(!src.starts_with("http"), "external script {src}");
        let r = s
            .http
            .get(s.at(&format!("/api/docs/{}", src.trim_start_matches("./"))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{src}");
    }
}

#[tokio::test]
async fn slow_requests_time_out_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| c.http.request_timeout = "300ms".into()).await;
    // A client that announces a body and never finishes sending it.
    let addr = s.url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 100\r\nconnection: close\r\n\r\n{\"username\":",
    )
    .await
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("\"code\":\"timeout\""), "{response}");
    assert!(response.contains("x-request-id"), "{response}");
}
