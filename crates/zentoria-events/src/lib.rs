//! The event bus: every domain event has a dotted name (`key.created`, `job.progress`, …), a
//! time, the scope needed to see it, and optionally the user it belongs to. Subscribers get a
//! live stream plus a bounded history to resume from (`Last-Event-ID`).
//!
//! In-process by default; on PostgreSQL, events also travel to every other Zentoria process
//! sharing the database through `NOTIFY`. This crate must never depend on a web framework.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use zentoria_core::{Scope, Scopes};
use zentoria_store::Db;

const CHANNEL: &str = "zentoria_events";
/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
const MAX_NOTIFY_BYTES: usize = 7900;

/// One event as subscribers see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Position in this process's stream; resume with `Last-Event-ID`.
    pub id: u64,
    /// Dotted name, e.g. `job.progress`.
    pub name: String,
    /// Epoch milliseconds.
    pub at: i64,
    /// The scope a subscriber needs to receive it; none means any signed-in caller.
    #[schema(value_type = Option<String>)]
    pub scope: Option<String>,
    /// When set, only this user (and admins) receive it.
    pub owner_id: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The wire form, serialised once however many subscribers receive it.
    #[serde(skip)]
    message: std::sync::OnceLock<String>,
}

impl Event {
    /// `{"type", "id", "at", "data"}` as text: the message SSE and WebSocket clients get.
    pub fn message(&self) -> &str {
        self.message.get_or_init(|| {
            serde_json::json!({
                "type": self.name,
                "id": self.id,
                "at": zentoria_core::time::rfc3339(self.at),
                "data": self.data,
            })
            .to_string()
        })
    }

    /// Whether a holder of `scopes` (user `user_id`) may receive this event.
    pub fn visible_to(&self, user_id: &str, scopes: Scopes) -> bool {
        let admin = scopes.allows(Scope::Admin);
        let scope_ok = match &self.scope {
            Some(s) => s.parse::<Scope>().is_ok_and(|s| scopes.allows(s)),
            None => true,
        };
        let owner_ok = admin || self.owner_id.as_deref().is_none_or(|o| o == user_id);
        scope_ok && owner_ok
    }

    /// Whether the name matches a filter: exact, `prefix.*`, or `*`.
    pub fn matches(&self, filters: &[String]) -> bool {
        filters.is_empty()
            || filters.iter().any(|f| {
                f == "*"
                    || f == &self.name
                    || f.strip_suffix(".*").is_some_and(|p| {
                        self.name.len() > p.len()
                            && self.name.starts_with(p)
                            && self.name.as_bytes()[p.len()] == b'.'
                    })
            })
    }
}

/// An event about to be published.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub name: String,
    pub scope: Option<Scope>,
    pub owner_id: Option<String>,
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(name: &str, scope: Option<Scope>, data: serde_json::Value) -> Self {
        NewEvent {
            name: name.to_owned(),
            scope,
            owner_id: None,
            data,
        }
    }

    pub fn owner(mut self, owner_id: Option<String>) -> Self {
        self.owner_id = owner_id;
        self
    }
}

/// What crosses processes through NOTIFY.
#[derive(Serialize, Deserialize)]
struct Wire {
    origin: String,
    name: String,
    at: i64,
    scope: Option<String>,
    owner_id: Option<String>,
    data: serde_json::Value,
}

/// The bus. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<Arc<Event>>,
    history: Mutex<VecDeque<Arc<Event>>>,
    history_len: usize,
    next_id: AtomicU64,
    origin: String,
    /// Events on their way to other processes (PostgreSQL only), sent in batches.
    outbox: Option<tokio::sync::mpsc::Sender<String>>,
}

impl EventBus {
    /// A bus keeping `history` recent events for resumption; each subscriber may fall
    /// `buffer` events behind before it is cut off.
    pub fn new(history: usize, buffer: usize) -> Self {
        Self::build(history, buffer, None)
    }

    /// A bus that also reaches other processes on the same PostgreSQL database. On SQLite it
    /// is the same as [`EventBus::new`].
    pub fn with_db(history: usize, buffer: usize, db: Db) -> Self {
        let Db::Postgres(pool) = db else {
            return Self::build(history, buffer, None);
        };
        let (outbox, rx) = tokio::sync::mpsc::channel(4096);
        let bus = Self::build(history, buffer, Some(outbox));
        tokio::spawn(send_batches(pool.clone(), rx));
        tokio::spawn(listen(Arc::downgrade(&bus.inner), pool));
        bus
    }

    fn build(
        history: usize,
        buffer: usize,
        outbox: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Self {
        let (tx, _) = broadcast::channel(buffer.max(16));
        EventBus {
            inner: Arc::new(Inner {
                tx,
                history: Mutex::new(VecDeque::with_capacity(history)),
                history_len: history.max(1),
                next_id: AtomicU64::new(1),
                origin: zentoria_core::id::new_id(),
                outbox,
            }),
        }
    }

    /// Publishes an event to local subscribers and, on PostgreSQL, to other processes.
    pub async fn publish(&self, ev: NewEvent) {
        let at = zentoria_core::time::now_ms();
        let scope = ev.scope.map(|s| s.as_str().to_owned());
        if let Some(outbox) = &self.inner.outbox {
            let wire = Wire {
                origin: self.inner.origin.clone(),
                name: ev.name.clone(),
                at,
                scope: scope.clone(),
                owner_id: ev.owner_id.clone(),
                data: ev.data.clone(),
            };
            match serde_json::to_string(&wire) {
                Ok(text) if text.len() <= MAX_NOTIFY_BYTES => {
                    // Waits only when the sender is far behind: backpressure, not loss.
                    if outbox.send(text).await.is_err() {
                        tracing::warn!(event = %ev.name, "the event sender has stopped");
                    }
                }
                Ok(_) => {
                    tracing::warn!(event = %ev.name, "event too large to send to other processes")
                }
                Err(e) => tracing::warn!(error = %e, "cannot encode an event"),
            }
        }
        self.inner.deliver(ev.name, at, scope, ev.owner_id, ev.data);
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.tx.subscribe()
    }

    /// Subscribes and returns the kept events after `last_id` (oldest first), atomically, so
    /// that nothing falls between the replay and the live stream. `None` in the second place
    /// means `last_id` is older than the history kept: some events are gone.
    pub fn resume(
        &self,
        last_id: u64,
    ) -> (broadcast::Receiver<Arc<Event>>, Option<Vec<Arc<Event>>>) {
        let history = self.inner.history.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.inner.tx.subscribe();
        if last_id >= self.inner.next_id.load(Ordering::Relaxed) {
            // An id this process never gave out (it restarted): whatever was missed is unknown.
            return (rx, None);
        }
        let oldest = history.front().map(|e| e.id).unwrap_or(u64::MAX);
        let complete = last_id + 1 >= oldest || history.is_empty();
        let replay: Vec<_> = history.iter().filter(|e| e.id > last_id).cloned().collect();
        (rx, complete.then_some(replay))
    }

    pub fn subscribers(&self) -> usize {
        self.inner.tx.receiver_count()
    }
}

impl Inner {
    fn deliver(
        &self,
        name: String,
        at: i64,
        scope: Option<String>,
        owner_id: Option<String>,
        data: serde_json::Value,
    ) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let ev = Arc::new(Event {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            name,
            at,
            scope,
            owner_id,
            data,
            message: std::sync::OnceLock::new(),
        });
        if history.len() == self.history_len {
            history.pop_front();
        }
        history.push_back(ev.clone());
        // Sent under the history lock, so resume() sees each event in exactly one place.
        let _ = self.tx.send(ev);
        metrics::counter!("zentoria_events_published_total").increment(1);
    }
}

/// Sends queued events to other processes, many per round trip, in order.
async fn send_batches(pool: sqlx::PgPool, mut rx: tokio::sync::mpsc::Receiver<String>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut delay = std::time::Duration::from_millis(50);
        for _ in 0..5 {
            match sqlx::query("SELECT pg_notify($1, e) FROM unnest($2::text[]) WITH ORDINALITY AS t(e, n) ORDER BY n")
                .bind(CHANNEL)
                .bind(&batch)
                .execute(&pool)
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "cannot send events to other processes; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        batch.clear();
    }
}

/// Receives other processes' events and delivers them here.
async fn listen(inner: std::sync::Weak<Inner>, pool: sqlx::PgPool) {
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        let res = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            loop {
                let n = l.recv().await?;
                let Some(inner) = inner.upgrade() else {
                    return Ok(());
                };
                match serde_json::from_str::<Wire>(n.payload()) {
                    Ok(w) if w.origin != inner.origin => {
                        inner.deliver(w.name, w.at, w.scope, w.owner_id, w.data)
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "ignoring a malformed event notification"),
                }
            }
        }
        .await;
        let res: Result<(), sqlx::Error> = res;
        match res {
            Ok(()) => return,
            Err(e) => {
                if inner.upgrade().is_none() {
                    return;
                }
                tracing::warn!(error = %e, "event notifications interrupted; reconnecting");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn resume_replays_what_was_missed_then_goes_live() {
        let bus = EventBus::new(3, 16);
        for i in 0..5 {
            bus.publish(NewEvent::new("t.tick", None, json!({ "i": i })))
                .await;
        }
        // History keeps the last 3 (ids 3, 4, 5).
        let (mut rx, replay) = bus.resume(3);
        let replay = replay.expect("id 3 is still in history");
        assert_eq!(replay.iter().map(|e| e.id).collect::<Vec<_>>(), vec![4, 5]);
        bus.publish(NewEvent::new("t.tick", None, json!({}))).await;
        assert_eq!(rx.recv().await.unwrap().id, 6);
        // Too old, or from before a restart: the caller learns that events were lost.
        assert!(bus.resume(1).1.is_none());
        assert!(bus.resume(99).1.is_none());
    }

    #[test]
    fn filters_and_visibility() {
        let ev = Event {
            id: 1,
            name: "job.progress".into(),
            at: 0,
            scope: Some("chat".into()),
            owner_id: Some("u1".into()),
            data: json!({}),
            message: Default::default(),
        };
        assert!(ev.matches(&[]));
        assert!(ev.matches(&["job.*".into()]));
        assert!(ev.matches(&["job.progress".into()]));
        assert!(!ev.matches(&["jo.*".into(), "job".into(), "key.*".into()]));
        let chat = Scopes::only(Scope::Chat);
        assert!(ev.visible_to("u1", chat));
        assert!(!ev.visible_to("u2", chat), "someone else's job");
        assert!(
            !ev.visible_to("u1", Scopes::only(Scope::FilesRead)),
            "lacks the scope"
        );
        assert!(ev.visible_to("u2", Scopes::only(Scope::Admin)));
    }
}
