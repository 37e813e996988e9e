//! Fake model servers speaking the providers' documented wire formats, on real sockets.
//!
//! Embeddings: OpenAI `POST /v1/embeddings` (`{"model", "input": [..]}` →
//! `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
//! "usage"}`) and Ollama `POST /api/embed` (`{"model", "input": [..]}` → `{"model",
//! "embeddings": [[..]], "prompt_eval_count", …}`). Vectors are a hashed bag of words, so
//! texts sharing words are near each other and results are deterministic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

pub const DIM: usize = 64;

#[derive(Default)]
pub struct Recorded {
    /// Texts embedded so far.
    pub texts: AtomicUsize,
    pub requests: AtomicUsize,
    /// Answer every request with a 500 while set.
    pub failing: AtomicBool,
    pub last_auth: std::sync::Mutex<Option<String>>,
    pub last_model: std::sync::Mutex<Option<String>>,
}

pub struct FakeUpstream {
    pub url: String,
    pub seen: Arc<Recorded>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A hashed bag-of-words vector (FNV-1a per lower-cased word), L2-normalised.
pub fn bag_of_words(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let mut h: u32 = 0x811c_9dc5;
        for b in word.to_lowercase().bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        v[h as usize % DIM] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v[0] = 1.0;
    }
    v
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let seen = Arc::new(Recorded::default());
        let app = Router::new()
            .route("/v1/embeddings", post(openai_embeddings))
            .route("/api/embed", post(ollama_embed))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeUpstream { url, seen, task }
    }

    pub fn texts(&self) -> usize {
        self.seen.texts.load(Ordering::SeqCst)
    }
}

/// The inputs of a request, recording who asked.
fn inputs(seen: &Recorded, headers: &HeaderMap, body: &Value) -> Result<Vec<String>, String> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    *seen.last_auth.lock().unwrap() = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    *seen.last_model.lock().unwrap() = body["model"].as_str().map(str::to_owned);
    let input = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or("input items must be strings")
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("input must be a string or an array of strings".into()),
    };
    seen.texts.fetch_add(input.len(), Ordering::SeqCst);
    Ok(input)
}

async fn openai_embeddings(
    State(seen): State<Arc<Recorded>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if seen.failing.load(Ordering::SeqCst) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}})),
        )
            .into_response();
    }
    let input = match inputs(&seen, &headers, &body) {
        Ok(i) => i,
        Err(m) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": m, "type": "invalid_request_error", "param": "input", "code": null}})),
            )
                .into_response();
        }
    };
    let tokens: usize = input.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = input
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": bag_of_words(t)}))
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response()
}

async fn ollama_embed(
    State(seen): State<Arc<Recorded>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if seen.failing.load(Ordering::SeqCst) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "llama runner process has terminated"})),
        )
            .into_response();
    }
    let input = match inputs(&seen, &headers, &body) {
        Ok(i) => i,
        Err(m) => return (StatusCode::BAD_REQUEST, Json(json!({"error": m}))).into_response(),
    };
    let embeddings: Vec<Vec<f32>> = input.iter().map(|t| bag_of_words(t)).collect();
    Json(json!({
        "model": body["model"],
        "embeddings": embeddings,
        "total_duration": 14_143_917,
        "load_duration": 1_019_500,
        "prompt_eval_count": input.iter().map(|t| t.split_whitespace().count()).sum::<usize>()
    }))
    .into_response()
}
