//! Timeouts, retry and circuit-breaker settings.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Default [`ProviderOptions::max_response_bytes`]: room for a full batch of large embeddings
/// (2,048 inputs × 3,072 dimensions as JSON is about 130 MB), far beyond any chat answer.
pub const DEFAULT_MAX_RESPONSE: usize = 256 * 1024 * 1024;

/// Reliability settings for one provider client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderOptions {
    /// Deadline for establishing the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Deadline from sending the request until the first stream event (streaming) or the whole
    /// response (non-streaming and model listing).
    pub first_token_timeout: Duration,
    /// Maximum silence between two stream chunks once streaming has started.
    pub idle_timeout: Duration,
    /// Retries after the first attempt for transient failures (so `2` means up to 3 attempts).
    /// Retries only happen before anything has been yielded to the caller.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles on each further retry.
    pub initial_backoff: Duration,
    /// Upper bound for any backoff. A `Retry-After` longer than this is not waited for: the
    /// call fails at once with the upstream's error (which carries `retry_after`).
    pub max_backoff: Duration,
    /// Consecutive failed calls that open the circuit breaker. `0` disables the breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before allowing one trial call.
    pub breaker_cooldown: Duration,
    /// Largest whole (non-streamed) response body read from the upstream; a longer one is a
    /// protocol error. Streams are bounded per line instead ([`crate::MAX_LINE`]).
    pub max_response_bytes: usize,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            first_token_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_retries: 2,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            max_response_bytes: DEFAULT_MAX_RESPONSE,
        }
    }
}

impl ProviderOptions {
    /// Exponential backoff with jitter before retry number `retry` (0-based): a random delay in
    /// `[d/2, d]` where `d = min(initial_backoff * 2^retry, max_backoff)`.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(16));
        let full = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = full / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if jitter_nanos == 0 {
            0
        } else {
            random_u64() % (jitter_nanos + 1)
        };
        half + Duration::from_nanos(jitter)
    }
}

/// A random number from the standard library's per-process hash seed; good enough for jitter.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let o = ProviderOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..ProviderOptions::default()
        };
        for _ in 0..50 {
            let b0 = o.backoff(0);
            assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100));
            let b2 = o.backoff(2);
            assert!(b2 >= Duration::from_millis(200) && b2 <= Duration::from_millis(400));
            let b9 = o.backoff(40);
            assert!(b9 >= Duration::from_millis(250) && b9 <= Duration::from_millis(500));
        }
        let zero = ProviderOptions {
            initial_backoff: Duration::ZERO,
            ..ProviderOptions::default()
        };
        assert_eq!(zero.backoff(3), Duration::ZERO);
    }
}
