//! Keyed token buckets: each key (an API key, a user, a client address) gets `burst` tokens
//! that refill at `per_minute`. Sharded so that concurrent requests rarely contend.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
const MAX_KEYS_PER_SHARD: usize = 20_000;

pub struct RateLimiter {
    capacity: f64,
    per_sec: f64,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A limiter allowing `burst` requests at once and `per_minute` sustained.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter {
            capacity: burst.max(1) as f64,
            per_sec: per_minute as f64 / 60.0,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Bucket>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.capacity);
        b.at = now;
    }

    fn wait_for_one(&self, b: &Bucket) -> Duration {
        if self.per_sec <= 0.0 {
            return Duration::from_secs(60);
        }
        Duration::from_secs_f64(((1.0 - b.tokens) / self.per_sec).max(0.0))
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn acquire(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get_mut(key) {
            self.refill(b, now);
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return Ok(());
            }
            return Err(self.wait_for_one(b));
        }
        if map.len() >= MAX_KEYS_PER_SHARD {
            self.evict_full(&mut map, now);
        }
        map.insert(
            key.to_owned(),
            Bucket {
                tokens: self.capacity - 1.0,
                at: now,
            },
        );
        Ok(())
    }

    /// Whether a token is available for `key`, without taking it.
    pub fn peek(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(key) {
            Some(b) => {
                self.refill(b, now);
                if b.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(self.wait_for_one(b))
                }
            }
            None => Ok(()),
        }
    }

    /// Buckets that have refilled completely carry no state worth keeping.
    fn evict_full(&self, map: &mut HashMap<String, Bucket>, now: Instant) {
        map.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * self.per_sec < self.capacity
        });
        if map.len() >= MAX_KEYS_PER_SHARD {
            // Under a flood of distinct keys, forget rather than grow without bound.
            map.clear();
        }
    }
}

/// Retry-After in whole seconds, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_wait() {
        let rl = RateLimiter::new(60, 3);
        for _ in 0..3 {
            assert!(rl.acquire("k").is_ok());
        }
        let wait = rl.acquire("k").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert_eq!(retry_after_secs(wait), 1);
        // Other keys are independent.
        assert!(rl.acquire("other").is_ok());
    }

    #[test]
    fn peek_does_not_consume() {
        let rl = RateLimiter::new(1, 1);
        assert!(rl.peek("k").is_ok());
        assert!(rl.peek("k").is_ok());
        assert!(rl.acquire("k").is_ok());
        assert!(rl.peek("k").is_err());
    }

    #[test]
    fn tokens_refill_over_time() {
        let rl = RateLimiter::new(6000, 1); // 100 per second
        assert!(rl.acquire("k").is_ok());
        assert!(rl.acquire("k").is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(rl.acquire("k").is_ok());
    }
}
