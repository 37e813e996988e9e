//! Ollama native client against a fake `/api/chat` server.

mod common;

use common::scenarios::request;
use common::{Fake, Reply, Wire, fast_options};
use serde_json::json;
use zentoria_providers::{
    ChatRequest, ClientConfig, Message, OllamaClient, ProviderError, ResponseFormat, ToolCall,
    ToolChoice,
};

provider_suite!(Wire::Ollama);

#[tokio::test]
async fn tool_result_round_trip_request_shape() {
    let fake = Fake::start(Wire::Ollama).await;
    let mut req = ChatRequest::new(
        "llama3.2",
        vec![
            Message::system("Be terse."),
            Message::user("Weather in Paris?"),
            Message::assistant_tool_calls(
                "",
                vec![ToolCall {
                    id: "call_0".into(),
                    name: "get_weather".into(),
                    arguments: json!({"city": "Paris"}),
                }],
            ),
            Message::tool_result("call_0", "21C"),
        ],
    );
    req.max_tokens = Some(128);
    req.temperature = Some(0.25);
    fake.provider(fast_options()).chat(&req).await.unwrap();
    let recorded = &fake.chat_requests()[0];
    assert!(recorded.headers.get("authorization").is_some());
    let body = &recorded.body;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "",
             "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "21C", "tool_name": "get_weather"},
        ])
    );
    assert_eq!(
        body["options"],
        json!({"temperature": 0.25, "num_predict": 128})
    );
    assert_eq!(body["stream"], json!(false));
}

#[tokio::test]
async fn no_key_sends_no_authorization_header() {
    let fake = Fake::start(Wire::Ollama).await;
    let client = OllamaClient::new(
        ClientConfig::new()
            .with_base_url(&fake.base_url)
            .with_options(fast_options()),
    )
    .unwrap();
    client.chat(&request()).await.unwrap();
    assert!(
        fake.chat_requests()[0]
            .headers
            .get("authorization")
            .is_none()
    );
}

#[tokio::test]
async fn model_not_found_message_is_surfaced() {
    let fake = Fake::start(Wire::Ollama).await;
    fake.push(Reply::error(
        404,
        "not_found",
        "model \"nope\" not found, try pulling it first",
    ));
    let err = fake
        .provider(fast_options())
        .chat(&request())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Http {
            provider: "ollama".into(),
            status: 404,
            kind: None,
            message: "model \"nope\" not found, try pulling it first".into(),
            retry_after: None,
        }
    );
    assert_eq!(
        err.to_string(),
        "ollama: HTTP 404: model \"nope\" not found, try pulling it first"
    );
}

#[test]
fn default_base_url_is_local() {
    assert_eq!(OllamaClient::DEFAULT_BASE_URL, "http://127.0.0.1:11434");
    OllamaClient::new(ClientConfig::new()).unwrap();
}

/// A JSON answer is Ollama's `format` (`"json"` or the schema); seed and penalties are options.
#[tokio::test]
async fn json_answers_and_seeds_are_asked_as_ollama_spells_them() {
    let fake = Fake::start(Wire::Ollama).await;
    let provider = fake.provider(fast_options());
    let mut req = request();
    req.response_format = Some(Box::new(ResponseFormat::JsonObject));
    req.seed = Some(11);
    req.frequency_penalty = Some(0.5);
    provider.chat(&req).await.unwrap();
    let body = fake.last_body();
    assert_eq!(body["format"], json!("json"));
    assert_eq!(
        body["options"],
        json!({"seed": 11, "frequency_penalty": 0.5})
    );
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    req.response_format = Some(Box::new(ResponseFormat::JsonSchema {
        name: "n".into(),
        description: None,
        schema: schema.clone(),
        strict: None,
    }));
    let stream = provider.chat_stream(&req).await.unwrap();
    assert_eq!(common::scenarios::drain(stream).await.1, None);
    assert_eq!(fake.last_body()["format"], schema);
    // A forced tool call is refused before anything is sent.
    let sent = fake.chat_requests().len();
    req.tools = vec![zentoria_providers::ToolSpec {
        name: "f".into(),
        description: String::new(),
        parameters: json!({"type": "object"}),
    }];
    req.tool_choice = Some(ToolChoice::Required);
    let err = provider.chat(&req).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err}");
    assert_eq!(fake.chat_requests().len(), sent);
}
