//! What the full-text and vector indexes share as followers of the `knowledge_changes` log:
//! how far they have applied it, waiting for a position, and being woken for new changes.

use std::time::Duration;

use tokio::sync::{Notify, watch};
use zentoria_core::{Error, Result};

pub(crate) struct Follower {
    /// Names the index in errors ("the full-text index …").
    what: &'static str,
    applied: watch::Sender<i64>,
    wake: Notify,
}

impl Follower {
    pub(crate) fn new(what: &'static str, applied: i64) -> Follower {
        Follower {
            what,
            applied: watch::channel(applied).0,
            wake: Notify::new(),
        }
    }

    /// The last change applied.
    pub(crate) fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    pub(crate) fn set_applied(&self, seq: i64) {
        self.applied.send_replace(seq);
    }

    /// Asks the follow loop to look for changes now.
    pub(crate) fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Returns when nudged or after `every`.
    pub(crate) async fn idle(&self, every: Duration) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }

    /// Waits until change `seq` is applied.
    pub(crate) async fn wait_for(&self, seq: i64, timeout: Duration) -> Result<()> {
        self.nudge();
        let mut rx = self.applied.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|a| *a >= seq)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(format!(
                "the {} did not reach change {seq} within {timeout:?}",
                self.what
            ))),
        }
    }
}
