//! Cron schedules on the job queue. Each due occurrence is claimed with a compare-and-set on
//! the schedule's `next_run_at` in the same transaction that enqueues its job, so an
//! occurrence is enqueued exactly once however many processes share the database.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{TimeZone, Utc};
use serde::Serialize;
use zentoria_core::{Error, Result, id::new_id, time::now_ms};
use zentoria_store::repo::schedules::{self, ScheduleRow};

use crate::queue::RawJob;
use crate::{EnqueueOptions, JobKind, KindMeta, Queue};

/// An occurrence older than this when the scheduler sees it counts as missed (downtime).
const MISSED_AFTER_MS: i64 = 60_000;
/// Occurrences one schedule may catch up on in one tick.
const MAX_CATCH_UP: usize = 100;

/// What to do with occurrences that fell in a downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Forget them; run at the next occurrence.
    Skip,
    /// Run once now for all of them, then continue as usual.
    RunOnce,
}

impl Missed {
    fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run_once",
        }
    }
}

/// A schedule to create or replace.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// Stable, unique name (e.g. `audit.verify.daily`, `agent:<id>`).
    pub name: String,
    /// Five fields (minute first) or six (seconds first), `@hourly` style aliases too.
    pub cron: String,
    /// IANA time zone the expression is read in, e.g. `Europe/Amsterdam`.
    pub timezone: String,
    pub missed: Missed,
    pub owner_id: Option<String>,
}

/// A schedule as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub job_kind: String,
    pub missed: String,
    pub enabled: bool,
    #[serde(with = "zentoria_core::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub next_run_at: i64,
    #[serde(with = "zentoria_core::time::rfc3339_ms::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_run_at: Option<i64>,
}

impl From<ScheduleRow> for ScheduleView {
    fn from(r: ScheduleRow) -> Self {
        ScheduleView {
            name: r.name,
            cron: r.cron,
            timezone: r.timezone,
            job_kind: r.job_kind,
            missed: r.missed,
            enabled: r.enabled,
            next_run_at: r.next_run_at,
            last_run_at: r.last_run_at,
        }
    }
}

/// The first occurrence of `cron` (read in `timezone`) strictly after `after_ms`.
pub fn next_occurrence(cron: &str, timezone: &str, after_ms: i64) -> Result<i64> {
    let pattern = croner::Cron::from_str(cron)
        .map_err(|e| Error::invalid(format!("invalid cron expression {cron:?}: {e}")))?;
    let tz = chrono_tz::Tz::from_str(timezone)
        .map_err(|_| Error::invalid(format!("unknown time zone {timezone:?}")))?;
    let after = Utc
        .timestamp_millis_opt(after_ms)
        .single()
        .ok_or_else(|| Error::invalid("time out of range"))?
        .with_timezone(&tz);
    pattern
        .find_next_occurrence(&after, false)
        .map(|t| t.timestamp_millis())
        .map_err(|e| Error::invalid(format!("{cron:?} has no next occurrence: {e}")))
}

impl crate::Jobs {
    /// Creates or replaces the schedule `spec.name`, enqueueing `job` at each occurrence.
    pub async fn schedule<J: JobKind>(&self, spec: ScheduleSpec, job: &J) -> Result<ScheduleView> {
        let now = now_ms();
        let next = next_occurrence(&spec.cron, &spec.timezone, now)?;
        let row = ScheduleRow {
            id: new_id(),
            name: spec.name,
            cron: spec.cron,
            timezone: spec.timezone,
            job_kind: J::KIND.to_owned(),
            payload: serde_json::to_string(job).map_err(Error::internal)?,
            owner_id: spec.owner_id,
            missed: spec.missed.as_str().to_owned(),
            enabled: true,
            next_run_at: next,
            last_run_at: None,
            created_at: now,
            updated_at: now,
        };
        Ok(schedules::upsert(self.queue().db(), &row).await?.into())
    }

    pub async fn unschedule(&self, name: &str) -> Result<bool> {
        schedules::delete(self.queue().db(), name).await
    }

    pub async fn schedules(&self) -> Result<Vec<ScheduleView>> {
        Ok(schedules::list(self.queue().db())
            .await?
            .into_iter()
            .map(ScheduleView::from)
            .collect())
    }
}

/// Enqueues the jobs of every due occurrence. Returns how many jobs were enqueued.
pub(crate) async fn tick(queue: &Queue, kinds: &HashMap<&'static str, KindMeta>) -> Result<usize> {
    let mut enqueued = 0;
    let now = now_ms();
    for s in schedules::due(queue.db(), now, 100).await? {
        let mut due = s.next_run_at;
        for _ in 0..MAX_CATCH_UP {
            if due > now {
                break;
            }
            let missed = due < now - MISSED_AFTER_MS;
            let (run, next) = if missed {
                // Downtime: decide once for everything missed, then resume from now.
                (
                    s.missed == "run_once",
                    next_occurrence(&s.cron, &s.timezone, now)?,
                )
            } else {
                (true, next_occurrence(&s.cron, &s.timezone, due)?)
            };
            let mut tx = queue.db().begin().await?;
            if !schedules::advance(&mut tx, &s.id, due, next, run.then_some(due), now).await? {
                // Another process took this occurrence.
                tx.rollback().await?;
                break;
            }
            if run {
                let meta = kinds.get(s.job_kind.as_str());
                queue
                    .enqueue_raw_in(
                        &mut tx,
                        RawJob {
                            kind: &s.job_kind,
                            payload: &s.payload,
                            priority: meta.map_or(0, |m| m.priority),
                            max_attempts: meta.map_or(5, |m| m.max_attempts),
                            dedupe_key: None,
                        },
                        EnqueueOptions {
                            owner_id: s.owner_id.clone(),
                            // The occurrence it stands for; already due, so it runs at once.
                            run_at: Some(due),
                        },
                    )
                    .await?;
                enqueued += 1;
            } else {
                tracing::info!(schedule = %s.name, "skipping occurrences missed during downtime");
            }
            queue.commit(tx).await?;
            due = next;
        }
    }
    Ok(enqueued)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_1_2026_UTC: i64 = 1_767_225_600_000;

    #[test]
    fn occurrences_follow_the_expression_and_its_time_zone() {
        // Every day at 09:00 in Amsterdam (UTC+1 in winter) is 08:00 UTC.
        let next = next_occurrence("0 9 * * *", "Europe/Amsterdam", JAN_1_2026_UTC).unwrap();
        assert_eq!(next, JAN_1_2026_UTC + 8 * 3_600_000);
        // Six fields: seconds first.
        let next = next_occurrence("*/10 * * * * *", "UTC", JAN_1_2026_UTC).unwrap();
        assert_eq!(next, JAN_1_2026_UTC + 10_000);
        assert_eq!(
            next_occurrence("@hourly", "UTC", JAN_1_2026_UTC).unwrap(),
            JAN_1_2026_UTC + 3_600_000
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        assert!(next_occurrence("61 * * * *", "UTC", 0).is_err());
        assert!(next_occurrence("every day", "UTC", 0).is_err());
        assert!(next_occurrence("* * * * *", "Mars/Olympus", 0).is_err());
    }
}
