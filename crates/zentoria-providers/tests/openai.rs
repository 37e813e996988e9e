//! OpenAI-compatible client against a fake `/v1/chat/completions` server.

mod common;

use common::scenarios::{drain, request};
use common::{Completion, Fake, Reply, Wire, fast_options};
use serde_json::json;
use zentoria_providers::{
    ChatRequest, ClientConfig, Message, OpenAiClient, Provider, StreamEvent, ToolCall,
};

provider_suite!(Wire::OpenAi);

#[tokio::test]
async fn tool_result_round_trip_request_shape() {
    let fake = Fake::start(Wire::OpenAi).await;
    let req = ChatRequest::new(
        "fake-model",
        vec![
            Message::system("Be terse."),
            Message::user("Weather in Paris?"),
            Message::assistant_tool_calls(
                "",
                vec![ToolCall {
                    id: "call_w1".into(),
                    name: "get_weather".into(),
                    arguments: json!({"city": "Paris"}),
                }],
            ),
            Message::tool_result("call_w1", "{\"temp_c\": 21}"),
        ],
    );
    let response = fake.provider(fast_options()).chat(&req).await.unwrap();
    assert_eq!(response.message.content, "Hello, world!");
    let body = fake.last_body();
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_w1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "content": "{\"temp_c\": 21}", "tool_call_id": "call_w1"},
        ])
    );
    let auth = fake.chat_requests()[0].headers["authorization"].clone();
    assert_eq!(auth, format!("Bearer {}", common::API_KEY));
}

#[tokio::test]
async fn sampling_parameters_are_sent() {
    let fake = Fake::start(Wire::OpenAi).await;
    let mut req = request();
    req.temperature = Some(0.5);
    req.top_p = Some(0.9);
    req.max_tokens = Some(64);
    req.stop = vec!["END".into()];
    fake.provider(fast_options()).chat(&req).await.unwrap();
    let body = fake.last_body();
    assert_eq!(body["temperature"], json!(0.5));
    assert_eq!(body["top_p"], json!(0.9));
    assert_eq!(body["max_tokens"], json!(64));
    assert_eq!(body["stop"], json!(["END"]));
}

#[tokio::test]
async fn base_url_with_v1_suffix_and_custom_name() {
    let fake = Fake::start(Wire::OpenAi).await;
    let client = OpenAiClient::new(
        ClientConfig::new()
            .with_name("local-vllm")
            .with_base_url(format!("{}/v1/", fake.base_url))
            .with_api_key(common::API_KEY)
            .with_options(fast_options()),
    )
    .unwrap();
    let provider = Provider::from(client);
    assert_eq!(provider.name(), "local-vllm");
    provider.chat(&request()).await.unwrap();
    assert_eq!(fake.chat_requests()[0].path, "/v1/chat/completions");
    let models = provider.models().await.unwrap();
    assert_eq!(models[0].provider, "local-vllm");
}

#[tokio::test]
async fn in_stream_error_before_first_token_is_retried() {
    let fake = Fake::start(Wire::OpenAi).await;
    fake.push(Reply::StreamError {
        completion: Completion::text(&["x"]),
        before_text_piece: 0,
        kind: "server_error".into(),
        message: "The server had an error while processing your request.".into(),
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
async fn api_key_echoed_by_upstream_is_scrubbed() {
    let fake = Fake::start(Wire::OpenAi).await;
    fake.push(Reply::error(
        400,
        "invalid_request_error",
        &format!("key {} is not allowed to use this model", common::API_KEY),
    ));
    let provider = fake.provider(fast_options());
    let err = provider.chat(&request()).await.unwrap_err();
    let shown = format!("{err} {err:?} {provider:?}");
    assert!(!shown.contains(common::API_KEY), "{shown}");
    assert!(
        err.to_string().contains("key [redacted] is not allowed"),
        "{err}"
    );
}
