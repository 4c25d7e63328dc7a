//! Collector discovery: a static list of `HOST:PORT`, where a host may be a DNS name that
//! resolves to several addresses (a Kubernetes headless service). Every resolved address is a
//! member. Names are resolved again periodically; a failed resolution keeps the last good set.

use std::time::Duration;

use tokio::net::lookup_host;
use tracing::warn;

/// Resolves the configured collector entries into a member list.
#[derive(Debug, Clone)]
pub struct Discovery {
    entries: Vec<String>,
    refresh: Duration,
}

impl Discovery {
    pub fn new(entries: Vec<String>, refresh: Duration) -> Self {
        Self { entries, refresh }
    }

    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// Resolves every entry; `previous` is kept for entries that fail to resolve.
    pub async fn resolve(&self, previous: &[String]) -> Vec<String> {
        let mut members = Vec::new();
        let mut failed = false;
        for entry in &self.entries {
            match lookup_host(entry.as_str()).await {
                Ok(addrs) => members.extend(addrs.map(|a| a.to_string())),
                Err(e) => {
                    warn!(collector = %entry, error = %e, "cannot resolve collector");
                    failed = true;
                }
            }
        }
        if failed && members.is_empty() {
            return previous.to_vec();
        }
        members.sort();
        members.dedup();
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_names_and_literals() {
        let d = Discovery::new(
            vec!["127.0.0.1:4320".into(), "localhost:4321".into()],
            Duration::from_secs(1),
        );
        let m = d.resolve(&[]).await;
        assert!(m.contains(&"127.0.0.1:4320".to_string()), "{m:?}");
        assert!(m.iter().any(|a| a.ends_with(":4321")), "{m:?}");
    }

    #[tokio::test]
    async fn keeps_previous_set_when_nothing_resolves() {
        let d = Discovery::new(
            vec!["no-such-host.invalid:1".into()],
            Duration::from_secs(1),
        );
        let prev = vec!["127.0.0.1:9".to_string()];
        assert_eq!(d.resolve(&prev).await, prev);
    }
}
