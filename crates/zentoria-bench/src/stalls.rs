//! How often the machine itself stops running a thread: one spinning thread pinned to each CPU
//! reads the monotonic clock as fast as it can, and every gap between two readings longer than
//! [`GAP`] is time that CPU ran something else — another process, an interrupt, or nothing at all
//! because the hypervisor took the virtual CPU away. On an idle machine the gaps are the floor
//! under any latency measured on it: a request in flight when its CPU stops waits with it,
//! whatever the program serving it does.
//!
//! Run it on an otherwise idle machine (it keeps every CPU busy for the time it runs):
//! `zentoria-bench stalls [SECS]`. Prints one line per CPU and one for gaps seen on every CPU at
//! once.

use std::time::{Duration, Instant};

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The shortest gap counted: longer than a timer tick's interrupt, shorter than any wait a
/// request through a proxy could hide.
const GAP: Duration = Duration::from_micros(20);

/// Upper bounds of the histogram's buckets, in microseconds; the last bucket is open.
const BOUNDS_US: [u64; 5] = [50, 100, 200, 500, 1_000];

/// What one CPU's spinning thread saw.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Gaps {
    /// Gaps per bucket of [`BOUNDS_US`], the last counting those over a millisecond.
    pub counts: [u64; BOUNDS_US.len() + 1],
    /// Time lost in all gaps together.
    pub lost: Duration,
    /// The longest gap.
    pub longest: Duration,
    /// When each gap over [`BOUNDS_US`]'s last bound began and ended, from the start.
    pub long: Vec<(Duration, Duration)>,
}

impl Gaps {
    /// Counts one gap of `gap` that ended at `at` (both measured from the start).
    pub fn add(&mut self, at: Duration, gap: Duration) {
        if gap < GAP {
            return;
        }
        let us = gap.as_micros() as u64;
        let bucket = BOUNDS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(BOUNDS_US.len());
        self.counts[bucket] += 1;
        self.lost += gap;
        self.longest = self.longest.max(gap);
        if bucket == BOUNDS_US.len() {
            self.long.push((at.saturating_sub(gap), at));
        }
    }

    /// Gaps longer than `us` microseconds (one of [`BOUNDS_US`]).
    pub fn over(&self, us: u64) -> u64 {
        let from = BOUNDS_US.iter().position(|&b| b == us).map_or(0, |i| i + 1);
        self.counts[from..].iter().sum()
    }
}

/// Spins on the clock for `secs`, recording the gaps.
fn spin(secs: Duration) -> Gaps {
    let mut gaps = Gaps::default();
    let start = Instant::now();
    let mut last = start;
    loop {
        let now = Instant::now();
        gaps.add(now - start, now - last);
        last = now;
        if now - start >= secs {
            return gaps;
        }
    }
}

/// Where the intervals of `a` and `b` overlap: time both CPUs lost at once.
fn intersect(a: &[(Duration, Duration)], b: &[(Duration, Duration)]) -> Vec<(Duration, Duration)> {
    let mut both = Vec::new();
    for &(s1, e1) in a {
        for &(s2, e2) in b {
            let (s, e) = (s1.max(s2), e1.min(e2));
            if e > s {
                both.push((s, e));
            }
        }
    }
    both
}

/// Runs one spinning thread on each CPU this process may use and prints what they saw.
pub fn run(secs: u64) -> anyhow::Result<()> {
    let allowed = sched_getaffinity(None).map_err(|e| anyhow::anyhow!("read CPU affinity: {e}"))?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| allowed.is_set(c))
        .collect();
    let secs = secs.max(1);
    let length = Duration::from_secs(secs);
    let threads = cpus
        .iter()
        .map(|&cpu| {
            std::thread::spawn(move || {
                let mut set = CpuSet::new();
                set.set(cpu);
                sched_setaffinity(None, &set)
                    .map_err(|e| anyhow::anyhow!("pin to CPU {cpu}: {e}"))?;
                Ok::<_, anyhow::Error>(spin(length))
            })
        })
        .collect::<Vec<_>>();
    let mut seen = Vec::with_capacity(cpus.len());
    for thread in threads {
        seen.push(
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("a spinning thread panicked"))??,
        );
    }
    let per_sec = |n: u64| n as f64 / length.as_secs_f64();
    for (cpu, gaps) in cpus.iter().zip(&seen) {
        println!(
            "# stalls cpu{cpu}: {:.1}/s over 0.1 ms, {:.1}/s over 0.5 ms, {:.2}/s over 1 ms; longest {:.2} ms; {:.2}% of {secs} s lost in gaps over {} us",
            per_sec(gaps.over(100)),
            per_sec(gaps.over(500)),
            per_sec(gaps.over(1_000)),
            gaps.longest.as_secs_f64() * 1e3,
            gaps.lost.as_secs_f64() * 100.0 / length.as_secs_f64(),
            GAP.as_micros(),
        );
    }
    if let [first, rest @ ..] = seen.as_slice()
        && !rest.is_empty()
    {
        let together = rest.iter().fold(first.long.clone(), |so_far, gaps| {
            intersect(&so_far, &gaps.long)
        });
        let all: Duration = together.iter().map(|&(s, e)| e - s).sum();
        println!(
            "# stalls all CPUs at once (gaps over 1 ms overlapping): {} times, {:.2} ms in all",
            together.len(),
            all.as_secs_f64() * 1e3,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn gaps_fall_in_their_buckets_and_short_ones_are_not_counted() {
        let mut gaps = Gaps::default();
        for (at, gap) in [
            (1, 5),
            (100, 30),
            (300, 150),
            (2_000, 700),
            (9_000, 2_500),
            (9_500, 19),
        ] {
            gaps.add(us(at), us(gap));
        }
        assert_eq!(gaps.counts, [1, 0, 1, 0, 1, 1]);
        assert_eq!(gaps.over(100), 3);
        assert_eq!(gaps.over(500), 2);
        assert_eq!(gaps.over(1_000), 1);
        assert_eq!(gaps.lost, us(30 + 150 + 700 + 2_500));
        assert_eq!(gaps.longest, us(2_500));
        assert_eq!(gaps.long, vec![(us(6_500), us(9_000))]);
    }

    #[test]
    fn only_time_lost_on_both_at_once_is_shared() {
        let a = [(us(0), us(1_000)), (us(5_000), us(7_000))];
        let b = [(us(500), us(1_500)), (us(8_000), us(9_000))];
        assert_eq!(intersect(&a, &b), vec![(us(500), us(1_000))]);
        assert_eq!(intersect(&a, &[]), vec![]);
    }
}
