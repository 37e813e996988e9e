//! Anthropic Messages client against a fake `/v1/messages` server.

mod common;

use common::scenarios::{drain, request};
use common::{Completion, Fake, FakeCall, Reply, Wire, fast_options};
use serde_json::json;
use zentoria_providers::{
    ANTHROPIC_VERSION, AnthropicClient, CacheMark, CachePoint, CacheTtl, ChatRequest, ClientConfig,
    FinishReason, Message, Provider, ProviderError, ResponseFormat, StreamEvent, ToolCall,
};

provider_suite!(Wire::Anthropic);

#[tokio::test]
async fn tool_result_round_trip_request_shape() {
    let fake = Fake::start(Wire::Anthropic).await;
    let req = ChatRequest::new(
        "fake-model",
        vec![
            Message::system("Be terse."),
            Message::user("Weather in Paris and Rome?"),
            Message::assistant_tool_calls(
                "Checking both.",
                vec![
                    ToolCall {
                        id: "toolu_1".into(),
                        name: "get_weather".into(),
                        arguments: json!({"city": "Paris"}),
                    },
                    ToolCall {
                        id: "toolu_2".into(),
                        name: "get_weather".into(),
                        arguments: json!({"city": "Rome"}),
                    },
                ],
            ),
            Message::tool_result("toolu_1", "21C"),
            Message::tool_result("toolu_2", "18C"),
        ],
    );
    let stream = fake
        .provider(fast_options())
        .chat_stream(&req)
        .await
        .unwrap();
    assert_eq!(drain(stream).await.1, None);
    let recorded = &fake.chat_requests()[0];
    assert_eq!(recorded.headers["x-api-key"], common::API_KEY);
    assert_eq!(recorded.headers["anthropic-version"], ANTHROPIC_VERSION);
    let body = &recorded.body;
    assert_eq!(body["system"], json!("Be terse."));
    assert_eq!(body["max_tokens"], json!(4096));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "18C"},
            ]},
        ])
    );
}

#[tokio::test]
async fn stop_sequences_and_max_tokens() {
    let fake = Fake::start(Wire::Anthropic).await;
    let client = AnthropicClient::new(
        ClientConfig::new()
            .with_base_url(&fake.base_url)
            .with_api_key(common::API_KEY)
            .with_options(fast_options()),
    )
    .unwrap()
    .with_default_max_tokens(1000);
    let provider = Provider::from(client);
    let mut req = request();
    req.stop = vec!["\n\nHuman:".into()];
    req.temperature = Some(0.0);
    provider.chat(&req).await.unwrap();
    let body = fake.last_body();
    assert_eq!(body["max_tokens"], json!(1000));
    assert_eq!(body["stop_sequences"], json!(["\n\nHuman:"]));
    assert_eq!(body["temperature"], json!(0.0));
    req.max_tokens = Some(50);
    provider.chat(&req).await.unwrap();
    assert_eq!(fake.last_body()["max_tokens"], json!(50));
}

#[tokio::test]
async fn overloaded_event_before_first_token_is_retried() {
    let fake = Fake::start(Wire::Anthropic).await;
    fake.push(Reply::StreamError {
        completion: Completion::text(&["x"]),
        before_text_piece: 0,
        kind: "overloaded_error".into(),
        message: "Overloaded".into(),
    });
    let stream = fake
        .provider(fast_options())
        .chat_stream(&request())
        .await
        .unwrap();
    let (events, error) = drain(stream).await;
    assert_eq!(error, None);
    assert_eq!(
        events[0],
        StreamEvent::Delta {
            text: "Hello".into()
        }
    );
    assert_eq!(fake.chat_requests().len(), 2);
}

#[tokio::test]
async fn http_529_overloaded_is_retried_then_reported() {
    let fake = Fake::start(Wire::Anthropic).await;
    for _ in 0..3 {
        fake.push(Reply::error(529, "overloaded_error", "Overloaded"));
    }
    let err = fake
        .provider(fast_options())
        .chat(&request())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "anthropic: HTTP 529 (overloaded_error): Overloaded"
    );
    assert!(matches!(err, ProviderError::Http { status: 529, .. }));
    assert_eq!(fake.chat_requests().len(), 3);
}

/// A JSON answer is asked of Anthropic through a forced tool whose input schema is the
/// answer's; the call's input comes back as the answer's text, streamed and whole.
#[tokio::test]
async fn json_answers_come_through_a_forced_tool_as_text() {
    let fake = Fake::start(Wire::Anthropic).await;
    let provider = fake.provider(fast_options());
    let mut req = request();
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    req.response_format = Some(Box::new(ResponseFormat::JsonSchema {
        name: "city".into(),
        description: None,
        schema: schema.clone(),
        strict: Some(true),
    }));
    let answer = || {
        Completion::tools(
            &[],
            vec![FakeCall::new(
                "toolu_1",
                "city",
                &["{\"city\": ", "\"Paris\"}"],
            )],
        )
    };
    fake.push(Reply::Complete(answer()));
    let (events, error) = drain(provider.chat_stream(&req).await.unwrap()).await;
    assert_eq!(error, None);
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "{\"city\": \"Paris\"}");
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::ToolCall(_))));
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Done {
            finish_reason: FinishReason::Stop
        })
    );
    let body = fake.last_body();
    assert_eq!(
        body["tools"],
        json!([{"name": "city", "description": "Give your whole answer as this tool's input.", "input_schema": schema}])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "city", "disable_parallel_tool_use": true})
    );

    fake.push(Reply::Complete(answer()));
    let whole = provider.chat(&req).await.unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&whole.message.content).unwrap();
    assert_eq!(parsed, json!({"city": "Paris"}));
    assert!(whole.message.tool_calls.is_empty());
    assert_eq!(whole.finish_reason, FinishReason::Stop);
}

/// What the Messages API has no field for is refused before anything is sent.
#[tokio::test]
async fn what_anthropic_cannot_do_is_refused_without_a_request() {
    let fake = Fake::start(Wire::Anthropic).await;
    let provider = fake.provider(fast_options());
    let mut req = request();
    req.seed = Some(7);
    let err = provider.chat(&req).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("no seed"), "{err}");
    let Err(err) = provider.chat_stream(&req).await else {
        panic!("a stream was opened")
    };
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err}");
    assert!(fake.chat_requests().is_empty());
}

/// With `reasoning_effort`, Claude thinks within a budget; a turn that thought and called a
/// tool goes back with its signed thinking first, as the API requires to continue the loop.
#[tokio::test]
async fn a_tool_loop_with_thinking_sends_the_signed_thinking_back() {
    let fake = Fake::start(Wire::Anthropic).await;
    let provider = fake.provider(fast_options());
    let mut req = ChatRequest::new("fake-model", vec![Message::user("weather in Paris?")]);
    req.tools = vec![common::weather_tool()];
    req.reasoning_effort = Some("low".into());
    fake.push(Reply::Complete(
        Completion::tools(
            &[],
            vec![FakeCall::new(
                "toolu_1",
                "get_weather",
                &["{\"city\": \"Paris\"}"],
            )],
        )
        .thinking(&["Need ", "the weather."]),
    ));
    let turn = provider
        .chat_stream(&req)
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(turn.message.reasoning, "Need the weather.");
    assert_eq!(turn.message.tool_calls.len(), 1);
    let body = fake.last_body();
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert_eq!(
        body["max_tokens"],
        json!(AnthropicClient::DEFAULT_MAX_TOKENS + 1024)
    );

    req.messages.push(turn.message.clone());
    req.messages.push(Message::tool_result("toolu_1", "sunny"));
    fake.push(Reply::Complete(Completion::text(&["Sunny."])));
    let answer = provider.chat(&req).await.unwrap();
    assert_eq!(answer.message.content, "Sunny.");
    let sent = &fake.last_body()["messages"][1]["content"];
    assert_eq!(
        sent[0],
        json!({"type": "thinking", "thinking": "Need the weather.", "signature": common::render::SIGNATURE})
    );
    assert_eq!(sent[1]["type"], "tool_use");

    // Without its thinking the turn is refused, as Anthropic refuses it.
    let mut bare = req.clone();
    bare.messages[1].thinking_blocks.clear();
    let err = provider.chat(&bare).await.unwrap_err();
    assert!(
        err.to_string().contains("must start with a thinking block"),
        "{err}"
    );
}

#[tokio::test]
async fn images_claude_cannot_read_are_refused_before_sending() {
    let fake = Fake::start(Wire::Anthropic).await;
    let provider = fake.provider(fast_options());
    let mut question = Message::user("What is this?");
    question.images = vec![zentoria_providers::Image::new("data:image/bmp;base64,Qk0=")];
    let err = provider
        .chat(&ChatRequest::new("fake-model", vec![question]))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("\"image/bmp\""), "{err}");
    assert!(fake.chat_requests().is_empty());

    // A media type in capitals is Claude's own, written as it takes it; an image that is not
    // what its type says is Claude's to refuse, and the refusal comes back as it said it.
    let png = common::scenarios::PNG;
    let mut question = Message::user("");
    question.images = vec![zentoria_providers::Image::new(format!(
        "data:IMAGE/PNG;base64,{png}"
    ))];
    provider
        .chat(&ChatRequest::new("fake-model", vec![question.clone()]))
        .await
        .unwrap();
    assert_eq!(
        fake.last_body()["messages"][0]["content"],
        json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}])
    );
    question.images[0].url = format!("data:image/jpeg;base64,{png}");
    let err = provider
        .chat(&ChatRequest::new("fake-model", vec![question]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Image does not match the provided media type image/jpeg"),
        "{err}"
    );
}

#[tokio::test]
async fn cache_breakpoints_become_cache_control_on_the_last_block_of_their_turn() {
    let fake = Fake::start(Wire::Anthropic).await;
    let provider = fake.provider(fast_options());
    let cached = |mut m: Message, ttl| {
        m.cache = Some(CacheMark::end(ttl));
        m
    };
    let asked = ChatRequest::new(
        "fake-model",
        vec![
            cached(Message::system("A long manual."), CacheTtl::OneHour),
            Message::system("Be terse."),
            cached(Message::user("What does page 3 say?"), CacheTtl::Default),
            Message::assistant("That it rains."),
            Message::user("And page 4?"),
        ],
    );
    provider.chat(&asked).await.unwrap();
    let body = fake.last_body();
    assert_eq!(
        body["system"],
        json!([
            {"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "Be terse."},
        ])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "What does page 3 say?", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "That it rains."}]},
            {"role": "user", "content": [{"type": "text", "text": "And page 4?"}]},
        ])
    );
    // A breakpoint inside a turn: the text is cut there, so that what follows (the question)
    // is not part of the cached prefix; one after an image follows the image.
    let mut asked = Message::user("A long report. What does it say?");
    asked.images = vec![zentoria_providers::Image::new(
        "https://example.com/chart.png",
    )];
    asked.images[0].at = 15;
    asked.cache = Some(CacheMark {
        ttl: CacheTtl::Default,
        at: Some(CachePoint {
            text: 15,
            images: 0,
        }),
    });
    let mut system = Message::system("A long manual. Today is Monday.");
    system.cache = Some(CacheMark {
        ttl: CacheTtl::OneHour,
        at: Some(CachePoint {
            text: 15,
            images: 0,
        }),
    });
    provider
        .chat(&ChatRequest::new("fake-model", vec![system, asked.clone()]))
        .await
        .unwrap();
    let body = fake.last_body();
    assert_eq!(
        body["system"],
        json!([
            {"type": "text", "text": "A long manual. ", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "Today is Monday."},
        ])
    );
    let chart =
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/chart.png"}});
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "text", "text": "A long report. ", "cache_control": {"type": "ephemeral"}},
            chart,
            {"type": "text", "text": "What does it say?"},
        ])
    );
    asked.cache = Some(CacheMark {
        ttl: CacheTtl::Default,
        at: Some(CachePoint {
            text: 15,
            images: 1,
        }),
    });
    provider
        .chat(&ChatRequest::new("fake-model", vec![asked]))
        .await
        .unwrap();
    let mut marked = chart.clone();
    marked["cache_control"] = json!({"type": "ephemeral"});
    assert_eq!(
        fake.last_body()["messages"][0]["content"],
        json!([
            {"type": "text", "text": "A long report. "},
            marked,
            {"type": "text", "text": "What does it say?"},
        ])
    );

    // Without a breakpoint the system prompt stays one string.
    provider.chat(&request()).await.unwrap();
    assert_eq!(fake.last_body()["system"], json!("Be terse."));

    // More breakpoints than the API takes: refused before sending.
    let sent = fake.chat_requests().len();
    let many = ChatRequest::new(
        "fake-model",
        (0..5)
            .map(|i| cached(Message::user(format!("part {i}")), CacheTtl::Default))
            .collect(),
    );
    let err = provider.chat(&many).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("at most 4"), "{err}");
    assert_eq!(fake.chat_requests().len(), sent);
}
