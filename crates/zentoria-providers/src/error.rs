//! The error type shared by every provider client.

use std::fmt;
use std::time::Duration;

/// Which deadline expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// The TCP/TLS connection could not be established in time.
    Connect,
    /// No response (non-streaming) or no first event (streaming) arrived in time.
    FirstToken,
    /// A stream went silent for longer than the idle timeout.
    Idle,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connecting",
            TimeoutPhase::FirstToken => "waiting for the first response",
            TimeoutPhase::Idle => "waiting for the next stream chunk",
        })
    }
}

/// Everything that can go wrong talking to a provider.
///
/// Every variant names the provider instance (`provider`) and, where the upstream said something,
/// carries its message. API keys never appear in these errors: upstream messages are scrubbed of
/// the configured key before they are stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A deadline expired.
    #[error("{provider}: timed out after {after:?} {phase}")]
    Timeout {
        /// Provider instance name.
        provider: String,
        /// Which deadline expired.
        phase: TimeoutPhase,
        /// The configured deadline.
        after: Duration,
    },
    /// The connection could not be established or failed before a response arrived.
    #[error("{provider}: connection failed: {message}")]
    Connect {
        /// Provider instance name.
        provider: String,
        /// Transport error description.
        message: String,
    },
    /// The upstream answered with a non-success HTTP status.
    #[error("{provider}: HTTP {status}{}: {message}", kind.as_deref().map(|k| format!(" ({k})")).unwrap_or_default())]
    Http {
        /// Provider instance name.
        provider: String,
        /// HTTP status code.
        status: u16,
        /// Error type from the upstream's error body (`invalid_request_error`, …), if any.
        kind: Option<String>,
        /// The upstream's error message (or a prefix of the raw body when it was not the
        /// documented JSON shape).
        message: String,
        /// Parsed `Retry-After`, if the upstream sent one.
        retry_after: Option<Duration>,
    },
    /// HTTP 429: the upstream asked us to slow down.
    #[error("{provider}: rate limited{}: {message}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        /// Provider instance name.
        provider: String,
        /// Parsed `Retry-After`, if the upstream sent one.
        retry_after: Option<Duration>,
        /// The upstream's error message.
        message: String,
    },
    /// The upstream reported an error inside an otherwise successful stream
    /// (Anthropic `error` event, `{"error": …}` chunk or line).
    #[error("{provider}: upstream error ({kind}): {message}")]
    Upstream {
        /// Provider instance name.
        provider: String,
        /// Error type reported by the upstream, e.g. `overloaded_error`.
        kind: String,
        /// The upstream's error message.
        message: String,
    },
    /// The circuit breaker is open: recent calls kept failing, so this one was not attempted.
    #[error(
        "{provider}: circuit breaker open after {failures} consecutive failures; not calling upstream for another {retry_in:?}"
    )]
    CircuitOpen {
        /// Provider instance name.
        provider: String,
        /// Consecutive failures that opened the breaker.
        failures: u32,
        /// Time until a trial call is allowed.
        retry_in: Duration,
    },
    /// The upstream sent something that does not follow its protocol: malformed JSON or SSE,
    /// invalid tool-call arguments, or a stream that ended without its terminal event.
    #[error("{provider}: protocol error: {message}")]
    Protocol {
        /// Provider instance name.
        provider: String,
        /// What was wrong.
        message: String,
    },
    /// The request asks for something this provider's API cannot do (a forced tool call from
    /// Ollama, a seed from Anthropic…): refused before anything is sent, rather than dropped.
    #[error("{provider}: not supported: {message}")]
    Unsupported {
        /// Provider instance name.
        provider: String,
        /// What cannot be done, and what to do instead where there is a way.
        message: String,
    },
    /// The client was configured or called with invalid input (bad base URL, header value…).
    #[error("{provider}: invalid configuration: {message}")]
    Config {
        /// Provider instance name.
        provider: String,
        /// What was wrong.
        message: String,
    },
}

impl ProviderError {
    /// The provider instance this error came from.
    pub fn provider(&self) -> &str {
        match self {
            ProviderError::Timeout { provider, .. }
            | ProviderError::Connect { provider, .. }
            | ProviderError::Http { provider, .. }
            | ProviderError::RateLimited { provider, .. }
            | ProviderError::Upstream { provider, .. }
            | ProviderError::CircuitOpen { provider, .. }
            | ProviderError::Protocol { provider, .. }
            | ProviderError::Unsupported { provider, .. }
            | ProviderError::Config { provider, .. } => provider,
        }
    }

    /// Whether the same request may succeed if sent again later: connection failures and
    /// connect timeouts, 408, 429, 5xx (including Anthropic's 529 "overloaded"), and upstream
    /// overload/server errors reported inside a stream.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Connect { .. } | ProviderError::RateLimited { .. } => true,
            ProviderError::Timeout { phase, .. } => *phase == TimeoutPhase::Connect,
            ProviderError::Http { status, .. } => *status == 408 || *status >= 500,
            ProviderError::Upstream { kind, .. } => matches!(
                kind.as_str(),
                "overloaded_error" | "api_error" | "rate_limit_error" | "server_error"
            ),
            ProviderError::CircuitOpen { .. }
            | ProviderError::Protocol { .. }
            | ProviderError::Unsupported { .. }
            | ProviderError::Config { .. } => false,
        }
    }

    /// `Retry-After` advice from the upstream, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Http { retry_after, .. }
            | ProviderError::RateLimited { retry_after, .. } => *retry_after,
            ProviderError::CircuitOpen { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }

    /// Whether this outcome says the upstream is unhealthy (counts toward opening the circuit
    /// breaker). Client errors such as 400/401/404 prove the upstream is reachable and do not.
    pub(crate) fn counts_against_breaker(&self) -> bool {
        match self {
            ProviderError::Http { status, .. } => *status == 408 || *status >= 500,
            ProviderError::Config { .. }
            | ProviderError::Unsupported { .. }
            | ProviderError::CircuitOpen { .. } => false,
            _ => true,
        }
    }
}

/// Small constructors used throughout the crate.
pub(crate) fn protocol(provider: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Protocol {
        provider: provider.to_owned(),
        message: message.into(),
    }
}

pub(crate) fn unsupported(provider: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Unsupported {
        provider: provider.to_owned(),
        message: message.into(),
    }
}

/// An API key that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: &str) -> Option<Self> {
        let trimmed = value.trim();
        (!trimmed.is_empty()).then(|| Self(trimmed.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Removes every occurrence of the secret from `text`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> ProviderError {
        ProviderError::Http {
            provider: "p".into(),
            status,
            kind: Some("invalid_request_error".into()),
            message: "bad".into(),
            retry_after: None,
        }
    }

    #[test]
    fn retryability() {
        assert!(http(500).is_retryable());
        assert!(http(529).is_retryable());
        assert!(http(503).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(!http(401).is_retryable());
        assert!(!protocol("p", "x").is_retryable());
        assert!(
            ProviderError::RateLimited {
                provider: "p".into(),
                retry_after: None,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!http(400).counts_against_breaker());
        assert!(http(502).counts_against_breaker());
    }

    #[test]
    fn display_names_provider_and_message() {
        assert_eq!(
            http(400).to_string(),
            "p: HTTP 400 (invalid_request_error): bad"
        );
    }

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("sk-123").unwrap();
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.scrub("key sk-123 bad"), "key [redacted] bad");
        assert!(Secret::new("  ").is_none());
    }
}
