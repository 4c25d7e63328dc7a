//! The active metric series of one tenant: series ids seen within a window, up to a maximum.
//!
//! Invariants: a series stays active for `window` after its last point; a new series is
//! admitted only while fewer than `max` are active; a known one always is. Expired series are
//! swept at most every `window / 8`, and whenever the set is full.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct ActiveSeries {
    start: Instant,
    /// Series id to the second (since `start`) of its last point.
    last_seen: HashMap<u64, u32>,
    swept: u32,
}

impl ActiveSeries {
    pub fn new(now: Instant) -> Self {
        Self {
            start: now,
            last_seen: HashMap::new(),
            swept: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.last_seen.len()
    }

    fn sweep(&mut self, now: u32, window: u32) {
        self.last_seen
            .retain(|_, t| now.saturating_sub(*t) < window);
        self.swept = now;
    }

    /// Which of `ids` may be written (`true`), marking them active; the rest would make more
    /// than `max` series active.
    pub fn admit(&mut self, ids: &[u64], max: usize, window: Duration, now: Instant) -> Vec<bool> {
        let now = now.saturating_duration_since(self.start).as_secs() as u32;
        let window = window.as_secs().clamp(1, u32::MAX as u64) as u32;
        if now.saturating_sub(self.swept) >= (window / 8).max(1) {
            self.sweep(now, window);
        }
        let mut swept_full = false;
        ids.iter()
            .map(|id| {
                if let Some(t) = self.last_seen.get_mut(id) {
                    *t = now;
                    return true;
                }
                if self.last_seen.len() >= max && !swept_full {
                    self.sweep(now, window);
                    swept_full = true;
                }
                if self.last_seen.len() < max {
                    self.last_seen.insert(*id, now);
                    true
                } else {
                    false
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_known_series_and_new_ones_up_to_the_maximum_until_they_expire() {
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        let mut s = ActiveSeries::new(t0);
        assert_eq!(
            s.admit(&[1, 2, 2, 3], 2, window, t0),
            [true, true, true, false]
        );
        assert_eq!(
            s.admit(&[1, 4], 2, window, t0 + Duration::from_secs(30)),
            [true, false]
        );
        // Series 2 was last seen at 0 s, series 1 at 30 s: at 70 s only 2 has expired.
        assert_eq!(
            s.admit(&[4], 2, window, t0 + Duration::from_secs(70)),
            [true]
        );
        assert_eq!(
            s.admit(&[2], 2, window, t0 + Duration::from_secs(71)),
            [false]
        );
        assert_eq!(s.len(), 2);
    }
}
