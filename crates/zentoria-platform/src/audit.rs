//! The audit log: security-relevant actions, appended off the request path in batches,
//! details sealed with AES-256-GCM, and every entry chained to the one before by an
//! HMAC-SHA256 keyed from the master key — so a changed, inserted or removed entry is found by
//! [`verify`], and the chain cannot be recomputed without the key.
//!
//! Recording applies backpressure instead of dropping: when the writer falls behind, callers
//! wait for room in its queue.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};
use zentoria_core::crypto::MasterKey;
use zentoria_core::{Error, Result, id::new_id, time::now_ms};
use zentoria_store::Db;
use zentoria_store::repo::audit::{self, AuditFilter, AuditRow};

use crate::ClientInfo;

const QUEUE: usize = 4096;
const BATCH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// Who did it: a user id when known, and a readable label.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: Option<String>,
    pub label: String,
}

impl Actor {
    pub fn named(label: &str) -> Self {
        Actor {
            id: None,
            label: label.to_owned(),
        }
    }

    pub fn user_id(id: &str) -> Self {
        Actor {
            id: Some(id.to_owned()),
            label: String::new(),
        }
    }

    pub fn cli() -> Self {
        Actor::named("cli")
    }
}

/// One thing to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub action: String,
    pub outcome: Outcome,
    pub actor: Option<Actor>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub client: ClientInfo,
    pub details: Option<serde_json::Value>,
    pub at: i64,
}

impl AuditEvent {
    pub fn new(action: &str, outcome: Outcome, client: &ClientInfo) -> Self {
        AuditEvent {
            action: action.to_owned(),
            outcome,
            actor: None,
            resource_type: None,
            resource_id: None,
            client: client.clone(),
            details: None,
            at: now_ms(),
        }
    }

    pub fn actor(mut self, actor: Option<Actor>) -> Self {
        self.actor = actor;
        self
    }

    pub fn resource(mut self, kind: &str, id: &str) -> Self {
        self.resource_type = Some(kind.to_owned());
        self.resource_id = Some(id.to_owned());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

enum Msg {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// The handle modules record through. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    db: Db,
    key: MasterKey,
}

/// The writer task; await [`AuditWriter::shutdown`] to flush what is queued before exiting.
pub struct AuditWriter {
    handle: tokio::task::JoinHandle<()>,
    log: AuditLog,
}

impl AuditLog {
    /// Starts the writer task and returns the handle to record through.
    pub fn start(db: Db, key: MasterKey) -> (AuditLog, AuditWriter) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = AuditLog { tx, db, key };
        let handle = tokio::spawn(write_loop(log.clone(), rx));
        (log.clone(), AuditWriter { handle, log })
    }

    /// Queues an event, waiting for room when the writer is behind (never dropping it).
    pub async fn record(&self, event: AuditEvent) {
        if self.tx.send(Msg::Event(Box::new(event))).await.is_err() {
            tracing::error!("audit writer has stopped; an audit event could not be recorded");
        }
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Entries matching the filter, newest first, with details decrypted.
    pub async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        audit::list(&self.db, filter)
            .await?
            .into_iter()
            .map(|row| self.open(row))
            .collect()
    }

    fn open(&self, row: AuditRow) -> Result<AuditEntry> {
        let details = match &row.details {
            Some(sealed) => {
                let plain = self.key.open(sealed, row.id.as_bytes())?;
                Some(serde_json::from_slice(&plain).map_err(Error::internal)?)
            }
            None => None,
        };
        Ok(AuditEntry {
            seq: row.seq,
            id: row.id,
            at: row.at,
            actor_id: row.actor_id,
            actor: row.actor,
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            outcome: row.outcome,
            client_ip: row.client_ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            details,
            hash: row.hash,
        })
    }

    fn chain_key(&self) -> [u8; 32] {
        self.key.derive("audit-chain/v1")
    }

    /// Walks the whole chain and reports the first entry that was changed, inserted or removed.
    pub async fn verify(&self) -> Result<VerifyReport> {
        let key = self.chain_key();
        let mut expected_seq = 0i64;
        let mut prev = GENESIS.to_owned();
        loop {
            let page = audit::page_after(&self.db, expected_seq, 1000).await?;
            if page.is_empty() {
                break;
            }
            for row in page {
                expected_seq += 1;
                let problem = if row.seq != expected_seq {
                    Some(format!(
                        "entry {expected_seq} is missing (next present is {})",
                        row.seq
                    ))
                } else if row.prev_hash != prev {
                    Some(format!(
                        "entry {} does not follow the entry before it",
                        row.seq
                    ))
                } else if entry_hash(&key, &row) != row.hash {
                    Some(format!(
                        "entry {} was changed after it was written",
                        row.seq
                    ))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Ok(VerifyReport {
                        entries: expected_seq - 1,
                        ok: false,
                        problem: Some(problem),
                    });
                }
                prev = row.hash;
            }
        }
        let (head_seq, head_hash) = audit::head(&self.db).await?;
        if head_seq != expected_seq || head_hash != prev {
            return Ok(VerifyReport {
                entries: expected_seq,
                ok: false,
                problem: Some(format!(
                    "the log ends at entry {expected_seq} but the chain head records entry {head_seq}: entries were removed"
                )),
            });
        }
        Ok(VerifyReport {
            entries: expected_seq,
            ok: true,
            problem: None,
        })
    }
}

impl AuditWriter {
    /// Writes everything queued, then stops the writer.
    pub async fn shutdown(self) {
        self.log.flush().await;
        drop(self.log);
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// An entry as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub id: String,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    pub actor_id: Option<String>,
    pub actor: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub entries: i64,
    pub ok: bool,
    pub problem: Option<String>,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

async fn write_loop(log: AuditLog, mut rx: mpsc::Receiver<Msg>) {
    let key = log.chain_key();
    let mut batch: Vec<AuditRow> = Vec::with_capacity(BATCH);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(ev) => batch.push(log.seal_event(*ev)),
                Msg::Flush(done) => waiters.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        write_batch(&log.db, &key, &mut batch).await;
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
    write_batch(&log.db, &key, &mut batch).await;
}

/// Writes a batch, retrying with backoff until the database takes it: audit entries are
/// never dropped.
async fn write_batch(db: &Db, key: &[u8; 32], batch: &mut Vec<AuditRow>) {
    if batch.is_empty() {
        return;
    }
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        match audit::append(db, batch, |row, seq, prev| {
            row.seq = seq;
            row.prev_hash = prev.to_owned();
            row.hash = entry_hash(key, row);
        })
        .await
        {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = ?e, entries = batch.len(), "cannot write audit entries; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
    metrics::counter!("zentoria_audit_entries_total").increment(batch.len() as u64);
    batch.clear();
}

impl AuditLog {
    fn seal_event(&self, ev: AuditEvent) -> AuditRow {
        let id = new_id();
        let details = ev.details.map(|d| {
            let plain = serde_json::to_vec(&d).unwrap_or_default();
            self.key.seal(&plain, id.as_bytes())
        });
        let (actor_id, actor) = match ev.actor {
            Some(a) => (a.id, Some(a.label).filter(|l| !l.is_empty())),
            None => (None, None),
        };
        AuditRow {
            seq: 0,
            id,
            at: ev.at,
            actor_id,
            actor,
            action: ev.action,
            resource_type: ev.resource_type,
            resource_id: ev.resource_id,
            outcome: ev.outcome.as_str().to_owned(),
            client_ip: ev.client.ip,
            user_agent: ev
                .client
                .user_agent
                .map(|ua| ua.chars().take(512).collect()),
            request_id: ev.client.request_id,
            details,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

/// HMAC-SHA256 over the previous hash and every field, each length-prefixed so that no two
/// different entries encode alike.
fn entry_hash(key: &[u8; 32], row: &AuditRow) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    let mut field = |bytes: Option<&[u8]>| match bytes {
        Some(b) => {
            mac.update(&(b.len() as u64).to_le_bytes());
            mac.update(b);
        }
        None => mac.update(&u64::MAX.to_le_bytes()),
    };
    field(Some(row.prev_hash.as_bytes()));
    field(Some(&row.seq.to_le_bytes()));
    field(Some(row.id.as_bytes()));
    field(Some(&row.at.to_le_bytes()));
    field(row.actor_id.as_deref().map(str::as_bytes));
    field(row.actor.as_deref().map(str::as_bytes));
    field(Some(row.action.as_bytes()));
    field(row.resource_type.as_deref().map(str::as_bytes));
    field(row.resource_id.as_deref().map(str::as_bytes));
    field(Some(row.outcome.as_bytes()));
    field(row.client_ip.as_deref().map(str::as_bytes));
    field(row.user_agent.as_deref().map(str::as_bytes));
    field(row.request_id.as_deref().map(str::as_bytes));
    field(row.details.as_deref());
    hex::encode(mac.finalize().into_bytes())
}
