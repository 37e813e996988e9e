//! The OpenAI-compatible gateway over real HTTP, against a wire-faithful fake OpenAI upstream:
//! model listing across providers, answers whole and streamed, tool calls, routing errors and
//! upstream errors — and the official `openai` Python package as the client.

use serde_json::{Value, json};
use zentoria_core::Role;
use zentoria_core::config::{Config, ProviderConfig};

use crate::harness::{TestServer, assert_error};
use crate::upstream::{FakeUpstream, THINKING};

/// An `openai` provider on the fake, a `local` Ollama where nothing listens, an alias.
fn providers(url: &str) -> impl FnOnce(&mut Config) {
    let url = url.to_owned();
    move |c: &mut Config| {
        c.ai.ollama_url = "http://127.0.0.1:9".into();
        c.ai.providers.push(ProviderConfig {
            name: "openai".into(),
            kind: "openai".into(),
            base_url: url,
            api_key: "sk-upstream-secret".into(),
        });
        c.ai.aliases
            .insert("mini".into(), "openai/gpt-4o-mini".into());
        c.ai.default_model = "mini".into();
    }
}

async fn chat(s: &TestServer, key: &str, body: Value) -> reqwest::Response {
    s.http
        .post(s.at("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn models_answers_and_streams_in_openai_format() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let key = s.admin_key.clone();

    let models: Value = s.get_json("/v1/models", &key).await;
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"openai/gpt-4o-mini"), "{models}");
    assert!(ids.contains(&"mini"), "aliases are listed: {models}");
    // One model by id, its slash as it is or escaped, or an alias.
    for path in ["openai/gpt-4o-mini", "openai%2Fgpt-4o-mini"] {
        let one: Value = s.get_json(&format!("/v1/models/{path}"), &key).await;
        assert_eq!(
            one,
            json!({"id": "openai/gpt-4o-mini", "object": "model", "created": 0, "owned_by": "system"})
        );
    }
    let alias: Value = s.get_json("/v1/models/mini", &key).await;
    assert_eq!(alias["owned_by"], "alias of openai/gpt-4o-mini");
    let r = s
        .http
        .get(s.at("/v1/models/openai/gpt-5-imaginary"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let body = assert_error(r, 404, "not_found").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"openai/gpt-5-imaginary\""), "{body}");
    assert!(message.contains("could not be asked: ollama"), "{body}");
    assert!(
        !ids.iter().any(|i| i.starts_with("ollama/")),
        "an unreachable provider lists nothing: {models}"
    );

    // A whole answer.
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-4o-mini", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "openai/gpt-4o-mini");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 7);
    // The upstream got its own model name and key, never the caller's.
    assert_eq!(
        up.seen.last_model.lock().unwrap().as_deref(),
        Some("gpt-4o-mini")
    );
    assert_eq!(
        up.seen.last_auth.lock().unwrap().as_deref(),
        Some("Bearer sk-upstream-secret")
    );

    // Streamed, through the default model (the alias).
    let r = chat(
        &s,
        &key,
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "stream me"}]}],
               "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = r.text().await.unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "openai/gpt-4o-mini")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo: stream me");
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec![&json!("stop")]);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);

    // Both answers were measured: latency, time to first token (the stream), tokens. (The
    // recorder is shared by every test in this process, so counts are not asserted.)
    let metrics = s.get("/metrics", None).await.text().await.unwrap();
    for needle in [
        "zentoria_ai_request_seconds_count{provider=\"openai\",model=\"openai/gpt-4o-mini\"}",
        "zentoria_ai_time_to_first_token_seconds_count{provider=\"openai\",model=\"openai/gpt-4o-mini\"}",
        "zentoria_ai_tokens_total{provider=\"openai\",model=\"openai/gpt-4o-mini\",kind=\"completion\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn the_gateway_reports_its_own_time_apart_from_the_models() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let key = s.admin_key.clone();
    for stream in [false, true] {
        let started = std::time::Instant::now();
        let r = chat(
            &s,
            &key,
            json!({"model": "mini", "stream": stream,
                   "messages": [{"role": "user", "content": "take your time"}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let own: f64 = r.headers()["x-zentoria-overhead-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // The header arrives with the response head: for a stream, once its first event is in.
        let seen = started.elapsed().as_secs_f64() * 1000.0;
        let thinking = THINKING.as_secs_f64() * 1000.0;
        assert!(own >= 0.0, "{own}");
        // What the model spent thinking is not the gateway's: its own time and the model's
        // fit within what the client waited.
        assert!(
            own + thinking <= seen,
            "stream {stream}: own {own} ms + model {thinking} ms > seen {seen} ms"
        );
        let text = r.text().await.unwrap();
        assert!(text.contains("take your time"), "{text}");
    }
    let metrics = s.get("/metrics", None).await.text().await.unwrap();
    for stream in ["false", "true"] {
        let needle = format!(
            "zentoria_gateway_overhead_seconds_count{{provider=\"openai\",model=\"openai/gpt-4o-mini\",stream=\"{stream}\"}}"
        );
        assert!(
            metrics.contains(&needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    // Its buckets resolve tens of microseconds.
    assert!(
        metrics.contains("zentoria_gateway_overhead_seconds_bucket{provider=\"openai\",model=\"openai/gpt-4o-mini\",stream=\"false\",le=\"0.000025\"}"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn tool_calls_pass_through_whole_and_streamed() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let key = s.admin_key.clone();
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let ask = json!([{"role": "user", "content": "what is the weather in Paris?"}]);

    let v: Value = chat(
        &s,
        &key,
        json!({"model": "mini", "messages": ask, "tools": tools}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_abc123");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));

    // Streamed: the pieces the upstream sent arrive as one complete call.
    let text = chat(
        &s,
        &key,
        json!({"model": "mini", "messages": ask, "tools": tools, "stream": true}),
    )
    .await
    .text()
    .await
    .unwrap();
    let calls: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 1, "{text}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );

    // The tool's result goes back up as a tool message.
    let v: Value = chat(
        &s,
        &key,
        json!({"model": "mini", "messages": [
            {"role": "user", "content": "what is the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_abc123", "content": "18 °C, clear"},
            {"role": "user", "content": "thanks"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "echo: thanks", "{v}");
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_routing_and_upstream_errors_are_clear() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let key = s.admin_key.clone();
    let hello = json!([{"role": "user", "content": "hi"}]);

    let r = chat(&s, &key, json!({"model": "gpt-4o", "messages": hello})).await;
    let body = assert_error(r, 400, "invalid_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provider/model"),
        "{body}"
    );
    let r = chat(&s, &key, json!({"model": "nobody/x", "messages": hello})).await;
    assert_error(r, 400, "invalid_request").await;
    let r = chat(&s, &key, json!({"model": "mini", "messages": []})).await;
    assert_error(r, 400, "invalid_request").await;
    let r = chat(
        &s,
        &key,
        json!({"model": "mini", "messages": [{"role": "wizard", "content": "x"}]}),
    )
    .await;
    assert_error(r, 400, "invalid_request").await;
    let r = s
        .http
        .post(s.at("/v1/chat/completions"))
        .bearer_auth(&key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_request").await;

    // The upstream's own error, named and quoted.
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-5-imaginary", "messages": hello}),
    )
    .await;
    let body = assert_error(r, 502, "upstream_error").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("openai"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(!message.contains("sk-upstream-secret"), "{message}");
    // A provider nobody listens on: a connection error naming it, not a hang.
    let r = chat(
        &s,
        &key,
        json!({"model": "ollama/llama3.2", "messages": hello}),
    )
    .await;
    let body = assert_error(r, 502, "upstream_error").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ollama"),
        "{body}"
    );

    // The chat scope is required.
    let bob = s.user("bob", Role::User).await;
    let files_only = s.key_for(&bob, "files:read").await;
    let r = chat(&s, &files_only, json!({"model": "mini", "messages": hello})).await;
    assert_error(r, 403, "forbidden").await;
    let chat_key = s.key_for(&bob, "chat").await;
    let r = chat(&s, &chat_key, json!({"model": "mini", "messages": hello})).await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// `POST /v1/chat/completions` skips the router (zentoria_http::served) but not what every
/// route gets: request ids, security headers, the error shape, authentication and metrics;
/// other methods on its path still reach the router.
#[tokio::test]
async fn chat_completions_get_what_every_route_gets() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let key = s.admin_key.clone();
    let hello = json!({"model": "mini", "messages": [{"role": "user", "content": "hi"}]});

    for stream in [false, true] {
        let mut body = hello.clone();
        body["stream"] = json!(stream);
        let r = s
            .http
            .post(s.at("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("x-request-id", format!("trace-{stream}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert_eq!(h["x-request-id"], format!("trace-{stream}").as_str());
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h.contains_key("content-security-policy"));
        // A stream keeps its own cache rule; a whole answer gets the default.
        let cache = if stream { "no-cache" } else { "no-store" };
        assert_eq!(h["cache-control"], cache);
        assert!(r.text().await.unwrap().contains("hi"));
    }

    // No credential, a bad one: refused in the shared shape, with an id.
    let r = s.post("/v1/chat/completions", None, &hello).await;
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_error(r, 401, "unauthenticated").await;
    let r = chat(&s, "zt_not-a-key", hello.clone()).await;
    assert_error(r, 401, "unauthenticated").await;

    // Other methods on the path are the router's.
    let r = s
        .http
        .get(s.at("/v1/chat/completions"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_error(r, 405, "method_not_allowed").await;

    let metrics = s.get("/metrics", None).await.text().await.unwrap();
    for status in ["200", "401", "405"] {
        let needle = format!(
            "zentoria_http_requests_total{{method=\"{}\",route=\"/v1/chat/completions\",status=\"{status}\"}}",
            if status == "405" { "GET" } else { "POST" }
        );
        assert!(
            metrics.contains(&needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    s.stop().await;
}

/// The fast path hands the connection's address to the request context itself: the
/// per-address limit counts requests that carry no credential, as on every other route.
#[tokio::test]
async fn chat_completions_are_limited_by_client_address() {
    let s = TestServer::start_with(|c| {
        c.http.rate_limit_per_minute = 60;
        c.http.rate_limit_burst = 3;
    })
    .await;
    let hello = json!({"model": "mini", "messages": [{"role": "user", "content": "hi"}]});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = s.post("/v1/chat/completions", None, &hello).await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            assert_error(r, 429, "rate_limited").await;
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    s.stop().await;
}

/// What OpenAI's API takes beyond messages and sampling — a forced or forbidden tool call, one
/// call at a time, JSON answers to a schema, a seed, penalties — reaches the provider as its
/// API spells it; what a provider cannot do is refused with a 400 naming it, never dropped.
#[tokio::test]
async fn tool_choice_json_answers_and_seeds_reach_the_provider_or_are_refused() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let key = s.admin_key.clone();
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"], "additionalProperties": false});
    for stream in [false, true] {
        let r = chat(
            &s,
            &key,
            json!({"model": "openai/gpt-4o-mini", "stream": stream,
                "messages": [{"role": "user", "content": "a city"}],
                "tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": false,
                "response_format": {"type": "json_schema", "json_schema": {"name": "city", "strict": true, "schema": schema}},
                "seed": 42, "presence_penalty": 0.5, "frequency_penalty": -0.25,
                "reasoning_effort": "low", "max_completion_tokens": 99}),
        )
        .await;
        assert_eq!(r.status(), 200, "stream {stream}");
        let _ = r.bytes().await.unwrap();
        let sent = up.seen.last_chat.lock().unwrap().clone().unwrap();
        assert_eq!(
            sent["tool_choice"],
            json!({"type": "function", "function": {"name": "get_weather"}})
        );
        assert_eq!(sent["parallel_tool_calls"], json!(false));
        assert_eq!(
            sent["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "city", "strict": true, "schema": schema}})
        );
        assert_eq!(sent["seed"], json!(42));
        assert_eq!(sent["presence_penalty"], json!(0.5));
        assert_eq!(sent["frequency_penalty"], json!(-0.25));
        assert_eq!(sent["reasoning_effort"], json!("low"));
        // An OpenAI-compatible server (not api.openai.com) gets the limit as max_tokens.
        assert_eq!(sent["max_tokens"], json!(99));
        assert_eq!(sent["model"], "gpt-4o-mini");
    }

    // What the request itself gets wrong never reaches a provider.
    let chats = up.seen.chats.load(std::sync::atomic::Ordering::SeqCst);
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}],
            "tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": tools}),
    )
    .await;
    let body = assert_error(r, 400, "invalid_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"nope\", which is not among the tools"),
        "{body}"
    );
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "logprobs": true}),
    )
    .await;
    assert_error(r, 400, "invalid_request").await;
    assert_eq!(
        up.seen.chats.load(std::sync::atomic::Ordering::SeqCst),
        chats
    );

    // Ollama cannot be made to call a tool: a 400 naming the provider, before anything is sent
    // (nothing listens where it points).
    for stream in [false, true] {
        let r = chat(
            &s,
            &key,
            json!({"model": "ollama/llama3.2", "stream": stream,
                "messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "required"}),
        )
        .await;
        let body = assert_error(r, 400, "invalid_request").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("ollama: not supported: Ollama cannot be made to call a tool"),
            "{body}"
        );
    }
}

/// A reasoning model's thoughts come back where DeepSeek and LiteLLM put them, whole and
/// streamed, and are not sent on to an OpenAI-compatible server when the client sends the turn
/// back (DeepSeek refuses them there).
#[tokio::test]
async fn reasoning_comes_through_and_is_not_sent_back_upstream() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let key = s.admin_key.clone();
    let ask = |stream: bool| {
        json!({"model": "openai/gpt-4o-mini", "stream": stream, "reasoning_effort": "high",
            "messages": [{"role": "user", "content": "2+2?"}]})
    };
    let r = chat(&s, &key, ask(false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let message = &v["choices"][0]["message"];
    assert_eq!(
        message["reasoning_content"],
        "thinking (high) about \"2+2?\""
    );
    assert_eq!(message["content"], "echo: 2+2?");
    // What thinking cost, as OpenAI reports it; a cache nobody read is not mentioned.
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10,
            "completion_tokens_details": {"reasoning_tokens": 4}})
    );

    let r = chat(&s, &key, ask(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let (mut reasoning, mut content, mut order) = (String::new(), String::new(), Vec::new());
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        let delta = &chunk["choices"][0]["delta"];
        if let Some(r) = delta["reasoning_content"].as_str() {
            reasoning.push_str(r);
            order.push('r');
        }
        if let Some(c) = delta["content"].as_str().filter(|c| !c.is_empty()) {
            content.push_str(c);
            order.push('c');
        }
    }
    assert_eq!(reasoning, "thinking (high) about \"2+2?\"");
    assert_eq!(content, "echo: 2+2?");
    assert_eq!(order.iter().collect::<String>(), "rrccc", "{text}");

    // The turn sent back: its thoughts stay here.
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-4o-mini", "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4.", "reasoning_content": "Two and two."},
            {"role": "user", "content": "and 3+3?"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let sent = up.seen.last_chat.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": "4."})
    );
    assert!(sent.get("reasoning_effort").is_none());

    // A prompt the provider read from its cache: told to the client, and counted.
    let again = json!({"model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "2+2? (asked before)"}]});
    let r = chat(&s, &key, again).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8,
            "prompt_tokens_details": {"cached_tokens": 5}})
    );
    // The usage report counts both, per key and model and per day, among the tokens they are
    // part of: thoughts twice (4 a time), cached prompt tokens once.
    let usage: Value = s.get_json("/api/v1/usage", &key).await;
    let totals = &usage["totals"];
    assert_eq!(totals["requests"], 4, "{usage}");
    assert_eq!(totals["reasoning_tokens"], 8, "{usage}");
    assert_eq!(totals["cached_tokens"], 5, "{usage}");
    assert_eq!(totals["prompt_tokens"], 4 + 4 + 5 + 6, "{usage}");
    assert_eq!(
        usage["by_key_and_model"][0]["reasoning_tokens"], 8,
        "{usage}"
    );
    assert_eq!(usage["days"][0]["cached_tokens"], 5, "{usage}");

    // Who the request is for, its cache's key, tags, storage, tier and top_k reach the
    // provider as the client sent them.
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-4o-mini", "user": "u-1", "safety_identifier": "9f86d0",
            "prompt_cache_key": "sums", "top_k": 40, "metadata": {"team": "search"},
            "store": false, "service_tier": "flex",
            "messages": [{"role": "user", "content": "2+2?"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let sent = up.seen.last_chat.lock().unwrap().clone().unwrap();
    assert_eq!(
        (
            &sent["user"],
            &sent["safety_identifier"],
            &sent["prompt_cache_key"]
        ),
        (&json!("u-1"), &json!("9f86d0"), &json!("sums"))
    );
    assert_eq!(sent["top_k"], 40, "{sent}");
    assert_eq!(
        (&sent["metadata"], &sent["store"], &sent["service_tier"]),
        (&json!({"team": "search"}), &json!(false), &json!("flex"))
    );
}

/// A 1×1 PNG as a data: URL, as chat front ends send an uploaded picture.
const PNG_URL: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

#[tokio::test]
async fn images_reach_the_model_in_their_place_and_bad_ones_are_refused_with_the_reason() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let key = s.admin_key.clone();
    let ask = |stream: bool| {
        json!({"model": "openai/gpt-4o-mini", "stream": stream, "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Which is brighter: "},
            {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
            {"type": "text", "text": " or "},
            {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg"}},
        ]}]})
    };
    let seen = "echo: Which is brighter: [png 1x1] or [https://example.com/b.jpg]";
    let r = chat(&s, &key, ask(false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], seen);
    let sent = up.seen.last_chat.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}})
    );
    let r = chat(&s, &key, ask(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let streamed: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            let chunk: Value = serde_json::from_str(d).unwrap();
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(streamed, seen);

    // A cache breakpoint is for providers told what to cache (Anthropic); an OpenAI-compatible
    // server caches on its own and gets the message as it would without one.
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user",
            "content": [{"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": ", then asked"}]}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let sent = up.seen.last_chat.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "user", "content": "cached, then asked"})
    );

    // Refused here, with the reason, before any provider is asked.
    let asked = up.seen.chats.load(std::sync::atomic::Ordering::SeqCst);
    let image = |url: &str| json!({"type": "image_url", "image_url": {"url": url}});
    for (model, messages, says) in [
        (
            "openai/gpt-4o-mini",
            json!([{"role": "system", "content": [image(PNG_URL)]}, {"role": "user", "content": "hi"}]),
            "user messages only",
        ),
        (
            "openai/gpt-4o-mini",
            json!([{"role": "user", "content": [image("data:image/png;base64,iVB Rw0K")]}]),
            "not base64",
        ),
        (
            "openai/gpt-4o-mini",
            json!([{"role": "user", "content": [image("data:text/html;base64,aGk=")]}]),
            "image/",
        ),
        (
            "openai/gpt-4o-mini",
            json!([{"role": "user", "content": [image("file:///etc/passwd")]}]),
            "http(s)",
        ),
        (
            "openai/gpt-4o-mini",
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL, "detail": "max"}}]}]),
            "detail",
        ),
        // Ollama is given images inline only, and nobody listens for it here: refused, not
        // a connection error.
        (
            "ollama/llava",
            json!([{"role": "user", "content": [image("https://example.com/b.jpg")]}]),
            "data: URL",
        ),
    ] {
        let r = chat(&s, &key, json!({"model": model, "messages": messages})).await;
        let body = assert_error(r, 400, "invalid_request").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{says}: {message}");
    }
    assert_eq!(
        up.seen.chats.load(std::sync::atomic::Ordering::SeqCst),
        asked
    );

    // Base64 of something that is not a picture is the model's to refuse; its words come back.
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": [image("data:image/png;base64,aGk=")]}]}),
    )
    .await;
    let body = assert_error(r, 502, "upstream_error").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("unsupported image"), "{message}");
    s.stop().await;
}

/// The official `openai` Python package as the client, whole and streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_client_works_against_the_gateway() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let script = r#"
import json, os, sys
try:
    import openai
except ImportError:
    sys.exit("the openai package is missing: python3 -m pip install openai")
client = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key=os.environ["KEY"], max_retries=0)
ids = sorted(m.id for m in client.models.list())
retrieved = client.models.retrieve("openai/gpt-4o-mini").id
whole = client.chat.completions.create(model="openai/gpt-4o-mini",
    messages=[{"role": "user", "content": "hi from python"}])
pieces = []
usage = None
for chunk in client.chat.completions.create(model="mini", stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "streamed"}]):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.usage:
        usage = chunk.usage.total_tokens
thought = client.chat.completions.create(model="mini", reasoning_effort="low",
    messages=[{"role": "user", "content": "think"}]).choices[0].message
thinking = []
for chunk in client.chat.completions.create(model="mini", reasoning_effort="low", stream=True,
        messages=[{"role": "user", "content": "think"}]):
    piece = chunk.choices and getattr(chunk.choices[0].delta, "reasoning_content", None)
    if piece:
        thinking.append(piece)
try:
    client.chat.completions.create(model="openai/nope", messages=[{"role": "user", "content": "x"}])
    error = None
except openai.APIStatusError as e:
    error = [e.status_code, e.message]
emb = client.embeddings.create(model="openai/text-embedding-3-small", input=["alpha beta", "gamma"])
looked = client.chat.completions.create(model="mini", messages=[{"role": "user", "content": [
    {"type": "text", "text": "What is this? "},
    {"type": "image_url", "image_url": {"url": os.environ["PNG"], "detail": "high"}}]}])
shaped = client.chat.completions.create(model="mini", seed=3, response_format={"type": "json_object"},
    tools=[{"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}],
    tool_choice="none", messages=[{"role": "user", "content": "json please"}])
print(json.dumps({"looked": looked.choices[0].message.content,"reasoning": [thought.reasoning_content, thought.content, "".join(thinking)],
    "ids": ids, "whole": whole.choices[0].message.content,
    "tokens": whole.usage.total_tokens, "streamed": "".join(pieces), "usage": usage, "error": error,
    "emb": [len(emb.data), len(emb.data[0].embedding), emb.model, emb.data[1].embedding[:4]],
    "shaped": shaped.choices[0].message.content, "retrieved": retrieved}))
"#;
    let base = s.url.clone();
    let key = s.admin_key.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .env("BASE", base)
            .env("KEY", key)
            .env("PNG", PNG_URL)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed: {stderr}\n{stdout}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        v["ids"]
            .as_array()
            .unwrap()
            .contains(&json!("openai/gpt-4o-mini")),
        "{v}"
    );
    assert_eq!(v["whole"], "echo: hi from python");
    assert_eq!(v["looked"], "echo: What is this? [png 1x1]");
    assert_eq!(v["tokens"], 8);
    assert_eq!(v["streamed"], "echo: streamed");
    assert_eq!(v["emb"][0], 2, "{v}");
    assert_eq!(v["emb"][1], crate::upstream::DIM);
    assert_eq!(v["emb"][2], "openai/text-embedding-3-small");
    assert_eq!(v["shaped"], "echo: json please");
    assert_eq!(v["retrieved"], "openai/gpt-4o-mini");
    assert_eq!(
        v["reasoning"],
        json!([
            "thinking (low) about \"think\"",
            "echo: think",
            "thinking (low) about \"think\""
        ])
    );
    let sent = up.seen.last_chat.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_object"}),
        "{sent}"
    );
    assert_eq!(sent["seed"], json!(3));
    assert_eq!(sent["tool_choice"], json!("none"));
    let expected = crate::upstream::bag_of_words("gamma");
    for (got, want) in v["emb"][3].as_array().unwrap().iter().zip(&expected) {
        assert!(
            (got.as_f64().unwrap() - f64::from(*want)).abs() < 1e-6,
            "{v}"
        );
    }
    assert_eq!(v["usage"], 7);
    assert_eq!(v["error"][0], 502, "{v}");
    assert!(
        v["error"][1].as_str().unwrap().contains("does not exist"),
        "{v}"
    );
    s.stop().await;
}

#[tokio::test]
async fn keys_limit_models_and_tokens_and_usage_is_reported_per_key_and_model() {
    let up = FakeUpstream::start().await;
    let s = TestServer::start_with(providers(&up.url)).await;
    let admin = s.admin_key.clone();
    let r = s
        .post(
            "/api/v1/keys",
            Some(&admin),
            &json!({"name": "metered", "scopes": ["chat"], "models": ["mini"], "monthly_token_budget": 20}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["models"], json!(["mini"]));
    assert_eq!(created["monthly_token_budget"], 20);

    // The key sees and may use only its models (the alias, and what it stands for).
    let models: Value = s.get_json("/v1/models", &key).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mini"], "{models}");
    let hello = json!([{"role": "user", "content": "hello there"}]);
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-4o", "messages": hello}),
    )
    .await;
    let body = assert_error(r, 403, "forbidden").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("mini"),
        "{body}"
    );

    // 7 tokens an answer (5 prompt, 2 completion): the budget of 20 lasts three answers.
    for _ in 0..2 {
        let r = chat(&s, &key, json!({"model": "mini", "messages": hello})).await;
        assert_eq!(r.status(), 200);
    }
    let r = chat(
        &s,
        &key,
        json!({"model": "mini", "messages": hello, "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    let r = chat(&s, &key, json!({"model": "mini", "messages": hello})).await;
    let body = assert_error(r, 429, "budget_exceeded").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("20 tokens"),
        "{body}"
    );

    // The admin's own requests count separately.
    let r = chat(&s, &admin, json!({"messages": hello})).await;
    assert_eq!(r.status(), 200);

    // The user's usage: the metered key's and the admin key's, apart.
    let user: Value = s.get_json("/api/v1/usage", &key).await;
    assert_eq!(user["totals"]["requests"], 4, "{user}");
    assert_eq!(
        user["by_key_and_model"].as_array().unwrap().len(),
        2,
        "{user}"
    );
    let mine: Value = s
        .get_json(&format!("/api/v1/usage?key_id={key_id}"), &key)
        .await;
    assert_eq!(mine["totals"]["requests"], 3, "{mine}");
    assert_eq!(mine["totals"]["prompt_tokens"], 15, "{mine}");
    // The streamed answer reports 3 completion tokens.
    assert_eq!(mine["totals"]["completion_tokens"], 7, "{mine}");
    let groups = mine["by_key_and_model"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .all(|g| g["key_id"] == key_id && g["model"] == "openai/gpt-4o-mini"),
        "{mine}"
    );
    let bob = s.user("bob", Role::User).await;
    let bob_key = s.key_for(&bob, "chat").await;
    let r = chat(&s, &bob_key, json!({"messages": hello})).await;
    assert_eq!(r.status(), 200);
    let bobs: Value = s.get_json("/api/v1/usage", &bob_key).await;
    assert_eq!(
        bobs["totals"]["requests"], 1,
        "only one's own usage: {bobs}"
    );
    let all: Value = s.get_json("/api/v1/usage?all=true", &admin).await;
    assert_eq!(all["totals"]["requests"], 5, "{all}");
    let only: Value = s
        .get(
            &format!("/api/v1/usage?all=true&key_id={key_id}"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only["totals"]["requests"], 3);
    let r = s.get("/api/v1/usage?all=true", Some(&key)).await;
    assert_error(r, 403, "forbidden").await;
    let r = s.get("/api/v1/usage?from=yesterday", Some(&key)).await;
    assert_error(r, 400, "invalid_request").await;

    // Bad limits are refused when the key is made.
    for bad in [
        json!({"name": "x", "scopes": ["chat"], "models": []}),
        json!({"name": "x", "scopes": ["chat"], "models": ["open*ai"]}),
        json!({"name": "x", "scopes": ["chat"], "monthly_token_budget": 0}),
    ] {
        let r = s.post("/api/v1/keys", Some(&admin), &bad).await;
        assert_error(r, 400, "invalid_request").await;
    }
    s.stop().await;
}

#[tokio::test]
async fn providers_are_managed_through_the_api_with_keys_sealed_at_rest() {
    let up = FakeUpstream::start().await;
    let mut s = TestServer::start_with(|c| c.ai.ollama_url = "http://127.0.0.1:9".into()).await;
    let admin = s.admin_key.clone();
    let list: Value = s.get_json("/api/v1/providers", &admin).await;
    assert_eq!(list[0]["name"], "ollama");
    assert_eq!(list[0]["source"], "config");
    assert_eq!(list[0]["breaker"], "closed");

    let r = s
        .post(
            "/api/v1/providers",
            Some(&admin),
            &json!({"name": "work", "kind": "openai", "base_url": up.url, "api_key": "sk-stored-secret"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let text = r.text().await.unwrap();
    assert!(!text.contains("sk-stored-secret"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["has_api_key"], true);
    assert_eq!(v["source"], "api");

    let hello = json!([{"role": "user", "content": "hello"}]);
    let r = chat(
        &s,
        &admin,
        json!({"model": "work/gpt-4o-mini", "messages": hello}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        up.seen.last_auth.lock().unwrap().as_deref(),
        Some("Bearer sk-stored-secret")
    );
    // At rest the key is sealed, not written out.
    let stored: Vec<u8> = match &s.db {
        zentoria_store::Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT api_key FROM ai_providers WHERE name = 'work'")
                .fetch_one(p)
                .await
                .unwrap()
        }
        zentoria_store::Db::Postgres(p) => {
            sqlx::query_scalar("SELECT api_key FROM ai_providers WHERE name = 'work'")
                .fetch_one(p)
                .await
                .unwrap()
        }
    };
    assert!(!stored.windows(16).any(|w| w == b"sk-stored-secret"));

    // Rotating the key applies at once, and survives a restart.
    let r = s
        .http
        .patch(s.at("/api/v1/providers/work"))
        .header("X-API-Key", &admin)
        .json(&json!({"api_key": "sk-rotated"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.restart_with(|c| c.ai.ollama_url = "http://127.0.0.1:9".into())
        .await;
    let r = chat(
        &s,
        &admin,
        json!({"model": "work/gpt-4o-mini", "messages": hello}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        up.seen.last_auth.lock().unwrap().as_deref(),
        Some("Bearer sk-rotated")
    );

    // Bad requests.
    for (body, status, code) in [
        (
            json!({"name": "a/b", "kind": "openai"}),
            400,
            "invalid_request",
        ),
        (
            json!({"name": "g", "kind": "gemini"}),
            400,
            "invalid_request",
        ),
        (
            json!({"name": "f", "kind": "openai", "base_url": "ftp://x"}),
            400,
            "invalid_request",
        ),
        (json!({"name": "work", "kind": "openai"}), 409, "conflict"),
    ] {
        let r = s.post("/api/v1/providers", Some(&admin), &body).await;
        assert_error(r, status, code).await;
    }
    let del = |name: &str| {
        s.http
            .delete(s.at(&format!("/api/v1/providers/{name}")))
            .header("X-API-Key", &admin)
            .send()
    };
    assert_error(del("ollama").await.unwrap(), 409, "conflict").await;
    assert_error(del("nobody").await.unwrap(), 404, "not_found").await;
    let bob = s.user("bob", Role::User).await;
    let bob_key = s.key_for(&bob, "chat").await;
    assert_error(
        s.get("/api/v1/providers", Some(&bob_key)).await,
        403,
        "forbidden",
    )
    .await;

    assert_eq!(del("work").await.unwrap().status(), 204);
    let r = chat(
        &s,
        &admin,
        json!({"model": "work/gpt-4o-mini", "messages": hello}),
    )
    .await;
    assert_error(r, 400, "invalid_request").await;
    let audit: Value = s.get_json("/api/v1/audit?resource_id=work", &admin).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"provider.created") && actions.contains(&"provider.deleted"),
        "{actions:?}"
    );
    assert!(
        !audit.to_string().contains("sk-"),
        "keys never reach the audit log"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_unreachable_model_falls_back_before_anything_is_streamed() {
    let up = FakeUpstream::start().await;
    let tweak = providers(&up.url);
    let s = TestServer::start_with(move |c| {
        tweak(c);
        c.ai.providers.push(ProviderConfig {
            name: "down".into(),
            kind: "openai".into(),
            base_url: "http://127.0.0.1:9".into(),
            api_key: "sk-x".into(),
        });
        c.ai.fallbacks.insert(
            "down/gpt-4o-mini".into(),
            vec!["nobody/x".into(), "mini".into()],
        );
        c.ai.fallbacks
            .insert("openai/gpt-5-imaginary".into(), vec!["mini".into()]);
    })
    .await;
    let key = s.admin_key.clone();
    let hello = json!([{"role": "user", "content": "hello there"}]);
    let r = chat(
        &s,
        &key,
        json!({"model": "down/gpt-4o-mini", "messages": hello}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["model"], "openai/gpt-4o-mini",
        "the fallback answered: {v}"
    );
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hello there");

    let r = chat(
        &s,
        &key,
        json!({"model": "down/gpt-4o-mini", "messages": hello, "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let first: Value =
        serde_json::from_str(text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(first["model"], "openai/gpt-4o-mini", "{text}");

    // Chat stores which model really answered.
    let r = s
        .post(
            "/api/v1/chat",
            Some(&key),
            &json!({"message": "hi", "model": "down/gpt-4o-mini"}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"]["model"], "openai/gpt-4o-mini", "{v}");

    // A request the upstream refuses (404: no such model) is not retried elsewhere.
    let r = chat(
        &s,
        &key,
        json!({"model": "openai/gpt-5-imaginary", "messages": hello}),
    )
    .await;
    assert_error(r, 502, "upstream_error").await;
    s.stop().await;
}

#[tokio::test]
async fn embeddings_come_from_ollama_and_openai_providers_in_openais_format() {
    use std::sync::atomic::Ordering::SeqCst;
    let up = FakeUpstream::start().await;
    let tweak = providers(&up.url);
    let url = up.url.clone();
    let s = TestServer::start_with(move |c| {
        tweak(c);
        c.ai.ollama_url = url.clone();
        c.ai.providers.push(ProviderConfig {
            name: "claude".into(),
            kind: "anthropic".into(),
            base_url: url,
            api_key: "sk-ant".into(),
        });
    })
    .await;
    let key = s.admin_key.clone();
    let embed = |body: Value| {
        s.http
            .post(s.at("/v1/embeddings"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    for model in ["openai/text-embedding-3-small", "ollama/nomic-embed-text"] {
        let r = embed(json!({"model": model, "input": ["alpha beta", "gamma delta"]}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["model"], model);
        assert_eq!(v["data"][1]["index"], 1);
        let got: Vec<f64> = v["data"][0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let want = crate::upstream::bag_of_words("alpha beta");
        assert_eq!(got.len(), want.len());
        assert!(
            got.iter()
                .zip(&want)
                .all(|(g, w)| (g - f64::from(*w)).abs() < 1e-6)
        );
        // As the provider counted them (a word a token in the fakes), not estimated.
        assert_eq!(v["usage"]["prompt_tokens"], 4, "{model}: {v}");
        assert_eq!(v["usage"]["total_tokens"], 4, "{model}: {v}");
    }
    // base64: little-endian f32s, as OpenAI sends them.
    let v: Value =
        embed(json!({"model": "openai/e", "input": "gamma", "encoding_format": "base64"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let b = base64_decode(v["data"][0]["embedding"].as_str().unwrap());
    let floats: Vec<f32> = b
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, crate::upstream::bag_of_words("gamma"));

    for (body, status) in [
        (json!({"model": "claude/x", "input": "a"}), 400),
        (json!({"model": "openai/e", "input": [1, 2, 3]}), 400),
        (json!({"model": "openai/e", "input": []}), 400),
        (
            json!({"model": "openai/e", "input": "a", "encoding_format": "hex"}),
            400,
        ),
        (
            json!({"model": "openai/e", "input": "a", "dimensions": 8}),
            400,
        ),
        (json!({"model": "nobody/e", "input": "a"}), 400),
    ] {
        let r = embed(body.clone()).await.unwrap();
        assert_error(r, status, "invalid_request").await;
    }
    // The provider's 429 stays a 429 with its Retry-After, as for chat; a 500 is a 502.
    let one = json!({"model": "openai/e", "input": "a"});
    let seen = &up.seen;
    seen.rate_limited.store(true, SeqCst);
    let r = embed(one.clone()).await.unwrap();
    assert_eq!(r.headers()["retry-after"], "7");
    assert_error(r, 429, "rate_limited").await;
    seen.rate_limited.store(false, SeqCst);
    seen.failing.store(true, SeqCst);
    let r = embed(one).await.unwrap();
    let body = assert_error(r, 502, "upstream_error").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openai"),
        "{body}"
    );

    let usage: Value = s.get_json("/api/v1/usage", &key).await;
    let models: Vec<&str> = usage["by_key_and_model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["model"].as_str().unwrap())
        .collect();
    assert!(models.contains(&"ollama/nomic-embed-text"), "{usage}");
    let ollama = usage["by_key_and_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["model"] == "ollama/nomic-embed-text")
        .unwrap();
    assert_eq!(ollama["prompt_tokens"], 4, "{usage}");
    s.stop().await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
