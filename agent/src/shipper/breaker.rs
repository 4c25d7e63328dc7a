//! A circuit breaker per collector: closed -> open -> half-open -> closed.
//!
//! Closed: every batch may be shipped. After `threshold` failures in a row it opens: nothing is
//! shipped to the collector for a backoff period (doubling each time it opens again, capped,
//! with jitter so that agents do not probe in lockstep), and the shipper routes new keys of
//! that collector to the next member of the ring. When the period is over it is half-open: the
//! next batch is a probe; success closes it, failure opens it again for longer.
//!
//! Written here rather than taken from a crate (such as `failsafe`): those wrap calls in a
//! policy object, while a lane needs the state itself (to re-route keys the moment it opens,
//! to know when to probe without a batch at hand, and to export it as a gauge), and the whole
//! machine is a few dozen lines with tests.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

impl State {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::HalfOpen => 1,
            State::Open { .. } => 2,
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    state: State,
    failures: u32,
    threshold: u32,
    open_for: Duration,
    base: Duration,
    max: Duration,
}

impl Breaker {
    pub fn new(threshold: u32, base: Duration, max: Duration) -> Self {
        Self {
            state: State::Closed,
            failures: 0,
            threshold: threshold.max(1),
            open_for: base,
            base,
            max: max.max(base),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a batch may be shipped now; an expired open period turns half-open.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed | State::HalfOpen => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen;
                true
            }
            State::Open { .. } => false,
        }
    }

    /// When shipping may be tried again (now, unless open).
    pub fn retry_at(&self, now: Instant) -> Instant {
        match self.state {
            State::Open { until } => until,
            _ => now,
        }
    }

    /// Whether new keys should avoid this collector.
    pub fn is_unhealthy(&self) -> bool {
        !matches!(self.state, State::Closed)
    }

    pub fn success(&mut self) {
        self.state = State::Closed;
        self.failures = 0;
        self.open_for = self.base;
    }

    /// Records a failure; returns whether the breaker opened just now.
    pub fn failure(&mut self, now: Instant, jitter: f64) -> bool {
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            State::HalfOpen => {
                self.open_for = (self.open_for * 2).min(self.max);
                true
            }
            State::Closed => self.failures >= self.threshold,
            State::Open { .. } => false,
        };
        if open {
            // Jitter in [0.5, 1.0] of the period.
            let period = self.open_for.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
            self.state = State::Open {
                until: now + period,
            };
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_and_closes() {
        let mut b = Breaker::new(3, Duration::from_secs(1), Duration::from_secs(8));
        let t = Instant::now();
        assert!(b.allow(t));
        assert!(!b.failure(t, 1.0));
        assert!(!b.failure(t, 1.0));
        assert!(b.failure(t, 1.0), "third failure opens");
        assert!(!b.allow(t + Duration::from_millis(500)));
        assert!(b.is_unhealthy());
        assert!(
            b.allow(t + Duration::from_secs(1)),
            "half-open after the period"
        );
        assert_eq!(b.state(), State::HalfOpen);
        // A failed probe opens it again for twice as long.
        let t2 = t + Duration::from_secs(1);
        b.failure(t2, 1.0);
        assert!(!b.allow(t2 + Duration::from_millis(1500)));
        assert!(b.allow(t2 + Duration::from_secs(2)));
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert!(!b.is_unhealthy());
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let mut b = Breaker::new(1, Duration::from_secs(1), Duration::from_secs(4));
        let mut t = Instant::now();
        for _ in 0..10 {
            b.failure(t, 0.0);
            t = b.retry_at(t);
            assert!(b.allow(t));
        }
        let start = t;
        b.failure(t, 0.0);
        let wait = b.retry_at(start) - start;
        assert_eq!(
            wait,
            Duration::from_secs(2),
            "half of the 4 s cap with zero jitter"
        );
    }
}
