//! Identity and access for Zentoria: users and their passwords, login sessions with rotating
//! refresh tokens, API keys with scopes, rate limits, and the hash-chained audit log.
//!
//! Every front end (HTTP, MCP, CLI) calls these functions; none re-implements a rule. This
//! crate must never depend on a web framework.

pub mod audit;
mod keys;
mod password;
mod principal;
pub mod ratelimit;
mod sessions;
mod tokens;
mod users;

use std::sync::Arc;
use std::time::Duration;

use zentoria_core::cache::TtlCache;
use zentoria_core::crypto::MasterKey;
use zentoria_store::Db;

pub use audit::{Actor, AuditEvent, AuditLog, Outcome};
pub use keys::{ApiKeyInfo, CreatedKey, NewKeyRequest};
pub use principal::{ClientInfo, KeyLimits, Principal, Via};
pub use sessions::TokenPair;
pub use users::User;

use ratelimit::RateLimiter;

/// The knobs of identity and access, taken from the configuration by the binary.
#[derive(Debug, Clone)]
pub struct Settings {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub allow_registration: bool,
    pub login_failures_per_minute: u32,
    pub key_cache_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 86400),
            allow_registration: false,
            login_failures_per_minute: 5,
            key_cache_ttl: Duration::from_secs(10),
        }
    }
}

/// Identity and access as one service. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    settings: Settings,
    jwt: tokens::JwtKeys,
    audit: AuditLog,
    /// Verified API keys by SHA-256 digest, so a hot key costs no query.
    key_cache: TtlCache<[u8; 32], Arc<keys::CachedKey>>,
    /// Liveness of login sessions by family id, for access-token checks.
    session_cache: TtlCache<String, sessions::SessionState>,
    login_failures: RateLimiter,
    events: zentoria_events::EventBus,
}

impl Platform {
    pub fn new(
        db: Db,
        master_key: &MasterKey,
        settings: Settings,
        audit: AuditLog,
        events: zentoria_events::EventBus,
    ) -> Self {
        let per_minute = settings.login_failures_per_minute.max(1);
        Platform {
            inner: Arc::new(Inner {
                jwt: tokens::JwtKeys::new(&master_key.derive("jwt/v1")),
                key_cache: TtlCache::new(settings.key_cache_ttl, 100_000),
                session_cache: TtlCache::new(settings.key_cache_ttl, 100_000),
                login_failures: RateLimiter::new(per_minute, per_minute),
                db,
                settings,
                audit,
                events,
            }),
        }
    }

    /// Watches the database for revocations made by other processes (the CLI, another
    /// server) and drops the caches when one appears, so a revoked key or session stops working
    /// everywhere within `every`, not only after the cache TTL. Revocations made through this
    /// process take effect at once regardless.
    pub fn watch_revocations(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut last = None;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                match zentoria_store::repo::keys::revocation_mark(&inner.db).await {
                    Ok(mark) => {
                        if last.is_some_and(|l| l != mark) {
                            inner.key_cache.clear();
                            inner.session_cache.clear();
                        }
                        last = Some(mark);
                    }
                    Err(e) => tracing::warn!(error = ?e, "cannot check for revocations"),
                }
            }
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn events(&self) -> &zentoria_events::EventBus {
        &self.inner.events
    }

    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }
}
