//! A fast fake OpenAI upstream for the gateway benchmark: canned `chat.completion` answers and
//! `chat.completion.chunk` streams (20 content chunks, usage, `[DONE]`), in OpenAI's documented
//! wire format, with as little work per request as possible so the measurement is Zentoria's.

use axum::Json;
use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

const CHUNKS: usize = 20;

/// Usage as OpenAI reports it today, with its token details.
fn usage(completion: usize) -> String {
    format!(
        r#"{{"prompt_tokens":12,"completion_tokens":{completion},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
        12 + completion
    )
}

/// A whole answer as OpenAI's API sends one today, members in its order.
fn whole() -> String {
    format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":1732000000,"model":"gpt-4o-mini-2024-07-18","choices":[{{"index":0,"message":{{"role":"assistant","content":"The quick brown fox jumps over the lazy dog.","refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"usage":{},"service_tier":"default","system_fingerprint":"fp_34a54111"}}"#,
        usage(10)
    )
}

/// A stream as OpenAI's API sends one today, members in its order: every chunk carries
/// `service_tier`, `system_fingerprint`, `"usage": null` (the request asks for usage) and an
/// `obfuscation` member of random characters whose length varies from chunk to chunk, which
/// OpenAI adds by default to even out the sizes of the events. Written out by hand: `json!`
/// would sort the members.
fn streamed() -> String {
    let mut n = 0usize;
    let mut event = |choices: &str, usage: &str| {
        n += 1;
        let obfuscation = &"q7Zk2xWbN4mRt9LpVc3YhJ8sD"[..3 + (n * 7) % 13];
        format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1732000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54111\",\"choices\":{choices},\"usage\":{usage},\"obfuscation\":\"{obfuscation}\"}}\n\n"
        )
    };
    let choice = |delta: &str, finish: &str| {
        format!("[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]")
    };
    let mut out = event(
        &choice(
            r#"{"role":"assistant","content":"","refusal":null}"#,
            "null",
        ),
        "null",
    );
    for i in 0..CHUNKS {
        out += &event(
            &choice(&format!(r#"{{"content":"token{i} "}}"#), "null"),
            "null",
        );
    }
    out += &event(&choice("{}", r#""stop""#), "null");
    out += &event("[]", &usage(CHUNKS));
    out + "data: [DONE]\n\n"
}

/// Serves until killed; prints `http://ADDR` on stdout once listening.
pub async fn serve(listen: &str) -> anyhow::Result<()> {
    let whole: &'static str = Box::leak(whole().into_boxed_str());
    let streamed: &'static str = Box::leak(streamed().into_boxed_str());
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(move |body: Bytes| async move {
                // A substring check is enough to tell the two request shapes apart here.
                const STREAM: &[u8] = b"\"stream\":true";
                let stream = body.windows(STREAM.len()).any(|w| w == STREAM);
                let resp: Response = if stream {
                    ([(header::CONTENT_TYPE, "text/event-stream")], streamed).into_response()
                } else {
                    ([(header::CONTENT_TYPE, "application/json")], whole).into_response()
                };
                resp
            }),
        )
        .route(
            "/v1/models",
            get(|| async {
                Json(json!({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "system"}]}))
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("http://{}", listener.local_addr()?);
    use std::io::Write;
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
