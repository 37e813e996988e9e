//! The durable job queue: every long-running thing in Zentoria (ingestion, agent tasks,
//! workflow runs, builds, deploys) is a job in the database, claimed under a lease by a worker
//! pool, retried with backoff when it fails transiently, cancellable, and recovered when the
//! process running it dies.
//!
//! A job kind is a type implementing [`JobKind`]; its handler is registered once at startup in
//! a [`Registry`]. Enqueue with [`Queue::enqueue`], or inside the transaction of the write it
//! belongs to with [`Queue::enqueue_in`] and [`Queue::commit`].
//!
//! This crate must never depend on a web framework.

mod kind;
mod queue;
mod schedule;
mod service;
mod worker;

pub use kind::{JobContext, JobError, JobKind, KindMeta, Registry};
pub use queue::{EnqueueOptions, Enqueued, Queue};
pub use schedule::{Missed, ScheduleSpec, ScheduleView, next_occurrence};
pub use service::{JobView, Jobs, ListJobs};
pub use worker::{WorkerHandle, WorkerSettings, start_workers};
