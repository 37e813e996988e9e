//! Semantic and hybrid search over real HTTP: the local all-MiniLM-L6-v2 model run in-process,
//! Ollama and OpenAI-compatible embedders (fake upstreams on real sockets), vectors stored in
//! the database, the vector index saved and reloaded, and re-embedding when the embedder
//! changes.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use zentoria_core::Role;
use zentoria_core::config::Config;

use crate::harness::{TestServer, assert_error};
use crate::upstream::{DIM, FakeUpstream};

#[path = "../../../zentoria-embed/tests/common/mod.rs"]
mod model;

const CATS: &str = "# Household pets\n\nCats are small domesticated felines. They purr when content, \
sleep most of the day and like to hunt mice in the garden.\n";
const VOLCANO: &str = "# Geology notes\n\nA volcano erupts when magma from deep underground rises \
through the crust; lava flows and ash clouds follow the eruption.\n";
const BACKUP: &str = "# Operations\n\nCopy the data directory while the server is stopped to make \
a consistent backup of the database.\n";

async fn search(s: &TestServer, key: &str, body: Value) -> Value {
    let r = s.post("/api/v1/search", Some(key), &body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "search {body}: {v}");
    v
}

fn names(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["file_name"].as_str().unwrap().to_owned())
        .collect()
}

async fn vector_rows(s: &TestServer, embedder: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM chunk_vectors WHERE embedder = $1";
    match &s.db {
        zentoria_store::Db::Sqlite(p) => sqlx::query_scalar(sql)
            .bind(embedder)
            .fetch_one(p)
            .await
            .unwrap(),
        zentoria_store::Db::Postgres(p) => sqlx::query_scalar(sql)
            .bind(embedder)
            .fetch_one(p)
            .await
            .unwrap(),
    }
}

fn local_model(c: &mut Config) {
    c.knowledge.embedder = "local".into();
    c.knowledge.embedder_model = model::model_dir().display().to_string();
}

fn openai(url: &str) -> impl FnOnce(&mut Config) {
    let url = url.to_owned();
    move |c: &mut Config| {
        c.knowledge.embedder = "openai".into();
        c.knowledge.embedder_url = url;
        c.knowledge.embedder_model = "text-embedding-3-small".into();
        c.knowledge.embedder_api_key = "sk-test-embedding-key".into();
    }
}

/// Polls the vector count in the server's index through search results: waits until a
/// semantic search by `admin` for `query` returns `want` hits (10 s at most).
async fn eventually_hits(s: &TestServer, query: &str, want: usize) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v = search(
            s,
            &s.admin_key,
            json!({"query": query, "mode": "semantic", "top_k": 10}),
        )
        .await;
        if v["hits"].as_array().unwrap().len() == want {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "semantic search for {query:?} never reached {want} hits: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_local_model_finds_by_meaning_and_hybrid_fuses_both_rankings() {
    let s = TestServer::start_with(local_model).await;
    let key = s.admin_key.clone();
    let mut ids = Vec::new();
    for (name, text, tag) in [
        ("cats.md", CATS, "pets"),
        ("volcano.md", VOLCANO, "science"),
        ("backup.md", BACKUP, "ops"),
    ] {
        let f = s
            .upload(&key, name, text.as_bytes(), &[("tags", tag)])
            .await;
        let f = s.settled(&key, f["id"].as_str().unwrap()).await;
        assert_eq!(f["status"], "ready", "{f}");
        ids.push(f["id"].as_str().unwrap().to_owned());
    }
    // Every chunk has a 384-d vector in the database, tagged with the model.
    assert_eq!(vector_rows(&s, "local:all-MiniLM-L6-v2").await, 3);

    // No word in common with the cat document: keyword search cannot find it, meaning can.
    let query = "a furry animal that meows";
    let kw = search(&s, &key, json!({"query": query, "mode": "keyword"})).await;
    assert!(
        !names(&kw).contains(&"cats.md".to_owned()),
        "keyword should not match: {kw}"
    );
    let sem = search(&s, &key, json!({"query": query, "mode": "semantic"})).await;
    assert_eq!(sem["mode"], "semantic");
    assert_eq!(names(&sem)[0], "cats.md", "{sem}");
    let top = &sem["hits"][0];
    assert!(
        top["score"].as_f64().unwrap() > 0.3,
        "cosine similarity: {top}"
    );
    assert_eq!(top["citation"]["heading"], "Household pets");
    assert!(top["text"].as_str().unwrap().contains("purr"));
    let scores: Vec<f64> = sem["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    let sem = search(
        &s,
        &key,
        json!({"query": "molten rock eruption", "mode": "semantic", "top_k": 1}),
    )
    .await;
    assert_eq!(names(&sem), vec!["volcano.md"]);

    // Hybrid: a document found by both rankings leads; one found by either still shows.
    let hy = search(
        &s,
        &key,
        json!({"query": "database backup of pets", "mode": "hybrid", "top_k": 3}),
    )
    .await;
    assert_eq!(hy["mode"], "hybrid");
    let hy_names = names(&hy);
    assert_eq!(hy_names[0], "backup.md", "{hy}");
    assert!(hy_names.contains(&"cats.md".to_owned()), "{hy}");
    // Weights per request: all weight on the keyword ranking keeps only keyword hits.
    let kw_only = search(
        &s,
        &key,
        json!({"query": query, "mode": "hybrid", "keyword_weight": 1.0, "semantic_weight": 0.0}),
    )
    .await;
    assert!(
        !names(&kw_only).contains(&"cats.md".to_owned()),
        "{kw_only}"
    );
    let r = s
        .post(
            "/api/v1/search",
            Some(&key),
            &json!({"query": query, "mode": "hybrid", "keyword_weight": 0, "semantic_weight": 0}),
        )
        .await;
    assert_error(r, 400, "invalid_request").await;

    // Filters hold in semantic search: tags, types, files.
    let tagged = search(
        &s,
        &key,
        json!({"query": query, "mode": "semantic", "filters": {"tags": ["science"]}}),
    )
    .await;
    assert_eq!(names(&tagged), vec!["volcano.md"]);
    let by_file = search(
        &s,
        &key,
        json!({"query": query, "mode": "semantic", "filters": {"file_ids": [ids[2]]}}),
    )
    .await;
    assert_eq!(names(&by_file), vec!["backup.md"]);

    // Another user sees none of the admin's vectors.
    let bob = s.user("bob", Role::User).await;
    let bob_key = s.key_for(&bob, "files:read files:write").await;
    let theirs = search(&s, &bob_key, json!({"query": query, "mode": "semantic"})).await;
    assert_eq!(theirs["hits"], json!([]));

    // Deleting a file takes its vectors out of the index and the database.
    let r = s
        .http
        .delete(s.at(&format!("/api/v1/files/{}", ids[0])))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let after = eventually_hits(&s, query, 2).await;
    assert!(!names(&after).contains(&"cats.md".to_owned()), "{after}");
    assert_eq!(vector_rows(&s, "local:all-MiniLM-L6-v2").await, 2);
    s.stop().await;
}

#[tokio::test]
async fn remote_embedders_store_vectors_that_survive_restarts_without_re_embedding() {
    let up = FakeUpstream::start().await;
    let mut s = TestServer::start_with(openai(&up.url)).await;
    let key = s.admin_key.clone();
    let f = s.upload(&key, "cats.md", CATS.as_bytes(), &[]).await;
    let id = f["id"].as_str().unwrap().to_owned();
    assert_eq!(s.settled(&key, &id).await["status"], "ready");
    // The OpenAI wire format: model and bearer key as configured.
    assert_eq!(
        up.seen.last_model.lock().unwrap().as_deref(),
        Some("text-embedding-3-small")
    );
    assert_eq!(
        up.seen.last_auth.lock().unwrap().as_deref(),
        Some("Bearer sk-test-embedding-key")
    );
    let embedder = "openai:text-embedding-3-small";
    assert_eq!(vector_rows(&s, embedder).await, 1);
    let hits = search(
        &s,
        &key,
        json!({"query": "cats purr garden", "mode": "semantic"}),
    )
    .await;
    assert_eq!(names(&hits), vec!["cats.md"]);
    // The ingestion job passed through `embedding` (its progress says so).
    let jobs: Value = s
        .get("/api/v1/jobs?kind=knowledge.ingest", Some(&key))
        .await
        .json()
        .await
        .unwrap();
    // The file is ready a moment before its job is marked done: wait for the job.
    let job = s
        .wait_job(jobs[0]["id"].as_str().unwrap(), |j| {
            j["finished_at"].is_string()
        })
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");

    // A caller may bring the query's embedding: nothing is embedded for it then.
    let before = up.texts();
    let v = crate::upstream::bag_of_words("cats purr garden");
    let hits = search(
        &s,
        &key,
        json!({"query": "cats purr garden", "mode": "hybrid", "vector": v}),
    )
    .await;
    assert_eq!(names(&hits), vec!["cats.md"]);
    assert_eq!(up.texts(), before, "a given vector is not embedded again");
    for bad in [
        json!({"query": "x", "mode": "semantic", "vector": [1.0, 2.0]}),
        json!({"query": "x", "mode": "semantic", "vector": []}),
        json!({"query": "x", "mode": "keyword", "vector": v}),
    ] {
        let r = s.post("/api/v1/search", Some(&key), &bad).await;
        assert_error(r, 400, "invalid_request").await;
    }

    // A restart loads the saved index: nothing is embedded again but the queries.
    let embedded = up.texts();
    s.restart_with(openai(&up.url)).await;
    let hits = search(
        &s,
        &key,
        json!({"query": "cats purr garden", "mode": "semantic"}),
    )
    .await;
    assert_eq!(names(&hits), vec!["cats.md"]);
    assert_eq!(up.texts(), embedded + 1, "only the query was embedded");
    let snapshot = s.test_db.data_dir().join("index/vectors-v1");
    assert!(
        std::fs::read_dir(&snapshot).unwrap().count() >= 2,
        "a snapshot and its lock in {}",
        snapshot.display()
    );

    // The index is derived: without its snapshot it is rebuilt from the stored vectors.
    s.stop_running().await;
    std::fs::remove_dir_all(&snapshot).unwrap();
    s.restart_with(openai(&up.url)).await;
    let hits = search(
        &s,
        &key,
        json!({"query": "cats purr garden", "mode": "semantic"}),
    )
    .await;
    assert_eq!(names(&hits), vec!["cats.md"]);
    assert_eq!(up.texts(), embedded + 2, "still only queries embedded");
    s.stop().await;
}

#[tokio::test]
async fn switching_on_an_embedder_embeds_existing_files_in_the_background() {
    let up = FakeUpstream::start().await;
    let mut s = TestServer::start().await;
    let key = s.admin_key.clone();
    for (name, text) in [("cats.md", CATS), ("volcano.md", VOLCANO)] {
        let f = s.upload(&key, name, text.as_bytes(), &[]).await;
        assert_eq!(
            s.settled(&key, f["id"].as_str().unwrap()).await["status"],
            "ready"
        );
    }
    // Keyword only so far; semantic explains how to enable it.
    let r = s
        .post(
            "/api/v1/search",
            Some(&key),
            &json!({"query": "lava", "mode": "semantic"}),
        )
        .await;
    let body = assert_error(r, 400, "invalid_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("knowledge.embedder"),
        "{body}"
    );

    // Ollama now: a re-embedding job picks up the existing chunks.
    s.restart_with(|c| {
        c.knowledge.embedder = "ollama".into();
        c.knowledge.embedder_url = up.url.clone();
    })
    .await;
    let hits = eventually_hits(&s, "magma lava eruption", 2).await;
    assert_eq!(names(&hits)[0], "volcano.md");
    assert_eq!(
        up.seen.last_model.lock().unwrap().as_deref(),
        Some("nomic-embed-text"),
        "the seeds' default Ollama model"
    );
    assert_eq!(vector_rows(&s, "ollama:nomic-embed-text").await, 2);
    let jobs: Value = s
        .get("/api/v1/jobs?kind=knowledge.reembed", Some(&key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");

    // Another embedder replaces those vectors the same way.
    s.restart_with(openai(&up.url)).await;
    eventually_hits(&s, "magma lava eruption", 2).await;
    assert_eq!(vector_rows(&s, "openai:text-embedding-3-small").await, 2);
    assert_eq!(vector_rows(&s, "ollama:nomic-embed-text").await, 0);
    s.stop().await;
}

#[tokio::test]
async fn a_failing_embedder_fails_the_file_with_the_providers_reason() {
    let up = FakeUpstream::start().await;
    up.seen.failing.store(true, Ordering::SeqCst);
    let s = TestServer::start_with(openai(&up.url)).await;
    let key = s.admin_key.clone();
    let f = s.upload(&key, "cats.md", CATS.as_bytes(), &[]).await;
    let f = s.settled(&key, f["id"].as_str().unwrap()).await;
    assert_eq!(f["status"], "failed", "{f}");
    let reason = f["error"].as_str().unwrap();
    assert!(reason.contains("embedding failed"), "{reason}");
    assert!(
        reason.contains("500"),
        "names the upstream status: {reason}"
    );
    // The query cannot be embedded either: a clear 502 naming the provider, not a hang.
    let r = s
        .post(
            "/api/v1/search",
            Some(&key),
            &json!({"query": "cats", "mode": "semantic"}),
        )
        .await;
    let body = assert_error(r, 502, "upstream_error").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("embedding the query failed"), "{body}");
    assert!(message.contains("openai"), "{body}");
    // Keyword search is unaffected.
    up.seen.failing.store(false, Ordering::SeqCst);
    let r = s
        .post(
            &format!("/api/v1/files/{}/reindex", f["id"].as_str().unwrap()),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let f = s.settled(&key, f["id"].as_str().unwrap()).await;
    assert_eq!(f["status"], "ready", "recovered after a reindex: {f}");
    assert_eq!(DIM, 64);
    s.stop().await;
}

#[tokio::test]
async fn bad_embedder_settings_stop_startup_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    c.knowledge.embedder = "word2vec".into();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("knowledge.embedder"), "{e}");
    c.knowledge.embedder = "local".into();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("embedder_model"), "{e}");
    c.knowledge.embedder_model = dir.path().display().to_string();
    c.validate().unwrap();
    let e = match zentoria::Services::open(c).await {
        Ok(_) => panic!("a model directory without a model must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("config.json"), "{e}");
}
