//! AI commands (`POST /api/v1/mcp/command`) against the OpenAI fake, whose answers script
//! tool calls (`tool:NAME {json}`): tools offered by scope, run as the caller, audited, a new
//! key's secret kept from the model, and the round limit.

use serde_json::{Value, json};
use zentoria_core::Role;
use zentoria_core::config::Config;

use crate::harness::{TestServer, assert_error};
use crate::upstream::{FakeUpstream, openai_on};

fn model_on(url: &str) -> impl FnOnce(&mut Config) + use<> {
    let base = openai_on(url);
    move |c: &mut Config| {
        base(c);
        c.ai.command_max_rounds = 3;
    }
}

async fn command(s: &TestServer, key: &str, text: &str) -> reqwest::Response {
    s.post("/api/v1/mcp/command", Some(key), &json!({"command": text}))
        .await
}

fn offered_tools(up: &FakeUpstream) -> Vec<String> {
    let body = up.seen.last_chat.lock().unwrap().clone().unwrap();
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn commands_use_the_tools_the_callers_scopes_allow() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(model_on(&up.url)).await;
    let alice = s.user("alice", Role::User).await;
    let key = s.key_for(&alice, "ai:command,files:read,files:write").await;
    let doc = "# Handbook\n\n## Backups\n\nBackups run nightly and are kept for thirty days.\n";
    let f = s.upload(&key, "handbook.md", doc.as_bytes(), &[]).await;
    let file_id = f["id"].as_str().unwrap().to_owned();
    assert_eq!(s.settled(&key, &file_id).await["status"], "ready");

    let r = command(
        &s,
        &key,
        r#"tool:search_knowledge {"query": "how long are backups kept"}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["finished"], true);
    assert_eq!(v["rounds"], 2);
    assert_eq!(v["model"], "openai/gpt-4o-mini");
    let a = &v["actions"][0];
    assert_eq!(a["tool"], "search_knowledge");
    assert_eq!(a["ok"], true);
    assert_eq!(a["result"]["hits"][0]["file_id"], file_id);
    assert!(v["answer"].as_str().unwrap().starts_with("done: {"), "{v}");
    assert!(v["answer"].as_str().unwrap().contains("thirty days"), "{v}");
    assert!(v["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        offered_tools(&up),
        ["search_knowledge", "list_files", "read_file"],
        "only the tools the key's scopes allow"
    );

    let r = command(
        &s,
        &key,
        &format!(r#"tool:read_file {{"file_id": "{file_id}"}}"#),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    let text = v["actions"][0]["result"]["text"].as_str().unwrap();
    assert!(
        text.contains("Backups run nightly and are kept for thirty days."),
        "{v}"
    );
    assert_eq!(v["actions"][0]["result"]["truncated"], false);

    // A tool the key may not use is refused even when the model names it.
    let r = command(
        &s,
        &key,
        r#"tool:create_api_key {"name": "sneaky", "scopes": ["chat"]}"#,
    )
    .await;
    let v: Value = r.json().await.unwrap();
    let a = &v["actions"][0];
    assert_eq!(a["ok"], false);
    assert_eq!(a["result"]["error"]["code"], "forbidden", "{v}");
    let keys = s.platform.list_keys_of(Some(&alice.id)).await.unwrap();
    assert_eq!(keys.len(), 1, "no key was made");

    // Bad arguments come back to the model as an error, not a failure of the command.
    let r = command(&s, &key, r#"tool:read_file {"file_id": "nope"}"#).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["actions"][0]["ok"], false);
    assert_eq!(v["actions"][0]["result"]["error"]["code"], "not_found");
    assert!(v["answer"].as_str().unwrap().contains("not_found"));

    // Every tool call is in the audit log.
    let audit: Value = s
        .get(
            "/api/v1/audit?action=ai.tool_call&limit=100",
            Some(&s.admin_key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(audit["entries"].as_array().unwrap().len() >= 4, "{audit}");

    // Without ai:command, no command runs; an empty one is refused.
    let chat_only = s.key_for(&alice, "chat,files:read").await;
    assert_error(
        command(&s, &chat_only, "list my files").await,
        403,
        "forbidden",
    )
    .await;
    assert_error(command(&s, &key, "  ").await, 400, "invalid_request").await;
    s.stop().await;
}

#[tokio::test]
async fn a_new_keys_secret_goes_to_the_caller_never_to_the_model() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(model_on(&up.url)).await;
    let bob = s.user("bob", Role::User).await;
    let key = s.key_for(&bob, "ai:command,keys:manage,chat").await;

    let r = command(
        &s,
        &key,
        r#"tool:create_api_key {"name": "ci", "scopes": ["chat"]}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let a = &v["actions"][0];
    assert_eq!(a["ok"], true, "{v}");
    let secret = a["result"]["key"].as_str().unwrap().to_owned();
    let new_id = a["result"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("znt_live_sk_"));
    let sent = up
        .seen
        .last_chat
        .lock()
        .unwrap()
        .clone()
        .unwrap()
        .to_string();
    assert!(!sent.contains(&secret), "the model never sees the secret");
    assert!(sent.contains("shown to the user only"));
    assert!(!v["answer"].as_str().unwrap().contains(&secret));
    let me = s.get("/api/v1/auth/me", Some(&secret)).await;
    assert_eq!(me.status(), 200, "the new key works");

    // A command cannot grant more than its caller holds.
    let r = command(
        &s,
        &key,
        r#"tool:create_api_key {"name": "root", "scopes": ["admin"]}"#,
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["actions"][0]["result"]["error"]["code"], "forbidden",
        "{v}"
    );

    let r = command(
        &s,
        &key,
        &format!(r#"tool:revoke_api_key {{"key_id": "{new_id}"}}"#),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["actions"][0]["ok"], true, "{v}");
    assert_eq!(s.get("/api/v1/auth/me", Some(&secret)).await.status(), 401);
    s.stop().await;
}

#[tokio::test]
async fn a_command_that_keeps_calling_tools_is_stopped_at_the_round_limit() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(model_on(&up.url)).await;
    let r = command(&s, &s.admin_key, "tool-loop:list_files {}").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["finished"], false);
    assert_eq!(v["rounds"], 3);
    assert_eq!(v["actions"].as_array().unwrap().len(), 3);
    assert!(
        v["answer"]
            .as_str()
            .unwrap()
            .contains("Stopped after 3 rounds")
    );
    s.stop().await;
}
