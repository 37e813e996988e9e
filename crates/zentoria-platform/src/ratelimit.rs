//! Keyed token buckets: each subject (an API key, a user, a client address) gets `burst`
//! tokens that refill at `per_minute`. Subjects are reduced to a keyed 64-bit hash, so a check
//! allocates nothing; shards keep concurrent requests from contending.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The map keys are already keyed SipHash outputs; hashing them again would be wasted work.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Buckets = HashMap<u64, Bucket, BuildHasherDefault<PreHashed>>;

const SHARDS: usize = 16;
const MAX_KEYS_PER_SHARD: usize = 20_000;

pub struct RateLimiter {
    capacity: f64,
    per_sec: f64,
    hasher: RandomState,
    shards: Vec<Mutex<Buckets>>,
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
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Buckets::default()))
                .collect(),
        }
    }

    fn locate(&self, kind: &str, subject: &str) -> (u64, &Mutex<Buckets>) {
        let h = self.hasher.hash_one((kind, subject));
        (h, &self.shards[(h >> 56) as usize % SHARDS])
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

    /// Takes one token for `subject` of `kind` (e.g. `"ip"`, `"key"`), or says how long until
    /// one is available.
    pub fn acquire(&self, kind: &str, subject: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let (key, shard) = self.locate(kind, subject);
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get_mut(&key) {
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
            key,
            Bucket {
                tokens: self.capacity - 1.0,
                at: now,
            },
        );
        Ok(())
    }

    /// Whether a token is available, without taking it.
    pub fn peek(&self, kind: &str, subject: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let (key, shard) = self.locate(kind, subject);
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&key) {
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
    fn evict_full(&self, map: &mut Buckets, now: Instant) {
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
            assert!(rl.acquire("t", "k").is_ok());
        }
        let wait = rl.acquire("t", "k").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert_eq!(retry_after_secs(wait), 1);
        // Other keys are independent.
        assert!(rl.acquire("t", "other").is_ok());
    }

    #[test]
    fn peek_does_not_consume() {
        let rl = RateLimiter::new(1, 1);
        assert!(rl.peek("t", "k").is_ok());
        assert!(rl.peek("t", "k").is_ok());
        assert!(rl.acquire("t", "k").is_ok());
        assert!(rl.peek("t", "k").is_err());
    }

    #[test]
    fn tokens_refill_over_time() {
        let rl = RateLimiter::new(6000, 1); // 100 per second
        assert!(rl.acquire("t", "k").is_ok());
        assert!(rl.acquire("t", "k").is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(rl.acquire("t", "k").is_ok());
    }
}
