//! A per-client circuit breaker counting consecutive failed calls.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Observable state of a client's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cooldown has passed.
    Open,
    /// The cooldown has passed: the next call is a trial that closes or re-opens the breaker.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        failures: u32,
    },
    HalfOpen {
        trial_in_flight: bool,
        failures: u32,
    },
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
}

/// Why a call was refused: consecutive failures and time until a trial is allowed.
#[derive(Debug)]
pub(crate) struct Refused {
    pub failures: u32,
    pub retry_in: Duration,
}

impl CircuitBreaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold,
            cooldown,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is always valid, so a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> BreakerState {
        match &*self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until, .. } if Instant::now() < *until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call. The returned permit must be resolved with
    /// [`Permit::success`] or [`Permit::failure`]; dropping it unresolved (the caller gave up)
    /// leaves the failure count alone and frees a half-open trial slot.
    pub(crate) fn acquire(self: &Arc<Self>) -> Result<Permit, Refused> {
        if self.threshold == 0 {
            return Ok(self.permit(false));
        }
        let mut state = self.lock();
        match &mut *state {
            State::Closed { .. } => Ok(self.permit(false)),
            State::Open { until, failures } => {
                let now = Instant::now();
                if now < *until {
                    return Err(Refused {
                        failures: *failures,
                        retry_in: *until - now,
                    });
                }
                *state = State::HalfOpen {
                    trial_in_flight: true,
                    failures: *failures,
                };
                Ok(self.permit(true))
            }
            State::HalfOpen {
                trial_in_flight,
                failures,
            } => {
                if *trial_in_flight {
                    Err(Refused {
                        failures: *failures,
                        retry_in: Duration::ZERO,
                    })
                } else {
                    *trial_in_flight = true;
                    Ok(self.permit(true))
                }
            }
        }
    }

    fn permit(self: &Arc<Self>, trial: bool) -> Permit {
        Permit {
            breaker: Arc::clone(self),
            trial,
            resolved: false,
        }
    }

    fn record(&self, trial: bool, ok: bool) {
        if self.threshold == 0 {
            return;
        }
        let mut state = self.lock();
        let next = match (&*state, ok) {
            (State::Closed { .. }, true) => State::Closed { failures: 0 },
            (State::HalfOpen { .. }, true) if trial => State::Closed { failures: 0 },
            (State::Closed { failures }, false) => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    State::Open {
                        until: Instant::now() + self.cooldown,
                        failures,
                    }
                } else {
                    State::Closed { failures }
                }
            }
            (State::HalfOpen { failures, .. }, false) if trial => State::Open {
                until: Instant::now() + self.cooldown,
                failures: failures + 1,
            },
            // Outcomes of calls that started before the breaker opened do not change it.
            _ => return,
        };
        *state = next;
    }

    fn release_trial(&self) {
        if let State::HalfOpen {
            trial_in_flight, ..
        } = &mut *self.lock()
        {
            *trial_in_flight = false;
        }
    }
}

/// Permission to make one call; see [`CircuitBreaker::acquire`].
#[derive(Debug)]
pub(crate) struct Permit {
    breaker: Arc<CircuitBreaker>,
    trial: bool,
    resolved: bool,
}

impl Permit {
    pub(crate) fn success(mut self) {
        self.resolved = true;
        self.breaker.record(self.trial, true);
    }

    pub(crate) fn failure(mut self) {
        self.resolved = true;
        self.breaker.record(self.trial, false);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.resolved && self.trial {
            self.breaker.release_trial();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers() {
        let b = CircuitBreaker::new(2, Duration::ZERO);
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap().failure();
        // Zero cooldown: immediately half-open.
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let trial = b.acquire().unwrap();
        assert!(b.acquire().is_err(), "only one trial at a time");
        trial.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn open_refuses_until_cooldown() {
        let b = CircuitBreaker::new(1, Duration::from_secs(3600));
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        let refused = b.acquire().unwrap_err();
        assert_eq!(refused.failures, 1);
        assert!(refused.retry_in > Duration::from_secs(3000));
    }

    #[test]
    fn success_resets_count_and_abandoned_trial_is_released() {
        let b = CircuitBreaker::new(2, Duration::ZERO);
        b.acquire().unwrap().failure();
        b.acquire().unwrap().success();
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap().failure();
        drop(b.acquire().unwrap());
        // The abandoned trial freed its slot; a failed trial re-opens.
        b.acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn zero_threshold_disables() {
        let b = CircuitBreaker::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            b.acquire().unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
