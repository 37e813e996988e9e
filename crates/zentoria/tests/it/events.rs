//! Live events over SSE and WebSocket: scope filtering, resumption, slow consumers.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use zentoria_core::{Role, Scope};
use zentoria_events::NewEvent;

use crate::harness::{TestServer, assert_error};

/// Reads Server-Sent Events from a streaming response.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

#[derive(Debug)]
struct SseMsg {
    id: Option<u64>,
    event: String,
    data: Value,
}

impl SseReader {
    async fn open(s: &TestServer, query: &str, key: &str, last_id: Option<u64>) -> SseReader {
        let mut req = s
            .http
            .get(s.at(&format!("/api/v1/events{query}")))
            .header("X-API-Key", key);
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        SseReader {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (skipping keep-alive comments), or `None` when the stream ended.
    async fn next(&mut self) -> Option<SseMsg> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(SseMsg {
                    id,
                    event,
                    data: serde_json::from_str(&data).unwrap(),
                });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("no event within 10 s")
                .unwrap()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn marker(s: &TestServer, n: u32) {
    s.platform
        .events()
        .publish(NewEvent::new("test.marker", None, json!({ "n": n })))
        .await;
}

#[tokio::test]
async fn sse_delivers_only_what_the_caller_may_see() {
    let s = TestServer::start().await;
    let alice = s.user("alice", Role::User).await;
    let bob = s.user("bob", Role::User).await;
    let alice_keys = s.key_for(&alice, "keys:manage").await;
    let alice_files = s.key_for(&alice, "files:read").await;
    let mut mine = SseReader::open(&s, "?events=key.*,test.*", &alice_keys, None).await;
    let mut no_scope = SseReader::open(&s, "", &alice_files, None).await;
    let mut admin = SseReader::open(&s, "?events=key.created", &s.admin_key, None).await;

    // Bob's key is none of Alice's business; hers is.
    s.key_for(&bob, "chat").await;
    let r = s
        .post(
            "/api/v1/keys",
            Some(&alice_keys),
            &json!({"name": "mine", "scopes": ["keys:manage"]}),
        )
        .await;
    let created: Value = r.json().await.unwrap();
    marker(&s, 1).await;

    let ev = mine.next().await.unwrap();
    assert_eq!(ev.event, "key.created");
    assert_eq!(ev.data["type"], "key.created");
    assert_eq!(ev.data["data"]["id"], created["id"]);
    assert!(ev.id.is_some());
    assert_eq!(mine.next().await.unwrap().event, "test.marker");

    // Without keys:manage, only the marker arrives.
    assert_eq!(no_scope.next().await.unwrap().event, "test.marker");
    // The admin sees both keys being created, and nothing its filter excludes.
    assert_eq!(admin.next().await.unwrap().event, "key.created");
    assert_eq!(admin.next().await.unwrap().event, "key.created");
}

#[tokio::test]
async fn sse_resumes_after_last_event_id_and_says_when_it_cannot() {
    let s = TestServer::start_with(|c| c.events.history = 8).await;
    let mut first = SseReader::open(&s, "?events=test.*", &s.admin_key, None).await;
    for n in 1..=3 {
        marker(&s, n).await;
    }
    let a = first.next().await.unwrap();
    assert_eq!(a.data["data"]["n"], 1);
    drop(first);

    // Reconnect after the first: the two missed are replayed, then live ones follow.
    let mut again = SseReader::open(&s, "?events=test.*", &s.admin_key, a.id).await;
    assert_eq!(again.next().await.unwrap().data["data"]["n"], 2);
    assert_eq!(again.next().await.unwrap().data["data"]["n"], 3);
    marker(&s, 4).await;
    assert_eq!(again.next().await.unwrap().data["data"]["n"], 4);

    // Long gone (history keeps 8): the client is told to reload instead of missing events.
    for n in 5..=20 {
        marker(&s, n).await;
    }
    let mut stale = SseReader::open(&s, "?events=test.*", &s.admin_key, a.id).await;
    let reset = stale.next().await.unwrap();
    assert_eq!(reset.event, "reset");
}

#[tokio::test]
async fn slow_sse_consumers_are_cut_off_with_a_reason() {
    let s = TestServer::start_with(|c| c.events.buffer = 16).await;
    let mut slow = SseReader::open(&s, "?events=test.*", &s.admin_key, None).await;
    // Far more than socket buffers and the subscriber's 16 slots can hold, while it reads nothing.
    let bulk = "x".repeat(2048);
    for n in 0..4000 {
        s.platform
            .events()
            .publish(NewEvent::new(
                "test.bulk",
                None,
                json!({ "n": n, "pad": bulk }),
            ))
            .await;
    }
    let mut last = None;
    while let Some(ev) = slow.next().await {
        last = Some(ev);
    }
    let last = last.unwrap();
    assert_eq!(last.event, "error");
    assert_eq!(last.data["data"]["code"], "slow_consumer");
    // Others are unaffected: a new subscriber works.
    let mut fresh = SseReader::open(&s, "?events=test.*", &s.admin_key, None).await;
    marker(&s, 1).await;
    assert_eq!(fresh.next().await.unwrap().event, "test.marker");
}

#[tokio::test]
async fn websocket_streams_events_in_the_seed_format() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let s = TestServer::start().await;
    let url = format!(
        "{}/ws?events=test.*,key.revoked",
        s.url.replace("http://", "ws://")
    );
    // No credentials: refused before the upgrade.
    let err = tokio_tungstenite::connect_async(&url).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }
    let mut req = url.clone().into_client_request().unwrap();
    req.headers_mut()
        .insert("X-API-Key", s.admin_key.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    marker(&s, 7).await;
    s.platform
        .events()
        .publish(NewEvent::new("other.thing", Some(Scope::Chat), json!({})))
        .await;
    let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Text(text) = msg else {
        panic!("expected text, got {msg:?}")
    };
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "test.marker");
    assert_eq!(v["data"], json!({"n": 7}));

    // A browser-style connection authenticates with ?token=.
    let (mut ws2, _) = tokio_tungstenite::connect_async(format!("{url}&token={}", s.admin_key))
        .await
        .unwrap();
    marker(&s, 8).await;
    let msg = tokio::time::timeout(Duration::from_secs(10), ws2.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(msg.to_text().unwrap().contains("\"n\":8"));
    ws.send(Message::Close(None)).await.unwrap();
    let r = s.get("/ws", None).await;
    assert_error(r, 401, "unauthenticated").await;
}

#[tokio::test]
async fn job_events_reach_their_owner() {
    use serde::{Deserialize, Serialize};
    use zentoria_jobs::{EnqueueOptions, JobKind, Registry};

    #[derive(Serialize, Deserialize)]
    struct Step;
    impl JobKind for Step {
        const KIND: &'static str = "test.step";
        const SCOPE: Scope = Scope::Chat;
    }
    let mut r = Registry::new();
    r.register::<Step, _, _>(1, |_, ctx| async move {
        ctx.progress(40, Some("halfway")).await.unwrap();
        Ok(())
    });
    let s = TestServer::start_with_jobs(|_| {}, r).await;
    let alice = s.user("alice", Role::User).await;
    let key = s.key_for(&alice, "chat").await;
    let mut stream = SseReader::open(&s, "?events=job.*", &key, None).await;
    let job = s
        .jobs
        .queue()
        .enqueue(
            &Step,
            EnqueueOptions {
                owner_id: Some(alice.id.clone()),
                run_at: None,
            },
        )
        .await
        .unwrap();
    let names: Vec<(String, Value)> = {
        let mut v = Vec::new();
        while v.len() < 3 {
            let ev = stream.next().await.unwrap();
            v.push((ev.event, ev.data["data"].clone()));
        }
        v
    };
    assert_eq!(names[0].0, "job.started");
    assert_eq!(names[1].0, "job.progress");
    assert_eq!(names[1].1["progress"], 40);
    assert_eq!(names[1].1["message"], "halfway");
    assert_eq!(names[2].0, "job.succeeded");
    assert!(names.iter().all(|(_, d)| d["id"] == job.id.as_str()));
}

#[tokio::test]
async fn events_cross_processes_on_postgresql_and_stay_local_on_sqlite() {
    let s = TestServer::start().await;
    // A second Zentoria on the same database.
    let config = zentoria_core::config::Config {
        data_dir: s.test_db.data_dir(),
        database_url: s.test_db.url.clone(),
        ..Default::default()
    };
    let other = zentoria::Services::open(config).await.unwrap();
    let mut rx = other.events.subscribe();
    if s.test_db.is_postgres() {
        // The other process's listener registers asynchronously: publish until it hears one.
        let mut heard = false;
        for _ in 0..40 {
            s.platform
                .events()
                .publish(NewEvent::new("test.remote", None, json!({"from": "first"})))
                .await;
            if let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(250), rx.recv()).await {
                assert_eq!(ev.name, "test.remote");
                assert_eq!(ev.data["from"], "first");
                heard = true;
                break;
            }
        }
        assert!(heard, "events never crossed to the other process");
    } else {
        s.platform
            .events()
            .publish(NewEvent::new("test.remote", None, json!({})))
            .await;
        other
            .events
            .publish(NewEvent::new("test.local", None, json!({})))
            .await;
        let first = rx.recv().await.unwrap();
        assert_eq!(
            first.name, "test.local",
            "SQLite has no channel between processes"
        );
    }
    other.close().await;
}
