//! Service-graph edges: a client (or producer) span and the server (or consumer) span whose
//! parent it is make one call from the client's service to the server's, with both sides'
//! latencies and whether either failed.
//!
//! Every span of a trace reaches the same collector (agents route by trace id), so the two
//! sides meet here. Invariants: a side waits at most `wait` for its partner and then is
//! counted as unpaired and forgotten; at most `max_pending` sides wait at once (more are
//! counted and dropped); at most `max_edges` edges per tenant, the rest go to an overflow
//! edge.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::red::Histogram;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub client: String,
    pub server: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdgeStats {
    pub total: u64,
    pub failed: u64,
    pub server_seconds: Histogram,
    pub client_seconds: Histogram,
}

impl EdgeStats {
    fn new(bounds: &[f64]) -> Self {
        Self {
            total: 0,
            failed: 0,
            server_seconds: Histogram::new(bounds),
            client_seconds: Histogram::new(bounds),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Side {
    pub service: String,
    pub seconds: f64,
    pub error: bool,
}

#[derive(Debug)]
struct Pending {
    client: Option<Side>,
    server: Option<Side>,
}

/// What became of one observed side.
#[derive(Debug, PartialEq, Eq)]
pub enum Observed {
    Waiting,
    Paired,
    /// The edge went to the overflow edge.
    Overflow,
    /// No room to wait: dropped.
    Dropped,
}

#[derive(Debug, Default)]
pub struct Graph {
    /// Sides waiting, by (trace id, client span id).
    pending: HashMap<(String, String), Pending>,
    /// Arrival order of pending entries, for expiry.
    order: VecDeque<(Instant, (String, String))>,
    pub edges: HashMap<EdgeKey, EdgeStats>,
    pub overflow: Option<EdgeStats>,
}

pub struct Limits<'a> {
    pub bounds: &'a [f64],
    pub max_pending: usize,
    pub max_edges: usize,
}

impl Graph {
    /// A client span `span_id` of `trace`, or (with `is_client` false) a server span whose
    /// parent is `span_id`.
    pub fn observe(
        &mut self,
        trace: &str,
        span_id: &str,
        is_client: bool,
        side: Side,
        now: Instant,
        limits: &Limits<'_>,
    ) -> Observed {
        let key = (trace.to_string(), span_id.to_string());
        if !self.pending.contains_key(&key) {
            if self.pending.len() >= limits.max_pending {
                return Observed::Dropped;
            }
            self.order.push_back((now, key.clone()));
        }
        let entry = self.pending.entry(key.clone()).or_insert(Pending {
            client: None,
            server: None,
        });
        if is_client {
            entry.client = Some(side);
        } else {
            entry.server = Some(side);
        }
        if entry.client.is_none() || entry.server.is_none() {
            return Observed::Waiting;
        }
        let Some(Pending {
            client: Some(client),
            server: Some(server),
        }) = self.pending.remove(&key)
        else {
            return Observed::Waiting;
        };
        let edge = EdgeKey {
            client: client.service,
            server: server.service,
        };
        let room = self.edges.len() < limits.max_edges;
        let (stats, observed) = match self.edges.contains_key(&edge) || room {
            true => (
                self.edges
                    .entry(edge)
                    .or_insert_with(|| EdgeStats::new(limits.bounds)),
                Observed::Paired,
            ),
            false => (
                self.overflow
                    .get_or_insert_with(|| EdgeStats::new(limits.bounds)),
                Observed::Overflow,
            ),
        };
        stats.total += 1;
        stats.failed += u64::from(client.error || server.error);
        stats.client_seconds.observe(limits.bounds, client.seconds);
        stats.server_seconds.observe(limits.bounds, server.seconds);
        observed
    }

    /// Forgets sides that waited longer than `wait`; returns how many.
    pub fn expire(&mut self, now: Instant, wait: Duration) -> usize {
        let mut expired = 0;
        while let Some((since, _)) = self.order.front() {
            if now.duration_since(*since) < wait {
                break;
            }
            if let Some((_, key)) = self.order.pop_front()
                && self.pending.remove(&key).is_some()
            {
                expired += 1;
            }
        }
        expired
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(service: &str, seconds: f64, error: bool) -> Side {
        Side {
            service: service.into(),
            seconds,
            error,
        }
    }

    #[test]
    fn client_and_server_meet_in_either_order() {
        let limits = Limits {
            bounds: &[0.1, 1.0],
            max_pending: 2,
            max_edges: 1,
        };
        let now = Instant::now();
        let mut g = Graph::default();
        assert_eq!(
            g.observe("t", "c1", false, side("b", 0.05, true), now, &limits),
            Observed::Waiting
        );
        assert_eq!(
            g.observe("t", "c1", true, side("a", 0.2, false), now, &limits),
            Observed::Paired
        );
        assert_eq!(
            g.observe("t", "c2", true, side("a", 0.3, false), now, &limits),
            Observed::Waiting
        );
        assert_eq!(
            g.observe("t", "c2", false, side("b", 0.2, false), now, &limits),
            Observed::Paired
        );
        let e = &g.edges[&EdgeKey {
            client: "a".into(),
            server: "b".into(),
        }];
        assert_eq!((e.total, e.failed), (2, 1));
        assert_eq!(e.server_seconds.counts, vec![1, 1, 0]);
        assert_eq!(e.client_seconds.counts, vec![0, 2, 0]);
        // A second edge finds no room.
        g.observe("t", "c3", true, side("x", 0.3, false), now, &limits);
        assert_eq!(
            g.observe("t", "c3", false, side("y", 0.3, false), now, &limits),
            Observed::Overflow
        );
        // Waiting sides are bounded and expire.
        g.observe("t", "c4", true, side("a", 0.1, false), now, &limits);
        g.observe("t", "c5", true, side("a", 0.1, false), now, &limits);
        assert_eq!(
            g.observe("t", "c6", true, side("a", 0.1, false), now, &limits),
            Observed::Dropped
        );
        assert_eq!(
            g.expire(now + Duration::from_secs(1), Duration::from_secs(5)),
            0
        );
        assert_eq!(
            g.expire(now + Duration::from_secs(6), Duration::from_secs(5)),
            2
        );
        assert_eq!(g.pending(), 0);
    }
}
