/// Why embedding failed. Every message names the provider or file concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    /// Bad configuration: missing or unreadable model files, unsupported
    /// model layout, invalid URL or options.
    #[error("embedder configuration error: {0}")]
    Config(String),
    /// The provider answered with an error, or could not be reached.
    #[error("{provider} embedding request failed{}: {message}", status_text(*.status))]
    Upstream {
        /// `local`, `ollama` or `openai`.
        provider: String,
        /// HTTP status, when there was an HTTP answer.
        status: Option<u16>,
        /// The provider's own error message when it gave one.
        message: String,
    },
    /// The provider kept answering HTTP 429 (too many requests) through the retries.
    #[error("{provider} embedding request rate limited{}: {message}", retry_text(*.retry_after))]
    RateLimited {
        /// The provider instance.
        provider: String,
        /// How long the provider asked to wait (`Retry-After`), when it said.
        retry_after: Option<std::time::Duration>,
        /// The provider's own error message.
        message: String,
    },
    /// The provider did not answer in time.
    #[error("embedding request timed out: {0}")]
    Timeout(String),
    /// An answer (or an input) that cannot be used: malformed JSON, wrong
    /// number of vectors, inconsistent dimensions, non-finite values.
    #[error("invalid embedding data: {0}")]
    Invalid(String),
}

fn status_text(status: Option<u16>) -> String {
    match status {
        Some(s) => format!(" (HTTP {s})"),
        None => String::new(),
    }
}

fn retry_text(after: Option<std::time::Duration>) -> String {
    match after {
        Some(d) => format!(" (retry after {d:?})"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_provider_and_status() {
        let e = EmbedError::Upstream {
            provider: "openai".into(),
            status: Some(401),
            message: "Incorrect API key provided".into(),
        };
        assert_eq!(
            e.to_string(),
            "openai embedding request failed (HTTP 401): Incorrect API key provided"
        );
        let e = EmbedError::Upstream {
            provider: "ollama".into(),
            status: None,
            message: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "ollama embedding request failed: connection refused"
        );
    }
}
