use serde_json::{Value, json};
use zentoria_core::Role;

use crate::harness::{ADMIN, ADMIN_PASSWORD, TestServer, assert_error};

async fn audit(s: &TestServer, query: &str) -> Value {
    let r = s
        .get(&format!("/api/v1/audit{query}"), Some(&s.admin_key))
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn security_actions_are_recorded_with_context() {
    let s = TestServer::start().await;
    let ua = "zentoria-test/1.0";
    let t = s.tokens(ADMIN, ADMIN_PASSWORD).await;
    let r = s
        .http
        .post(s.at("/api/v1/auth/login"))
        .header("user-agent", ua)
        .json(&json!({"username": ADMIN, "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let created: Value = s
        .http
        .post(s.at("/api/v1/keys"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .json(&json!({"name": "audited", "scopes": ["chat"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key_id = created["id"].as_str().unwrap();
    let r = s
        .http
        .delete(s.at(&format!("/api/v1/keys/{key_id}")))
        .header("X-API-Key", &s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let alice = s.user("alice", Role::User).await;
    let alice_key = s.key_for(&alice, "chat").await;
    let r = s.get("/api/v1/audit", Some(&alice_key)).await;
    assert_error(r, 403, "forbidden").await;
    let r = s
        .http
        .post(s.at("/api/v1/auth/logout"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let failed = audit(&s, "?action=auth.login&outcome=failure").await;
    let entry = &failed["entries"][0];
    assert_eq!(entry["actor"], ADMIN);
    assert_eq!(entry["client_ip"], "127.0.0.1");
    assert_eq!(entry["user_agent"], ua);
    assert_eq!(entry["details"]["reason"], "wrong password");
    assert!(entry["request_id"].is_string());
    assert!(entry["at"].as_str().unwrap().ends_with('Z'));

    let all = audit(&s, "?limit=500").await;
    let actions: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "auth.login",
        "key.created",
        "key.revoked",
        "access.denied",
        "auth.logout",
        "user.created",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let denied = audit(&s, "?action=access.denied").await;
    assert_eq!(
        denied["entries"][0]["details"]["required_scope"],
        "audit:read"
    );
    assert_eq!(denied["entries"][0]["outcome"], "denied");
    let revoked = audit(&s, &format!("?resource_id={key_id}&action=key.revoked")).await;
    assert_eq!(revoked["entries"].as_array().unwrap().len(), 1);

    // Details are ciphertext at rest.
    let raw: Vec<Vec<u8>> = zentoria_store::on_db!(&s.db, pool =>
        sqlx::query_scalar("SELECT details FROM audit_log WHERE details IS NOT NULL")
            .fetch_all(pool)
            .await)
    .unwrap();
    assert!(!raw.is_empty());
    for d in raw {
        assert!(!String::from_utf8_lossy(&d).contains("wrong password"));
    }
}

#[tokio::test]
async fn paging_walks_back_through_the_log() {
    let s = TestServer::start().await;
    for _ in 0..5 {
        let _ = s.login(ADMIN, "wrong-password").await;
    }
    let first = audit(&s, "?limit=2").await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_i64().unwrap();
    let second = audit(&s, &format!("?limit=2&cursor={cursor}")).await;
    let a = first["entries"][1]["seq"].as_i64().unwrap();
    let b = second["entries"][0]["seq"].as_i64().unwrap();
    assert!(b < a, "pages go back in time");
    let r = s
        .get("/api/v1/audit?since=yesterday", Some(&s.admin_key))
        .await;
    assert_error(r, 400, "invalid_request").await;
    let none = audit(&s, "?since=2999-01-01T00:00:00Z").await;
    assert!(none["entries"].as_array().unwrap().is_empty());
    assert!(none["next_cursor"].is_null());
}

#[tokio::test]
async fn the_chain_detects_changed_and_removed_entries() {
    let s = TestServer::start().await;
    for _ in 0..3 {
        let _ = s.login(ADMIN, "wrong-password").await;
    }
    let audit_log = s.platform.audit();
    audit_log.flush().await;
    let report = audit_log.verify().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.entries >= 5);

    // Change one entry's outcome.
    zentoria_store::on_db!(&s.db, pool =>
        sqlx::query("UPDATE audit_log SET outcome = 'success' WHERE seq = 3").execute(pool).await.map(|_| ()))
    .unwrap();
    let report = audit_log.verify().await.unwrap();
    assert!(!report.ok);
    assert!(report.problem.unwrap().contains("entry 3 was changed"));
    s.stop().await;
}

#[tokio::test]
async fn the_chain_detects_a_removed_entry_and_a_cut_tail() {
    let s = TestServer::start().await;
    for _ in 0..4 {
        let _ = s.login(ADMIN, "wrong-password").await;
    }
    let audit_log = s.platform.audit();
    audit_log.flush().await;
    let (last,): (i64,) = zentoria_store::on_db!(&s.db, pool =>
        sqlx::query_as("SELECT MAX(seq) FROM audit_log").fetch_one(pool).await)
    .unwrap();
    zentoria_store::on_db!(&s.db, pool =>
        sqlx::query("DELETE FROM audit_log WHERE seq = $1").bind(last).execute(pool).await.map(|_| ()))
    .unwrap();
    let report = audit_log.verify().await.unwrap();
    assert!(!report.ok);
    assert!(report.problem.unwrap().contains("removed"));

    zentoria_store::on_db!(&s.db, pool =>
        sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(pool).await.map(|_| ()))
    .unwrap();
    let report = audit_log.verify().await.unwrap();
    assert!(report.problem.unwrap().contains("entry 2 is missing"));
}
