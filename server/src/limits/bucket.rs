//! A token bucket: `rate` tokens a second up to `burst`, taken by whole requests.
//!
//! Invariant: tokens never exceed `burst` and never go below zero; a request either takes all
//! its tokens or none.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket; `burst` 0 means one second of `rate`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = if burst > 0.0 { burst } else { rate };
        Self {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    pub fn burst(&self) -> f64 {
        self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
    }

    /// How long until `n` tokens are there (zero: now); call [`Bucket::take`] to take them.
    pub fn wait(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        if n <= self.tokens {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((n - self.tokens) / self.rate)
        }
    }

    /// Takes `n` tokens that [`Bucket::wait`] said are there.
    pub fn take(&mut self, n: f64) {
        self.tokens = (self.tokens - n).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100.0, 200.0, t0);
        assert_eq!(b.wait(200.0, t0), Duration::ZERO);
        b.take(200.0);
        assert_eq!(b.wait(50.0, t0), Duration::from_millis(500));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.wait(50.0, t1), Duration::ZERO);
        b.take(50.0);
        // A long pause fills it to the burst, no more.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(b.wait(200.0, t2), Duration::ZERO);
        assert!(b.wait(201.0, t2) > Duration::ZERO);
        assert_eq!(Bucket::new(10.0, 0.0, t0).burst(), 10.0);
    }
}
