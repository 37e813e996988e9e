//! Small helpers shared by the provider wire-format modules.

use serde_json::Value;

use crate::error::{ProviderError, protocol};
use crate::types::{ChatResponse, FinishReason, ResponseBuilder, StreamEvent};

/// `Deserialize` for a struct whose fields all default, matching keys as bytes.
///
/// serde's derived field matching takes each key as a `str`, which serde_json first checks as
/// UTF-8 — for the short keys of a stream's events, that check and its string scan were the
/// largest single cost of decoding them. Here keys arrive through `deserialize_bytes` (escapes
/// still resolved, no UTF-8 pass) and are compared as bytes. Unknown keys are skipped, missing
/// ones keep the field's default, a repeated key keeps its last value, and the value must be a
/// JSON object. Values are decoded as derived serde would (strings still checked as UTF-8).
///
/// `byte_keyed!(Name<'a> { … })` is for a struct that borrows from the bytes it is read from
/// (its fields name the same lifetime).
macro_rules! byte_keyed {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        byte_keyed!(@impl 'de, $ty, [], { $($field),+ });
    };
    ($ty:ident < $lt:lifetime > { $($field:ident),+ $(,)? }) => {
        byte_keyed!(@impl $lt, $ty, [$lt], { $($field),+ });
    };
    (@impl $de:lifetime, $ty:ident, [$($lt:lifetime)?], { $($field:ident),+ }) => {
        impl<$de> serde::Deserialize<$de> for $ty$(<$lt>)? {
            fn deserialize<D: serde::Deserializer<$de>>(deserializer: D) -> Result<Self, D::Error> {
                #[allow(non_camel_case_types)]
                enum Key {
                    $($field,)+
                    Other,
                }

                impl<'k> serde::Deserialize<'k> for Key {
                    fn deserialize<D: serde::Deserializer<'k>>(d: D) -> Result<Self, D::Error> {
                        struct KeyVisitor;
                        impl serde::de::Visitor<'_> for KeyVisitor {
                            type Value = Key;
                            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                                f.write_str("a field name")
                            }
                            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Key, E> {
                                $(if v == stringify!($field).as_bytes() {
                                    return Ok(Key::$field);
                                })+
                                Ok(Key::Other)
                            }
                            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                                self.visit_bytes(v.as_bytes())
                            }
                        }
                        d.deserialize_bytes(KeyVisitor)
                    }
                }

                struct ObjectVisitor<$de>(std::marker::PhantomData<&$de ()>);
                impl<$de> serde::de::Visitor<$de> for ObjectVisitor<$de> {
                    type Value = $ty$(<$lt>)?;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a JSON object (", stringify!($ty), ")"))
                    }
                    fn visit_map<A: serde::de::MapAccess<$de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        let mut value = <$ty$(<$lt>)?>::default();
                        while let Some(key) = map.next_key::<Key>()? {
                            match key {
                                $(Key::$field => value.$field = map.next_value()?,)+
                                Key::Other => {
                                    map.next_value::<serde::de::IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(value)
                    }
                }
                deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
            }
        }
    };
}
pub(crate) use byte_keyed;

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
pub(crate) fn decode<'a, T: serde::Deserialize<'a>>(
    provider: &str,
    what: &str,
    bytes: &'a [u8],
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
