//! Embeddings: Ollama's `POST /api/embed` and OpenAI's `POST /v1/embeddings`, decoded into one
//! shape. They go through the same [`Transport`](crate::transport) as chat — timeouts, retries,
//! circuit breaker, proxies, no redirects followed — so an embedding call to a provider is
//! treated exactly like a chat call to it.

use serde::{Deserialize, Serialize};

use crate::error::{ProviderError, protocol};
use crate::wire::decode;

/// The answer to one embeddings request.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input, in input order, as the provider sent it (not normalised).
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the provider counted in the inputs (OpenAI's `usage.prompt_tokens`, Ollama's
    /// `prompt_eval_count`); `None` when it did not say.
    pub prompt_tokens: Option<u64>,
}

/// The request body both APIs take.
#[derive(Serialize)]
pub(crate) struct EmbedRequest<'a> {
    pub model: &'a str,
    pub input: &'a [String],
    /// OpenAI's `encoding_format`; Ollama has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<&'static str>,
}

#[derive(Deserialize)]
struct OllamaAnswer {
    embeddings: Vec<Vec<f32>>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
}

#[derive(Deserialize)]
struct OpenAiAnswer {
    data: Vec<OpenAiItem>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiItem {
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

/// Decodes Ollama's answer for `inputs` texts.
pub(crate) fn decode_ollama(
    provider: &str,
    body: &[u8],
    inputs: usize,
) -> Result<Embeddings, ProviderError> {
    let answer: OllamaAnswer = decode(provider, "embeddings answer", body)?;
    expect_count(provider, answer.embeddings.len(), inputs)?;
    Ok(Embeddings {
        vectors: answer.embeddings,
        prompt_tokens: answer.prompt_eval_count,
    })
}

/// Decodes OpenAI's answer for `inputs` texts, putting the vectors back in input order by their
/// `index` (the API does not promise the order).
pub(crate) fn decode_openai(
    provider: &str,
    body: &[u8],
    inputs: usize,
) -> Result<Embeddings, ProviderError> {
    let answer: OpenAiAnswer = decode(provider, "embeddings answer", body)?;
    expect_count(provider, answer.data.len(), inputs)?;
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; inputs];
    for item in answer.data {
        match slots.get_mut(item.index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            Some(Some(_)) => {
                return Err(protocol(
                    provider,
                    format!("the embeddings answer holds index {} twice", item.index),
                ));
            }
            None => {
                return Err(protocol(
                    provider,
                    format!(
                        "the embeddings answer holds index {} for {inputs} texts",
                        item.index
                    ),
                ));
            }
        }
    }
    Ok(Embeddings {
        // Every slot is filled: as many distinct in-range indexes as slots.
        vectors: slots.into_iter().flatten().collect(),
        prompt_tokens: answer.usage.and_then(|u| u.prompt_tokens),
    })
}

fn expect_count(provider: &str, got: usize, inputs: usize) -> Result<(), ProviderError> {
    if got == inputs {
        return Ok(());
    }
    Err(protocol(
        provider,
        format!("the embeddings answer holds {got} vectors for {inputs} texts"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_answers_are_put_in_input_order() {
        let body = br#"{"object":"list","data":[
            {"object":"embedding","index":1,"embedding":[0.0,1.0]},
            {"object":"embedding","index":0,"embedding":[1.0,0.0]}],
            "model":"m","usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        let e = decode_openai("p", body, 2).unwrap();
        assert_eq!(e.vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert_eq!(e.prompt_tokens, Some(4));
    }

    #[test]
    fn openai_answers_with_wrong_indexes_are_protocol_errors() {
        for (body, says) in [
            (
                r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]}"#,
                "index 0 twice",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1]},{"index":5,"embedding":[1]}]}"#,
                "index 5 for 2 texts",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1]}]}"#,
                "1 vectors for 2 texts",
            ),
            (r#"{"data":[{"index":-1,"embedding":[1]}]}"#, "malformed"),
            (r#"{"data":[{"index":0}]}"#, "malformed"),
        ] {
            match decode_openai("p", body.as_bytes(), 2) {
                Err(ProviderError::Protocol { provider, message }) => {
                    assert_eq!(provider, "p");
                    assert!(message.contains(says), "{message:?} should say {says:?}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn ollama_answers_keep_their_count_and_order() {
        let body = br#"{"model":"m","embeddings":[[1,2],[3,4]],"prompt_eval_count":7}"#;
        let e = decode_ollama("p", body, 2).unwrap();
        assert_eq!(e.vectors, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(e.prompt_tokens, Some(7));
        let e = decode_ollama("p", br#"{"embeddings":[[1]]}"#, 1).unwrap();
        assert_eq!(e.prompt_tokens, None, "a server that does not say");
        for body in [r#"{"embeddings":[]}"#, r#"{"embedding":[1]}"#, "<html>"] {
            assert!(
                matches!(
                    decode_ollama("p", body.as_bytes(), 1),
                    Err(ProviderError::Protocol { .. })
                ),
                "{body}"
            );
        }
    }
}
