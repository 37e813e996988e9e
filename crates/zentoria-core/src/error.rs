//! The one domain error. Every domain function returns it; each front end maps it to its own
//! wire shape (HTTP status and JSON body, MCP error, CLI exit message).

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on. Messages are safe to show to the caller;
/// `Internal` keeps its cause for the logs and never shows it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The content is bigger than a configured limit (the message names the limit).
    #[error("{0}")]
    TooLarge(String),
    /// The content is not of a type accepted here, or not what it claims to be.
    #[error("{0}")]
    Unsupported(String),
    /// A spending limit (such as an API key's monthly token budget) is used up.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Something Zentoria depends on (the database, the disk) is not available; the details
    /// go to the logs only, as they may name hosts.
    #[error("{0}")]
    Unavailable(String),
    /// A model provider or other upstream service failed; the message names it and says
    /// what it answered, and is shown to the caller.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The stable, snake_case code of the JSON error shape.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid_request",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "payload_too_large",
            Error::Unsupported(_) => "unsupported_media_type",
            Error::RateLimited { .. } => "rate_limited",
            Error::QuotaExceeded(_) => "budget_exceeded",
            Error::Unavailable(_) => "unavailable",
            Error::Upstream(_) => "upstream_error",
            Error::Internal(_) => "internal_error",
        }
    }

    /// What a caller may be told: the message itself, except for internal errors and
    /// unavailable dependencies, whose details (causes, host names) belong in the logs only.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => {
                "an internal error occurred; quote the request id when reporting it".to_owned()
            }
            Error::Unavailable(_) => "a dependency is unavailable; try again shortly".to_owned(),
            other => other.to_string(),
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Error::Forbidden(msg.into())
    }

    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        Error::Unauthenticated(msg.into())
    }

    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(err.into())
    }

    /// An internal error from a plain message, for invariants that should never break.
    pub fn bug(msg: impl fmt::Display) -> Self {
        Error::Internal(msg.to_string().into())
    }
}
