//! Usage accounting: every model request counted per UTC day, user, API key and model, and
//! API keys' monthly token budgets enforced from those counts.
//!
//! Counts gather in memory and are written in one transaction a second (and at shutdown), so
//! accounting costs a request a hash-map update, not a database write. A budget is checked
//! before each request against what the database holds (re-read at most once a second, so
//! other processes' spending counts too) plus what this process has not written yet; a
//! request already running when the budget runs out may finish beyond it by its own tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zentoria_core::time::{now_ms, rfc3339};
use zentoria_core::{Error, Result};
use zentoria_platform::{Principal, Via};
use zentoria_providers::Usage;
use zentoria_store::Db;
use zentoria_store::repo::usage::{self as repo, UsageRow};

const FLUSH_EVERY: Duration = Duration::from_secs(1);
const BUDGET_CACHE: Duration = Duration::from_secs(1);

#[derive(Clone, Hash, PartialEq, Eq)]
struct Key {
    day: String,
    user_id: String,
    key_id: String,
    model: String,
}

/// A [`Key`] borrowed, to find its counts without making one: it hashes as a `Key` does
/// (a `&str` hashes as its `str`, and so does a `String`). Four strings made and hashed with
/// SipHash for every request showed in profiles; now only a key's first request makes them.
#[derive(Hash)]
struct KeyRef<'a> {
    day: &'a str,
    user_id: &'a str,
    key_id: &'a str,
    model: &'a str,
}

impl hashbrown::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, k: &Key) -> bool {
        self.model == k.model
            && self.key_id == k.key_id
            && self.user_id == k.user_id
            && self.day == k.day
    }
}

impl From<&KeyRef<'_>> for Key {
    fn from(k: &KeyRef<'_>) -> Key {
        Key {
            day: k.day.to_owned(),
            user_id: k.user_id.to_owned(),
            key_id: k.key_id.to_owned(),
            model: k.model.to_owned(),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Counts {
    requests: i64,
    errors: i64,
    prompt: i64,
    completion: i64,
    cached: i64,
    reasoning: i64,
}

impl Counts {
    fn add(&mut self, c: &Counts) {
        self.requests += c.requests;
        self.errors += c.errors;
        self.prompt += c.prompt;
        self.completion += c.completion;
        self.cached += c.cached;
        self.reasoning += c.reasoning;
    }
}

/// A provider's count as stored (they never come near `i64::MAX`, but are not trusted to).
fn tokens(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

#[derive(Default)]
struct State {
    pending: hashbrown::HashMap<Key, Counts>,
    /// Taken by a flush and not yet committed.
    in_flight: hashbrown::HashMap<Key, Counts>,
    /// A key's tokens this month as the database last said: (month, tokens, read at).
    spent: HashMap<String, (String, i64, Instant)>,
}

/// The usage log of one process. Cheap to clone.
#[derive(Clone)]
pub struct UsageLog {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    state: Mutex<State>,
    /// Serialises flushes.
    flushing: tokio::sync::Mutex<()>,
}

/// Days and months in UTC, as stored.
fn day_of(ms: i64) -> String {
    rfc3339(ms)[..10].to_owned()
}

/// Today (UTC), as stored: formatted once a day on each thread rather than for every request.
fn today() -> String {
    with_today(str::to_owned)
}

/// Calls `f` with [`today`], borrowed.
fn with_today<R>(f: impl FnOnce(&str) -> R) -> R {
    thread_local!(static DAY: std::cell::RefCell<(i64, String)> =
        const { std::cell::RefCell::new((i64::MIN, String::new())) });
    let ms = now_ms();
    let n = ms.div_euclid(86_400_000);
    DAY.with_borrow_mut(|(day, text)| {
        if *day != n {
            *day = n;
            *text = day_of(ms);
        }
        f(text)
    })
}

fn month_start(day: &str) -> String {
    format!("{}-01", &day[..7])
}

impl UsageLog {
    /// The log, and the task that writes it every second until the log is dropped.
    pub fn start(db: Db) -> UsageLog {
        let log = UsageLog {
            inner: Arc::new(Inner {
                db,
                state: Mutex::new(State::default()),
                flushing: tokio::sync::Mutex::new(()),
            }),
        };
        let weak = Arc::downgrade(&log.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = (UsageLog { inner }).flush().await {
                    tracing::warn!(error = ?e, "cannot write usage; will retry");
                }
            }
        });
        log
    }

    /// Counts one request (and its tokens, when the provider reported them).
    pub fn record(&self, p: &Principal, model: &str, usage: Option<Usage>, failed: bool) {
        let u = usage.unwrap_or_default();
        let mut state = self.inner.state.lock().expect("usage lock");
        with_today(|day| {
            let key = KeyRef {
                day,
                user_id: &p.user_id,
                key_id: key_id(p),
                model,
            };
            state.pending.entry_ref(&key).or_default().add(&Counts {
                requests: 1,
                errors: i64::from(failed),
                prompt: tokens(u.prompt_tokens),
                completion: tokens(u.completion_tokens),
                cached: tokens(u.cached_tokens),
                reasoning: tokens(u.reasoning_tokens),
            });
        });
    }

    /// Writes what has gathered. Counts that fail to be written are kept for the next try.
    pub async fn flush(&self) -> Result<()> {
        let _one = self.inner.flushing.lock().await;
        let rows: Vec<UsageRow> = {
            let mut state = self.inner.state.lock().expect("usage lock");
            if state.pending.is_empty() {
                return Ok(());
            }
            let taken = std::mem::take(&mut state.pending);
            state.in_flight = taken;
            state
                .in_flight
                .iter()
                .map(|(k, c)| UsageRow {
                    day: k.day.clone(),
                    user_id: k.user_id.clone(),
                    key_id: k.key_id.clone(),
                    model: k.model.clone(),
                    requests: c.requests,
                    errors: c.errors,
                    prompt_tokens: c.prompt,
                    completion_tokens: c.completion,
                    cached_tokens: c.cached,
                    reasoning_tokens: c.reasoning,
                })
                .collect()
        };
        let written = repo::add(&self.inner.db, &rows).await;
        let mut state = self.inner.state.lock().expect("usage lock");
        let in_flight = std::mem::take(&mut state.in_flight);
        match written {
            Ok(()) => {
                // What the database now holds must be read again before it is trusted.
                state.spent.clear();
                Ok(())
            }
            Err(e) => {
                for (k, c) in in_flight {
                    state.pending.entry(k).or_default().add(&c);
                }
                Err(e)
            }
        }
    }

    /// Fails with `QuotaExceeded` when the caller's key has spent its monthly token budget.
    pub async fn check_budget(&self, p: &Principal) -> Result<()> {
        let Some(budget) = p.limits.monthly_token_budget else {
            return Ok(());
        };
        let spent = self.month_tokens(key_id(p)).await?;
        if spent >= budget {
            return Err(Error::QuotaExceeded(format!(
                "this API key has used its monthly budget of {budget} tokens ({spent} spent \
                 this month, UTC); it renews on the 1st, or raise it with a new key"
            )));
        }
        Ok(())
    }

    /// Tokens the key spent this month (UTC), written or not.
    pub async fn month_tokens(&self, key_id: &str) -> Result<u64> {
        let month = month_start(&today());
        let cached = {
            let state = self.inner.state.lock().expect("usage lock");
            state
                .spent
                .get(key_id)
                .filter(|(m, _, at)| *m == month && at.elapsed() < BUDGET_CACHE)
                .map(|(_, t, _)| *t)
        };
        let stored = match cached {
            Some(t) => t,
            None => {
                let t = repo::key_tokens_since(&self.inner.db, key_id, &month).await?;
                self.inner
                    .state
                    .lock()
                    .expect("usage lock")
                    .spent
                    .insert(key_id.to_owned(), (month.clone(), t, Instant::now()));
                t
            }
        };
        let state = self.inner.state.lock().expect("usage lock");
        let unwritten: i64 = state
            .pending
            .iter()
            .chain(state.in_flight.iter())
            .filter(|(k, _)| k.key_id == key_id && k.day >= month)
            .map(|(_, c)| c.prompt + c.completion)
            .sum();
        Ok((stored + unwritten).max(0) as u64)
    }

    /// Usage between two days (inclusive): the caller's own, or everyone's for an admin who
    /// asks for all.
    pub async fn report(&self, p: &Principal, q: &UsageQuery) -> Result<UsageReport> {
        let today = today();
        let to = q.to.clone().unwrap_or_else(|| today.clone());
        let from = q.from.clone().unwrap_or_else(|| month_start(&today));
        for (name, d) in [("from", &from), ("to", &to)] {
            if !is_day(d) {
                return Err(Error::invalid(format!(
                    "{name} must be a date like 2026-12-01"
                )));
            }
        }
        if from > to {
            return Err(Error::invalid("from must not be after to"));
        }
        let all = q.all.unwrap_or(false);
        if all && !p.is_admin() {
            return Err(Error::forbidden("only an admin can see everyone's usage"));
        }
        self.flush().await?;
        let mut rows = repo::list(
            &self.inner.db,
            (!all).then_some(p.user_id.as_str()),
            &from,
            &to,
        )
        .await?;
        if let Some(k) = &q.key_id {
            rows.retain(|r| &r.key_id == k);
        }
        let mut totals = UsageTotals::default();
        let mut by: std::collections::BTreeMap<(String, String, String), UsageTotals> =
            Default::default();
        for r in &rows {
            let t = by
                .entry((r.user_id.clone(), r.key_id.clone(), r.model.clone()))
                .or_default();
            for t in [t, &mut totals] {
                t.requests += r.requests;
                t.errors += r.errors;
                t.prompt_tokens += r.prompt_tokens;
                t.completion_tokens += r.completion_tokens;
                t.total_tokens += r.prompt_tokens + r.completion_tokens;
                t.cached_tokens += r.cached_tokens;
                t.reasoning_tokens += r.reasoning_tokens;
            }
        }
        let days = rows
            .into_iter()
            .map(|r| UsageDay {
                day: r.day,
                user_id: r.user_id,
                key_id: Some(r.key_id).filter(|k| !k.is_empty()),
                model: r.model,
                requests: r.requests,
                errors: r.errors,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                cached_tokens: r.cached_tokens,
                reasoning_tokens: r.reasoning_tokens,
            })
            .collect();
        Ok(UsageReport {
            from,
            to,
            totals,
            by_key_and_model: by
                .into_iter()
                .map(|((user_id, key_id, model), totals)| UsageGroup {
                    user_id,
                    key_id: Some(key_id).filter(|k| !k.is_empty()),
                    model,
                    totals,
                })
                .collect(),
            days,
        })
    }
}

fn key_id(p: &Principal) -> &str {
    match &p.via {
        Via::ApiKey { key_id } => key_id,
        _ => "",
    }
}

fn is_day(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First day (UTC, `YYYY-MM-DD`); default: the 1st of this month.
    pub from: Option<String>,
    /// Last day, inclusive; default: today.
    pub to: Option<String>,
    /// Only this API key.
    pub key_id: Option<String>,
    /// Admins: everyone's usage.
    pub all: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct UsageTotals {
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// Of the prompt tokens, those the provider read from its prompt cache (billed for less).
    pub cached_tokens: i64,
    /// Of the completion tokens, those a reasoning model spent thinking.
    pub reasoning_tokens: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageGroup {
    pub user_id: String,
    /// None: requests made with a login session.
    pub key_id: Option<String>,
    pub model: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageDay {
    pub day: String,
    pub user_id: String,
    pub key_id: Option<String>,
    pub model: String,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Of the prompt tokens, those read from the provider's prompt cache.
    pub cached_tokens: i64,
    /// Of the completion tokens, those spent reasoning.
    pub reasoning_tokens: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub totals: UsageTotals,
    /// Per user, key and model over the whole period.
    pub by_key_and_model: Vec<UsageGroup>,
    /// Per day, newest first.
    pub days: Vec<UsageDay>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_are_utc() {
        // 2026-12-31T23:59:59.999Z
        assert_eq!(day_of(1_798_761_599_999), "2026-12-31");
        assert_eq!(day_of(1_798_761_600_000), "2027-01-01");
        assert_eq!(month_start("2026-12-31"), "2026-12-01");
        // The cached day is the day (unless midnight passes between the two calls).
        let (a, b, c) = (day_of(now_ms()), today(), day_of(now_ms()));
        assert!(b == a || b == c, "{a} {b} {c}");
        assert_eq!(today(), today());
        assert!(is_day("2026-02-28"));
        for bad in ["2026-2-28", "20261228", "2026-12-0x", "2026-12-011"] {
            assert!(!is_day(bad), "{bad}");
        }
    }
}
