//! The query service's own metrics.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use strata_server::Labels;

pub struct QueryMetrics {
    /// Requests by route and HTTP status.
    pub requests: Family<Labels, Counter>,
    /// Request latency by route, in seconds.
    pub duration: Family<Labels, Histogram>,
    /// Logins and queries of the wire protocols (PostgreSQL, Flight SQL) by outcome.
    pub wire: Family<Labels, Counter>,
}

impl QueryMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            wire: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("strata_query");
        r.register(
            "requests",
            "HTTP requests by route and status",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "HTTP request latency by route",
            m.duration.clone(),
        );
        r.register(
            "wire_requests",
            "Logins and queries over the PostgreSQL and Flight SQL protocols, by outcome (ok or the error's type)",
            m.wire.clone(),
        );
        m
    }

    /// Counts one `request` (`login`, `query`) of `protocol` that ended with `outcome`.
    pub fn wire(&self, protocol: &str, request: &str, outcome: &str) {
        self.wire
            .get_or_create(&vec![
                ("protocol", protocol.to_string()),
                ("request", request.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    pub fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
        self.duration
            .get_or_create(&vec![("route", route.to_string())])
            .observe(elapsed.as_secs_f64());
    }
}
