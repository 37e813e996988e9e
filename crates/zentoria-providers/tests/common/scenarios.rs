//! Behaviour every provider client must show, written once and run against each fake.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use zentoria_providers::{
    BreakerState, ChatRequest, ChatStream, FinishReason, Image, ImageDetail, Message,
    ProviderError, ProviderOptions, StreamEvent, TimeoutPhase, ToolCall, Usage,
};

use super::{API_KEY, Completion, Fake, FakeCall, Reply, Wire, fast_options, weather_tool};

/// Generates the shared test suite for one wire protocol.
#[macro_export]
macro_rules! provider_suite {
    ($wire:expr) => {
        $crate::provider_suite!(@tests $wire;
            non_streaming_text, streaming_text_with_usage, streaming_tool_calls,
            non_streaming_tool_calls, unauthorized_names_provider_and_message,
            bad_request_is_not_retried, rate_limit_is_retried_then_succeeds,
            long_retry_after_is_not_waited_for, server_error_retried_until_exhausted,
            broken_stream_is_protocol_error_without_retry, cut_before_first_event_is_error,
            stalled_stream_hits_idle_timeout, silent_upstream_hits_first_token_timeout,
            breaker_opens_and_recovers, dropping_stream_closes_connection, lists_models,
            upstream_error_after_first_token_is_not_retried, connect_error_is_retried_and_reported,
            oversized_response_is_refused, upstream_wait_covers_retries,
            reasoning_comes_before_the_answer, images_reach_the_model_in_its_providers_shape,
        );
    };
    (@tests $wire:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                common::scenarios::$name($wire).await;
            }
        )*
    };
}

pub fn request() -> ChatRequest {
    ChatRequest::new(
        "fake-model",
        vec![Message::system("Be terse."), Message::user("Hi")],
    )
}

pub async fn drain(mut stream: ChatStream) -> (Vec<StreamEvent>, Option<ProviderError>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(e) => {
                assert!(
                    stream.next().await.is_none(),
                    "stream must end after an error"
                );
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

fn delta(text: &str) -> StreamEvent {
    StreamEvent::Delta { text: text.into() }
}

fn usage() -> StreamEvent {
    StreamEvent::Usage(Usage {
        prompt_tokens: 11,
        completion_tokens: 7,
        ..Usage::default()
    })
}

fn done(reason: FinishReason) -> StreamEvent {
    StreamEvent::Done {
        finish_reason: reason,
    }
}

fn weather_calls() -> Vec<FakeCall> {
    vec![
        FakeCall::new("call_w1", "get_weather", &["{\"ci", "ty\": \"Pa", "ris\"}"]),
        FakeCall::new("call_w2", "get_weather", &["{\"city\"", ": \"Ro", "me\"}"]),
    ]
}

/// Ollama has no tool-call ids: the client synthesizes `call_N`.
fn expected_ids(wire: Wire) -> [&'static str; 2] {
    match wire {
        Wire::Ollama => ["call_0", "call_1"],
        _ => ["call_w1", "call_w2"],
    }
}

fn expected_calls(wire: Wire) -> Vec<ToolCall> {
    let ids = expected_ids(wire);
    vec![
        ToolCall {
            id: ids[0].into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Paris"}),
        },
        ToolCall {
            id: ids[1].into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Rome"}),
        },
    ]
}

fn assert_stream_flag(fake: &Fake, stream: bool) {
    let body = fake.last_body();
    assert_eq!(body["stream"], json!(stream), "{body}");
    if fake.state.wire == Wire::OpenAi {
        let expected = if stream {
            json!({"include_usage": true})
        } else {
            Value::Null
        };
        assert_eq!(body["stream_options"], expected);
    }
}

pub async fn non_streaming_text(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::Complete(Completion::text(&["Hi", " there"])));
    let response = fake
        .provider(fast_options())
        .chat(&request())
        .await
        .unwrap();
    assert_eq!(response.message.content, "Hi there");
    assert!(response.message.tool_calls.is_empty());
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Some(Usage {
            prompt_tokens: 11,
            completion_tokens: 7,
            ..Usage::default()
        })
    );
    assert_eq!(response.model, "fake-model");
    assert_stream_flag(&fake, false);
}

pub async fn streaming_text_with_usage(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::Complete(Completion::text(&[
        "Hel",
        "lo ",
        "wörld 🎉",
    ])));
    let provider = fake.provider(fast_options());
    let stream = provider.chat_stream(&request()).await.unwrap();
    let (events, error) = drain(stream).await;
    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            delta("Hel"),
            delta("lo "),
            delta("wörld 🎉"),
            usage(),
            done(FinishReason::Stop)
        ]
    );
    assert_stream_flag(&fake, true);

    // A length-limited answer maps to FinishReason::Length.
    let length = match wire {
        Wire::Anthropic => "max_tokens",
        _ => "length",
    };
    fake.push(Reply::Complete(Completion::text(&["cut"]).finish(length)));
    let response = provider
        .chat_stream(&request())
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(response.message.content, "cut");
    assert_eq!(response.finish_reason, FinishReason::Length);
}

pub async fn streaming_tool_calls(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::Complete(Completion::tools(
        &["Checking."],
        weather_calls(),
    )));
    let mut req = request();
    req.tools = vec![weather_tool()];
    let stream = fake
        .provider(fast_options())
        .chat_stream(&req)
        .await
        .unwrap();
    let (events, error) = drain(stream).await;
    assert_eq!(error, None);
    let mut expected = vec![delta("Checking.")];
    expected.extend(expected_calls(wire).into_iter().map(StreamEvent::ToolCall));
    expected.extend([usage(), done(FinishReason::ToolCalls)]);
    assert_eq!(events, expected);
    // The tool definition reached the upstream in its native shape.
    let body = fake.last_body();
    let tool = &body["tools"][0];
    match wire {
        Wire::Anthropic => {
            assert_eq!(tool["name"], "get_weather");
            assert_eq!(tool["input_schema"]["required"], json!(["city"]));
        }
        _ => {
            assert_eq!(tool["type"], "function");
            assert_eq!(tool["function"]["name"], "get_weather");
            assert_eq!(tool["function"]["parameters"]["required"], json!(["city"]));
        }
    }
}

pub async fn non_streaming_tool_calls(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::Complete(Completion::tools(&[], weather_calls())));
    let response = fake
        .provider(fast_options())
        .chat(&request())
        .await
        .unwrap();
    assert_eq!(response.message.content, "");
    assert_eq!(response.message.tool_calls, expected_calls(wire));
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
}

pub async fn unauthorized_names_provider_and_message(wire: Wire) {
    let fake = Fake::start(wire).await;
    let provider = match wire {
        // Ollama has no auth of its own; a reverse proxy in front of it answers 401.
        Wire::Ollama => {
            fake.push(Reply::error(401, "unauthorized", "unauthorized: bad token"));
            fake.provider(fast_options())
        }
        _ => fake.provider_with_key(fast_options(), Some("sk-wrong-key-987654321")),
    };
    let err = provider.chat(&request()).await.unwrap_err();
    let ProviderError::Http {
        provider: name,
        status,
        message,
        ..
    } = &err
    else {
        panic!("expected an HTTP error, got {err:?}");
    };
    assert_eq!(*status, 401);
    assert_eq!(name, provider.name());
    let expected = match wire {
        Wire::OpenAi => "Incorrect API key provided",
        Wire::Anthropic => "invalid x-api-key",
        Wire::Ollama => "unauthorized: bad token",
    };
    assert!(message.contains(expected), "{message}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}: HTTP 401", provider.name())),
        "{shown}"
    );
    assert!(!shown.contains("sk-wrong-key-987654321") && !format!("{err:?}").contains(API_KEY));
    assert!(!err.is_retryable());
    assert_eq!(fake.chat_requests().len(), 1, "401 must not be retried");
}

pub async fn bad_request_is_not_retried(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::error(
        400,
        "invalid_request_error",
        "max_tokens: 999999 > 8192, the maximum",
    ));
    let provider = fake.provider(fast_options());
    let err = provider.chat_stream(&request()).await.unwrap_err();
    match &err {
        ProviderError::Http {
            status: 400,
            message,
            kind,
            ..
        } => {
            assert_eq!(message, "max_tokens: 999999 > 8192, the maximum");
            if wire != Wire::Ollama {
                assert_eq!(kind.as_deref(), Some("invalid_request_error"));
            }
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.provider(), provider.name());
    assert_eq!(fake.chat_requests().len(), 1);
    // Client errors do not count against the breaker.
    assert_eq!(provider.breaker_state(), BreakerState::Closed);
}

pub async fn rate_limit_is_retried_then_succeeds(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::error(429, "rate_limit_error", "slow down").retry_after("0"));
    fake.push(Reply::error(503, "overloaded_error", "busy").retry_after("0"));
    let stream = fake
        .provider(fast_options())
        .chat_stream(&request())
        .await
        .unwrap();
    let (events, error) = drain(stream).await;
    assert_eq!(error, None);
    assert_eq!(events[0], delta("Hello"));
    assert_eq!(fake.chat_requests().len(), 3);
}

pub async fn long_retry_after_is_not_waited_for(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::error(429, "rate_limit_error", "quota exceeded").retry_after("60"));
    let err = fake
        .provider(fast_options())
        .chat(&request())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            provider: wire_name(wire).into(),
            retry_after: Some(Duration::from_secs(60)),
            message: "quota exceeded".into(),
        }
    );
    assert!(err.is_retryable());
    assert_eq!(fake.chat_requests().len(), 1);
}

pub async fn server_error_retried_until_exhausted(wire: Wire) {
    let fake = Fake::start(wire).await;
    for _ in 0..3 {
        fake.push(Reply::error(500, "api_error", "internal failure"));
    }
    fake.push(Reply::Complete(Completion::text(&["too late"])));
    let err = fake
        .provider(fast_options())
        .chat_stream(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Http { status: 500, message, .. } if message == "internal failure"),
        "{err:?}"
    );
    assert_eq!(fake.chat_requests().len(), 3, "1 attempt + max_retries (2)");
}

pub async fn broken_stream_is_protocol_error_without_retry(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::Cut {
        completion: Completion::text(&["one ", "two ", "three"]),
        before_text_piece: 1,
        partial_next: true,
    });
    let stream = fake
        .provider(fast_options())
        .chat_stream(&request())
        .await
        .unwrap();
    let (events, error) = drain(stream).await;
    assert_eq!(events, vec![delta("one ")]);
    let error = error.expect("a broken stream must not end silently");
    assert!(matches!(error, ProviderError::Protocol { .. }), "{error:?}");
    assert!(error.to_string().starts_with(wire_name(wire)));
    assert_eq!(
        fake.chat_requests().len(),
        1,
        "never retry after the first token"
    );
}

pub async fn cut_before_first_event_is_error(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::Cut {
        completion: Completion::text(&["one"]),
        before_text_piece: 0,
        partial_next: false,
    });
    let err = fake
        .provider(fast_options())
        .chat_stream(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Protocol { .. }), "{err:?}");
}

pub async fn stalled_stream_hits_idle_timeout(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::Stall {
        completion: Completion::text(&["first", "never"]),
        before_text_piece: 1,
    });
    let options = ProviderOptions {
        idle_timeout: Duration::from_millis(300),
        ..fast_options()
    };
    let stream = fake
        .provider(options)
        .chat_stream(&request())
        .await
        .unwrap();
    let (events, error) = drain(stream).await;
    assert_eq!(events, vec![delta("first")]);
    match error {
        Some(ProviderError::Timeout {
            phase: TimeoutPhase::Idle,
            after,
            ..
        }) => assert_eq!(after, Duration::from_millis(300)),
        other => panic!("expected idle timeout, got {other:?}"),
    }
    fake.wait_disconnect().await;
    assert_eq!(fake.chat_requests().len(), 1);
}

pub async fn silent_upstream_hits_first_token_timeout(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::Stall {
        completion: Completion::text(&["never"]),
        before_text_piece: 0,
    });
    let options = ProviderOptions {
        first_token_timeout: Duration::from_millis(300),
        ..fast_options()
    };
    let err = fake
        .provider(options)
        .chat_stream(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Timeout {
                phase: TimeoutPhase::FirstToken,
                ..
            }
        ),
        "{err:?}"
    );
    fake.wait_disconnect().await;
}

pub async fn breaker_opens_and_recovers(wire: Wire) {
    let fake = Fake::start(wire).await;
    let options = ProviderOptions {
        max_retries: 0,
        breaker_threshold: 2,
        breaker_cooldown: Duration::from_millis(300),
        ..fast_options()
    };
    let provider = fake.provider(options);
    for _ in 0..2 {
        fake.push(Reply::error(502, "api_error", "bad gateway"));
        let err = provider.chat(&request()).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Http { status: 502, .. }),
            "{err:?}"
        );
    }
    assert_eq!(provider.breaker_state(), BreakerState::Open);
    let err = provider.chat_stream(&request()).await.unwrap_err();
    match &err {
        ProviderError::CircuitOpen { failures, .. } => assert_eq!(*failures, 2),
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert!(err.to_string().contains("circuit breaker open"), "{err}");
    assert_eq!(fake.chat_requests().len(), 2, "an open breaker fails fast");

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(provider.breaker_state(), BreakerState::HalfOpen);
    // A failing trial re-opens it.
    fake.push(Reply::error(500, "api_error", "still down"));
    provider.chat(&request()).await.unwrap_err();
    assert_eq!(provider.breaker_state(), BreakerState::Open);

    tokio::time::sleep(Duration::from_millis(400)).await;
    // A successful streamed trial closes it.
    let (_, error) = drain(provider.chat_stream(&request()).await.unwrap()).await;
    assert_eq!(error, None);
    assert_eq!(provider.breaker_state(), BreakerState::Closed);
    assert_eq!(fake.chat_requests().len(), 4);
}

pub async fn dropping_stream_closes_connection(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::Stall {
        completion: Completion::text(&["first", "second"]),
        before_text_piece: 1,
    });
    let mut stream = fake
        .provider(fast_options())
        .chat_stream(&request())
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), delta("first"));
    assert_eq!(
        fake.state
            .disconnects
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    drop(stream);
    fake.wait_disconnect().await;
}

pub async fn lists_models(wire: Wire) {
    let fake = Fake::start(wire).await;
    let models = fake.provider(fast_options()).models().await.unwrap();
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    match wire {
        Wire::Ollama => assert_eq!(
            ids,
            [
                "model-alpha:latest",
                "model-beta:latest",
                "model-gamma:latest"
            ]
        ),
        _ => assert_eq!(ids, ["model-alpha", "model-beta", "model-gamma"]),
    }
    assert!(models.iter().all(|m| m.provider == wire_name(wire)));
    if wire == Wire::OpenAi {
        assert_eq!(models[0].owned_by.as_deref(), Some("fake-org"));
    }
    if wire == Wire::Anthropic {
        // Two pages: the second asked for models after the first page's last id.
        let queries: Vec<_> = fake
            .requests()
            .into_iter()
            .filter_map(|r| r.query)
            .collect();
        assert_eq!(queries.len(), 2);
        assert!(queries[1].contains("after_id=model-beta"), "{queries:?}");
    }
}

pub async fn upstream_error_after_first_token_is_not_retried(wire: Wire) {
    let fake = Fake::start(wire).await;
    fake.push(Reply::StreamError {
        completion: Completion::text(&["partial", "rest"]),
        before_text_piece: 1,
        kind: "overloaded_error".into(),
        message: "Overloaded".into(),
    });
    let stream = fake
        .provider(fast_options())
        .chat_stream(&request())
        .await
        .unwrap();
    let (events, error) = drain(stream).await;
    assert_eq!(events, vec![delta("partial")]);
    let error = error.unwrap();
    assert!(error.to_string().contains("Overloaded"), "{error}");
    assert_eq!(fake.chat_requests().len(), 1);
}

pub async fn connect_error_is_retried_and_reported(wire: Wire) {
    // Bind then drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let fake = Fake {
        base_url: format!("http://127.0.0.1:{port}"),
        state: Fake::start(wire).await.state,
    };
    let provider = fake.provider(fast_options());
    let err = provider.chat_stream(&request()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .starts_with(&format!("{}: connection failed", wire_name(wire)))
    );
    assert!(!format!("{err:?}").contains(API_KEY));
}

pub fn wire_name(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "openai",
        Wire::Anthropic => "anthropic",
        Wire::Ollama => "ollama",
    }
}

pub async fn oversized_response_is_refused(wire: Wire) {
    let fake = Fake::start(wire).await;
    let big = "x".repeat(100 * 1024);
    fake.push(Reply::Complete(Completion::text(&[big.as_str()])));
    let options = ProviderOptions {
        max_response_bytes: 64 * 1024,
        ..fast_options()
    };
    let provider = fake.provider(options.clone());
    let error = provider.chat(&request()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Protocol { .. }), "{error:?}");
    assert!(error.to_string().contains("max_response_bytes"), "{error}");
    assert_eq!(
        fake.chat_requests().len(),
        1,
        "a refused body is not retried"
    );

    // The same answer streamed is bounded per line, not as a whole.
    fake.push(Reply::Complete(Completion::text(&[big.as_str()])));
    let (events, error) = drain(provider.chat_stream(&request()).await.unwrap()).await;
    assert_eq!(error, None);
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, big);
}

pub async fn upstream_wait_covers_retries(wire: Wire) {
    let fake = Fake::start(wire).await;
    // A 503 asking for 150 ms, then the answer: the wait includes the pause.
    fake.push(Reply::error(503, "overloaded_error", "busy").retry_after("0.15"));
    fake.push(Reply::Complete(Completion::text(&["Hi"])));
    let provider = fake.provider(fast_options());
    let response = provider.chat(&request()).await.unwrap();
    assert_eq!(response.message.content, "Hi");
    assert!(
        response.upstream_wait >= Duration::from_millis(150),
        "{:?}",
        response.upstream_wait
    );

    fake.push(Reply::error(503, "overloaded_error", "busy").retry_after("0.15"));
    fake.push(Reply::Complete(Completion::text(&["Hi"])));
    let stream = provider.chat_stream(&request()).await.unwrap();
    let waited = stream.upstream_wait();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    let (events, error) = drain(stream).await;
    assert_eq!(error, None);
    assert!(events.iter().any(|e| matches!(e, StreamEvent::Done { .. })));
}

/// A reasoning model's thoughts, from each provider's own field, come before its answer,
/// streamed piece by piece and whole.
pub async fn reasoning_comes_before_the_answer(wire: Wire) {
    let fake = Fake::start(wire).await;
    let provider = fake.provider(fast_options());
    let answer = || Completion::text(&["4."]).thinking(&["Two and ", "two."]);
    fake.push(Reply::Complete(answer()));
    let (events, error) = drain(provider.chat_stream(&request()).await.unwrap()).await;
    assert_eq!(error, None);
    let mut expected = vec![
        StreamEvent::Reasoning {
            text: "Two and ".into(),
        },
        StreamEvent::Reasoning {
            text: "two.".into(),
        },
    ];
    let blocks = if wire == Wire::Anthropic {
        vec![zentoria_providers::ThinkingBlock::Thinking {
            thinking: "Two and two.".into(),
            signature: super::render::SIGNATURE.into(),
        }]
    } else {
        Vec::new()
    };
    expected.extend(blocks.iter().cloned().map(StreamEvent::ThinkingBlock));
    expected.extend([delta("4."), usage(), done(FinishReason::Stop)]);
    assert_eq!(events, expected);

    fake.push(Reply::Complete(answer()));
    let whole = provider.chat(&request()).await.unwrap();
    assert_eq!(whole.message.reasoning, "Two and two.");
    assert_eq!(whole.message.content, "4.");
    assert_eq!(whole.message.thinking_blocks, blocks);
}

/// A 1×1 PNG, base64.
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// Images reach each provider in its own shape, in their place among the text where the
/// provider has one; a web address goes to those that fetch one and is refused, before
/// anything is sent, by Ollama, which does not.
pub async fn images_reach_the_model_in_its_providers_shape(wire: Wire) {
    let fake = Fake::start(wire).await;
    let provider = fake.provider(fast_options());
    let data_url = format!("data:image/png;base64,{PNG}");
    let mut question = Message::user("Which is brighter, or are they the same?");
    question.images = vec![
        Image {
            detail: Some(ImageDetail::Low),
            ..Image::new(data_url.clone())
        },
        Image {
            at: 19,
            ..Image::new(data_url.clone())
        },
    ];
    let request = ChatRequest::new("fake-model", vec![Message::system("Be terse."), question]);
    let answer = provider.chat(&request).await.unwrap();
    assert_eq!(answer.message.content, "Hello, world!");
    let (events, error) = drain(provider.chat_stream(&request).await.unwrap()).await;
    assert_eq!(error, None);
    assert!(events.contains(&delta("Hello")), "{events:?}");
    let sent = fake.last_body()["messages"].clone();
    let expected = match wire {
        Wire::OpenAi => json!([
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}},
                {"type": "text", "text": "Which is brighter, "},
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "text", "text": "or are they the same?"},
            ]},
        ]),
        Wire::Anthropic => json!([
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "text", "text": "Which is brighter, "},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "text", "text": "or are they the same?"},
            ]},
        ]),
        Wire::Ollama => json!([
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Which is brighter, or are they the same?", "images": [PNG, PNG]},
        ]),
    };
    assert_eq!(sent, expected);

    let mut look = Message::user("What is this?");
    look.images = vec![Image {
        at: 13,
        ..Image::new("https://example.com/cat.png")
    }];
    let request = ChatRequest::new("fake-model", vec![look]);
    let sent_before = fake.chat_requests().len();
    match wire {
        Wire::Ollama => {
            let err = provider.chat(&request).await.unwrap_err();
            assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
            assert!(err.to_string().contains("data: URL"), "{err}");
            assert_eq!(fake.chat_requests().len(), sent_before, "nothing was sent");
        }
        Wire::OpenAi | Wire::Anthropic => {
            provider.chat(&request).await.unwrap();
            let image = &fake.last_body()["messages"][0]["content"][1];
            let expected = if wire == Wire::OpenAi {
                json!({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}})
            } else {
                json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}})
            };
            assert_eq!(image, &expected);
        }
    }
}
