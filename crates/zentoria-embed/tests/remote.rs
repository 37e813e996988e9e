//! Remote embedders (over the providers' Ollama and OpenAI clients) against fake servers on
//! 127.0.0.1 that speak the documented wire formats.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use zentoria_embed::{EmbedError, Embedder, RemoteEmbedder, RemoteOptions};
use zentoria_providers::ProviderOptions;

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    auth: Option<String>,
    body: Value,
}

enum Reply {
    Json(u16, Value),
    Raw(u16, &'static str),
    RetryAfter(u16, u64, Value),
    /// 307 to this address.
    Redirect(String),
    Hang,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `reply(call_number, request)` on 127.0.0.1:0; returns the base URL.
async fn serve<F>(reply: F) -> (String, Log)
where
    F: Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
{
    let log: Log = Arc::default();
    let reply = Arc::new(reply);
    let app = {
        let log = log.clone();
        Router::new().fallback(any(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            let reply = reply.clone();
            async move {
                let seen = Seen {
                    path: uri.path().to_owned(),
                    auth: headers
                        .get(header::AUTHORIZATION)
                        .map(|v| v.to_str().unwrap().to_owned()),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                };
                let n = {
                    let mut l = log.lock().unwrap();
                    l.push(seen.clone());
                    l.len() - 1
                };
                let code = |c: u16| StatusCode::from_u16(c).unwrap();
                let resp: Response = match reply(n, &seen) {
                    Reply::Json(c, v) => (code(c), axum::Json(v)).into_response(),
                    Reply::Raw(c, s) => (code(c), s).into_response(),
                    Reply::RetryAfter(c, secs, v) => (
                        code(c),
                        [(header::RETRY_AFTER, secs.to_string())],
                        axum::Json(v),
                    )
                        .into_response(),
                    Reply::Redirect(to) => {
                        (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response()
                    }
                    Reply::Hang => {
                        std::future::pending::<()>().await;
                        unreachable!()
                    }
                };
                resp
            }
        }))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

fn fast() -> RemoteOptions {
    RemoteOptions {
        batch_size: 2,
        dimension: None,
        client: ProviderOptions {
            first_token_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_retries: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..ProviderOptions::default()
        },
    }
}

/// [`fast`], giving up on an answer after 300 ms.
fn impatient() -> RemoteOptions {
    let mut opts = fast();
    opts.client.first_token_timeout = Duration::from_millis(300);
    opts
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A deterministic un-normalised vector for a text: [len, 1, 0].
fn vec_for(text: &str) -> Vec<f32> {
    vec![text.len() as f32, 1.0, 0.0]
}

fn inputs(seen: &Seen) -> Vec<String> {
    serde_json::from_value(seen.body["input"].clone()).unwrap()
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

fn upstream(e: EmbedError) -> (String, Option<u16>, String) {
    let shown = e.to_string();
    match e {
        EmbedError::Upstream {
            provider,
            status,
            message,
        } => {
            assert!(shown.contains(&provider), "{shown}");
            assert!(shown.contains(&message), "{shown}");
            (provider, status, message)
        }
        other => panic!("expected Upstream, got {other:?}"),
    }
}

// ------------------------------------------------------------------ Ollama

fn ollama_ok(_: usize, seen: &Seen) -> Reply {
    let embs: Vec<Vec<f32>> = inputs(seen).iter().map(|t| vec_for(t)).collect();
    Reply::Json(
        200,
        json!({"model": "nomic-embed-text", "embeddings": embs}),
    )
}

#[tokio::test]
async fn ollama_success_batches_and_normalises() {
    let (base, log) = serve(ollama_ok).await;
    let e = Embedder::from(
        RemoteEmbedder::ollama(&format!("{base}/"), "nomic-embed-text", fast()).unwrap(),
    );
    assert_eq!(e.id(), "ollama:nomic-embed-text");
    assert_eq!(e.dimension(), 0, "unknown before the first answer");
    let input = texts(&["a", "bb", "ccc", "dddd", "eeeee"]);
    let out = e.embed(&input).await.unwrap();
    assert_eq!(out.len(), 5);
    for (t, v) in input.iter().zip(&out) {
        assert_close(v, &unit(&vec_for(t)));
    }
    assert_eq!(e.dimension(), 3);
    assert!(e.embed(&[]).await.unwrap().is_empty());
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3, "5 texts in batches of 2");
    assert!(log.iter().all(|s| s.path == "/api/embed"));
    assert_eq!(
        log[0].body,
        json!({"model": "nomic-embed-text", "input": ["a", "bb"]})
    );
    assert_eq!(log[2].body["input"], json!(["eeeee"]));
}

#[tokio::test]
async fn ollama_probe_dimension() {
    let (base, log) = serve(ollama_ok).await;
    let e = Embedder::from(RemoteEmbedder::ollama(&base, "m", fast()).unwrap());
    assert_eq!(e.probe_dimension().await.unwrap(), 3);
    assert_eq!(e.probe_dimension().await.unwrap(), 3);
    assert_eq!(log.lock().unwrap().len(), 1, "probed once");
}

#[tokio::test]
async fn ollama_model_not_found() {
    let (base, log) = serve(|_, _| {
        Reply::Json(
            404,
            json!({"error": "model \"x\" not found, try pulling it first"}),
        )
    })
    .await;
    let e = RemoteEmbedder::ollama(&base, "x", fast()).unwrap();
    let err = e.embed(&texts(&["hi"])).await.unwrap_err();
    let shown = err.to_string();
    let (provider, status, message) = upstream(err);
    assert_eq!(provider, "ollama");
    assert_eq!(status, Some(404));
    assert_eq!(message, "model \"x\" not found, try pulling it first");
    assert_eq!(
        shown,
        "ollama embedding request failed (HTTP 404): model \"x\" not found, try pulling it first"
    );
    assert_eq!(log.lock().unwrap().len(), 1, "404 is not retried");
}

#[tokio::test]
async fn ollama_retries_500_then_succeeds() {
    let (base, log) = serve(|n, seen| {
        if n == 0 {
            Reply::Json(500, json!({"error": "llama runner process has terminated"}))
        } else {
            ollama_ok(n, seen)
        }
    })
    .await;
    let e = RemoteEmbedder::ollama(&base, "m", fast()).unwrap();
    let out = e.embed(&texts(&["x"])).await.unwrap();
    assert_close(&out[0], &unit(&vec_for("x")));
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn ollama_gives_up_after_three_500s() {
    let (base, log) = serve(|_, _| Reply::Json(503, json!({"error": "server busy"}))).await;
    let e = RemoteEmbedder::ollama(&base, "m", fast()).unwrap();
    let (provider, status, message) = upstream(e.embed(&texts(&["x"])).await.unwrap_err());
    assert_eq!((provider.as_str(), status), ("ollama", Some(503)));
    assert_eq!(message, "server busy");
    assert_eq!(
        log.lock().unwrap().len(),
        3,
        "the first attempt and two retries"
    );
}

#[tokio::test]
async fn ollama_hanging_server_times_out() {
    let (base, log) = serve(|_, _| Reply::Hang).await;
    let opts = impatient();
    let e = RemoteEmbedder::ollama(&base, "m", opts).unwrap();
    let err = e.embed(&texts(&["x"])).await.unwrap_err();
    match &err {
        EmbedError::Timeout(m) => assert!(m.contains("ollama"), "{m}"),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(err.to_string().contains("timed out"));
    assert_eq!(log.lock().unwrap().len(), 1, "timeouts are not retried");
}

#[tokio::test]
async fn ollama_malformed_answers_are_invalid() {
    let cases: Vec<(Reply, &str)> = vec![
        (Reply::Raw(200, "{\"embeddings\": [[1.0, 2"), "malformed"),
        (Reply::Raw(200, "<html>proxy page</html>"), "malformed"),
        (Reply::Json(200, json!({"embedding": [1.0]})), "malformed"),
        (
            Reply::Json(200, json!({"embeddings": [[1.0, "x"]]})),
            "malformed",
        ),
        (
            Reply::Json(200, json!({"embeddings": []})),
            "0 vectors for 1 texts",
        ),
        (
            Reply::Json(200, json!({"embeddings": [[0.0, 0.0]]})),
            "zero",
        ),
        (Reply::Json(200, json!({"embeddings": [[]]})), "dimension 0"),
    ];
    for (reply, want) in cases {
        let reply = Mutex::new(Some(reply));
        let (base, _) =
            serve(move |_, _| reply.lock().unwrap().take().unwrap_or(Reply::Hang)).await;
        let e = RemoteEmbedder::ollama(&base, "m", fast()).unwrap();
        match e.embed(&texts(&["x"])).await.unwrap_err() {
            EmbedError::Invalid(m) => {
                assert!(m.contains(want), "{m:?} should mention {want:?}");
                assert!(m.contains("ollama"), "{m}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn ollama_dimension_change_is_rejected() {
    let (base, _) = serve(|n, _| {
        let v = if n == 0 {
            json!([[1.0, 0.0]])
        } else {
            json!([[1.0, 0.0, 0.0]])
        };
        Reply::Json(200, json!({"embeddings": v}))
    })
    .await;
    let e = RemoteEmbedder::ollama(&base, "m", fast()).unwrap();
    e.embed(&texts(&["x"])).await.unwrap();
    assert_eq!(e.dimension(), 2);
    match e.embed(&texts(&["y"])).await.unwrap_err() {
        EmbedError::Invalid(m) => assert!(m.contains("expected 2"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    // a mixed batch is rejected too
    let (base, _) =
        serve(|_, _| Reply::Json(200, json!({"embeddings": [[1.0, 0.0], [1.0]]}))).await;
    let e = RemoteEmbedder::ollama(&base, "m", fast()).unwrap();
    assert!(matches!(
        e.embed(&texts(&["x", "y"])).await,
        Err(EmbedError::Invalid(_))
    ));
}

#[tokio::test]
async fn connection_refused_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = RemoteEmbedder::ollama(&format!("http://{addr}"), "m", fast()).unwrap();
    let (provider, status, message) = upstream(e.embed(&texts(&["x"])).await.unwrap_err());
    assert_eq!((provider.as_str(), status), ("ollama", None));
    assert!(
        message.contains("connection failed") && message.contains(&addr.to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn redirects_are_reported_and_not_followed() {
    // Following would send the key and the texts to wherever the redirect points.
    let (elsewhere, followed) = serve(openai_reversed).await;
    let to = format!("{elsewhere}/v1/embeddings");
    let (base, log) = serve(move |_, _| Reply::Redirect(to.clone())).await;
    let e = RemoteEmbedder::openai(&base, Some("sk-secret"), "m", fast()).unwrap();
    let (provider, status, message) = upstream(e.embed(&texts(&["private"])).await.unwrap_err());
    assert_eq!((provider.as_str(), status), ("openai", Some(307)));
    assert!(
        message.contains(&elsewhere),
        "names where it points: {message}"
    );
    assert_eq!(log.lock().unwrap().len(), 1, "a redirect is not retried");
    assert!(
        followed.lock().unwrap().is_empty(),
        "nothing reached the target"
    );
}

// ------------------------------------------------------------------ OpenAI

/// Answers with `data` in reverse order, as the spec allows.
fn openai_reversed(_: usize, seen: &Seen) -> Reply {
    let mut data: Vec<Value> = inputs(seen)
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vec_for(t)}))
        .collect();
    data.reverse();
    Reply::Json(
        200,
        json!({
            "object": "list",
            "data": data,
            "model": seen.body["model"],
            "usage": {"prompt_tokens": 5, "total_tokens": 5}
        }),
    )
}

#[tokio::test]
async fn openai_out_of_order_index_is_reordered() {
    let (base, log) = serve(openai_reversed).await;
    for base in [base.clone(), format!("{base}/v1"), format!("{base}/v1/")] {
        let opts = RemoteOptions {
            batch_size: 3,
            ..fast()
        };
        let e = Embedder::from(
            RemoteEmbedder::openai(&base, Some("sk-test"), "text-embedding-3-small", opts).unwrap(),
        );
        assert_eq!(e.id(), "openai:text-embedding-3-small");
        let input = texts(&["one", "three", "fifteen", "x", "twenty-two"]);
        let out = e.embed(&input).await.unwrap();
        for (t, v) in input.iter().zip(&out) {
            assert_close(v, &unit(&vec_for(t)));
        }
        assert_eq!(e.dimension(), 3);
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 6);
    for s in log.iter() {
        assert_eq!(s.path, "/v1/embeddings");
        assert_eq!(s.auth.as_deref(), Some("Bearer sk-test"));
        assert_eq!(s.body["model"], "text-embedding-3-small");
    }
    assert_eq!(log[0].body["input"], json!(["one", "three", "fifteen"]));
}

#[tokio::test]
async fn openai_without_key_sends_no_authorization() {
    let (base, log) = serve(openai_reversed).await;
    let e = RemoteEmbedder::openai(&base, None, "local-model", fast()).unwrap();
    e.embed(&texts(&["a"])).await.unwrap();
    assert_eq!(log.lock().unwrap()[0].auth, None);
}

#[tokio::test]
async fn token_counts_are_the_servers_summed_over_batches() {
    let three = texts(&["a b", "c", "d e f"]);
    // OpenAI's usage.prompt_tokens: 5 for each of the two batches.
    let (base, _) = serve(openai_reversed).await;
    let e = RemoteEmbedder::openai(&base, None, "m", fast()).unwrap();
    let counted = e.embed_counted(&three).await.unwrap();
    assert_eq!(counted.vectors.len(), 3);
    assert_eq!(counted.tokens, Some(10));
    // Ollama's prompt_eval_count, here a word a token.
    let (base, _) = serve(|_, seen| {
        let input = inputs(seen);
        let words: usize = input.iter().map(|t| t.split_whitespace().count()).sum();
        let embs: Vec<Vec<f32>> = input.iter().map(|t| vec_for(t)).collect();
        Reply::Json(
            200,
            json!({"model": "m", "embeddings": embs, "prompt_eval_count": words}),
        )
    })
    .await;
    let e = RemoteEmbedder::ollama(&base, "m", fast()).unwrap();
    assert_eq!(e.embed_counted(&three).await.unwrap().tokens, Some(6));
    // A server that does not say: no count, rather than a wrong one.
    let (base, _) = serve(ollama_ok).await;
    let e = RemoteEmbedder::ollama(&base, "m", fast()).unwrap();
    let counted = e.embed_counted(&three).await.unwrap();
    assert_eq!((counted.vectors.len(), counted.tokens), (3, None));
}

#[tokio::test]
async fn openai_401_surfaces_error_message() {
    let (base, log) = serve(|_, _| {
        Reply::Json(
            401,
            json!({"error": {
                "message": "Incorrect API key provided: sk-bad. You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"
            }}),
        )
    })
    .await;
    let e =
        RemoteEmbedder::openai(&base, Some("sk-bad"), "text-embedding-3-small", fast()).unwrap();
    let err = e.embed(&texts(&["x"])).await.unwrap_err();
    let shown = err.to_string();
    let (provider, status, message) = upstream(err);
    assert_eq!((provider.as_str(), status), ("openai", Some(401)));
    assert!(
        message.starts_with("Incorrect API key provided"),
        "{message}"
    );
    assert!(shown.starts_with("openai embedding request failed (HTTP 401): Incorrect API key"));
    assert_eq!(log.lock().unwrap().len(), 1, "401 is not retried");
}

#[tokio::test]
async fn openai_retries_500_and_429() {
    let (base, log) = serve(|n, seen| match n {
        0 => Reply::Raw(500, "Internal Server Error"),
        1 => Reply::RetryAfter(
            429,
            0,
            json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        ),
        _ => openai_reversed(n, seen),
    })
    .await;
    let e = RemoteEmbedder::openai(&base, Some("k"), "m", fast()).unwrap();
    let out = e.embed(&texts(&["ab", "c"])).await.unwrap();
    assert_close(&out[0], &unit(&vec_for("ab")));
    assert_close(&out[1], &unit(&vec_for("c")));
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn openai_429_exhausted_names_message() {
    let (base, _) = serve(|_, _| {
        Reply::RetryAfter(
            429,
            0,
            json!({"error": {"message": "Rate limit reached for requests"}}),
        )
    })
    .await;
    let e = RemoteEmbedder::openai(&base, Some("k"), "m", fast()).unwrap();
    match e.embed(&texts(&["x"])).await.unwrap_err() {
        EmbedError::RateLimited {
            provider,
            retry_after,
            message,
        } => {
            assert_eq!(provider, "openai");
            assert_eq!(
                retry_after,
                Some(Duration::ZERO),
                "the server's Retry-After"
            );
            assert!(message.contains("Rate limit reached"), "{message}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn openai_hanging_server_times_out() {
    let (base, _) = serve(|_, _| Reply::Hang).await;
    let opts = impatient();
    let e = RemoteEmbedder::openai(&base, Some("k"), "m", opts).unwrap();
    match e.embed(&texts(&["x"])).await.unwrap_err() {
        EmbedError::Timeout(m) => assert!(m.contains("openai") && m.contains("300ms"), "{m}"),
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn openai_malformed_answers_are_invalid() {
    let cases: Vec<(Reply, &str)> = vec![
        (Reply::Raw(200, "not json at all"), "malformed"),
        (
            Reply::Json(200, json!({"data": [{"index": 0}]})),
            "malformed",
        ),
        (
            Reply::Json(200, json!({"data": [{"index": -1, "embedding": [1.0]}]})),
            "malformed",
        ),
        (
            Reply::Json(
                200,
                json!({"data": [
                    {"index": 0, "embedding": [1.0]}, {"index": 5, "embedding": [1.0]}
                ]}),
            ),
            "index 5",
        ),
        (
            Reply::Json(
                200,
                json!({"data": [
                    {"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}
                ]}),
            ),
            "twice",
        ),
        (
            Reply::Json(200, json!({"data": [{"index": 0, "embedding": [1.0]}]})),
            "1 vectors for 2 texts",
        ),
    ];
    for (reply, want) in cases {
        let reply = Mutex::new(Some(reply));
        let (base, _) =
            serve(move |_, _| reply.lock().unwrap().take().unwrap_or(Reply::Hang)).await;
        let e = RemoteEmbedder::openai(&base, Some("k"), "m", fast()).unwrap();
        match e.embed(&texts(&["x", "y"])).await.unwrap_err() {
            EmbedError::Invalid(m) => {
                assert!(m.contains(want), "{m:?} should mention {want:?}");
                assert!(m.contains("openai"), "{m}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn given_dimension_is_enforced() {
    let (base, _) = serve(openai_reversed).await;
    let opts = RemoteOptions {
        dimension: Some(1536),
        ..fast()
    };
    let e = Embedder::from(RemoteEmbedder::openai(&base, Some("k"), "m", opts).unwrap());
    assert_eq!(e.dimension(), 1536);
    match e.embed(&texts(&["x"])).await.unwrap_err() {
        EmbedError::Invalid(m) => assert!(m.contains("dimension 3") && m.contains("1536"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}
