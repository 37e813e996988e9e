//! Small helpers shared by the provider wire-format modules.

use serde_json::Value;

use crate::error::{ProviderError, protocol};
use crate::types::{ChatResponse, FinishReason, ResponseBuilder, StreamEvent};

/// Parses streamed or string-encoded tool-call arguments. An empty string means "no arguments".
pub(crate) fn parse_arguments(
    provider: &str,
    tool: &str,
    raw: &str,
) -> Result<Value, ProviderError> {
    if raw.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(raw).map_err(|e| {
        protocol(
            provider,
            format!("tool call `{tool}` has invalid JSON arguments ({e}): {raw}"),
        )
    })
}

/// Decodes one JSON document from the upstream, naming what it was on failure.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    provider: &str,
    what: &str,
    bytes: &[u8],
) -> Result<T, ProviderError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let snippet = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        protocol(provider, format!("malformed {what} ({e}): {snippet}"))
    })
}

/// Providers differ on the finish reason of a turn that called tools (Ollama and some
/// OpenAI-compatible servers say `stop`); normalize to [`FinishReason::ToolCalls`].
pub(crate) fn finish_with_tools(reason: FinishReason, called_tools: bool) -> FinishReason {
    if called_tools && reason == FinishReason::Stop {
        FinishReason::ToolCalls
    } else {
        reason
    }
}

/// Folds a complete list of events (from a non-streaming response) into a [`ChatResponse`].
pub(crate) fn response_from_events(
    provider: &str,
    events: Vec<StreamEvent>,
    model: String,
) -> Result<ChatResponse, ProviderError> {
    let mut builder = ResponseBuilder::default();
    for event in events {
        builder.push(event);
    }
    if !builder.is_done() {
        return Err(protocol(provider, "response has no finish reason"));
    }
    Ok(builder.finish(model))
}

/// The `message`/`type` pair of the common `{"error": {...}}` / `{"error": "..."}` body shapes
/// (OpenAI, Anthropic, Ollama, and most OpenAI-compatible servers).
pub(crate) fn parse_error_body(body: &[u8]) -> Option<(String, Option<String>)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let as_string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    match value.get("error") {
        Some(Value::String(message)) => Some((message.clone(), None)),
        Some(error @ Value::Object(_)) => {
            let message = as_string(error.get("message"))?;
            let kind = as_string(error.get("type")).or_else(|| match error.get("code") {
                Some(Value::String(code)) => Some(code.clone()),
                Some(Value::Number(code)) => Some(code.to_string()),
                _ => None,
            });
            Some((message, kind))
        }
        _ => as_string(value.get("message"))
            .or_else(|| as_string(value.get("detail")))
            .map(|message| (message, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments() {
        assert_eq!(parse_arguments("p", "t", "").unwrap(), json!({}));
        assert_eq!(
            parse_arguments("p", "t", r#"{"a":1}"#).unwrap(),
            json!({"a": 1})
        );
        let err = parse_arguments("p", "get_weather", r#"{"a":"#).unwrap_err();
        assert!(matches!(err, ProviderError::Protocol { .. }));
        assert!(err.to_string().contains("get_weather"));
    }

    #[test]
    fn error_bodies() {
        let openai = br#"{"error":{"message":"Invalid key","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(
            parse_error_body(openai),
            Some(("Invalid key".into(), Some("invalid_request_error".into())))
        );
        let code_only = br#"{"error":{"message":"m","type":null,"code":429}}"#;
        assert_eq!(
            parse_error_body(code_only),
            Some(("m".into(), Some("429".into())))
        );
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            parse_error_body(anthropic),
            Some(("Overloaded".into(), Some("overloaded_error".into())))
        );
        assert_eq!(
            parse_error_body(br#"{"error":"model 'x' not found"}"#),
            Some(("model 'x' not found".into(), None))
        );
        assert_eq!(
            parse_error_body(br#"{"detail":"nope"}"#),
            Some(("nope".into(), None))
        );
        assert_eq!(parse_error_body(b"<html>bad gateway</html>"), None);
    }
}
