//! Prometheus scraping: `[[agent.scrape]]` jobs of static targets, each fetched every
//! `interval_ms` (within `timeout_ms`) from `<scheme>://<target><metrics_path>`, so a node's
//! exporters (and the agent's own `/metrics`) need no Prometheus server. Targets may need TLS
//! and a bearer token or basic auth ([`client`]).
//!
//! Every scrape becomes samples in Prometheus's model (names and labels verbatim, `TYPE
//! counter` families as monotonic sums), stamped with the scrape's start time unless a line
//! carries its own, with `job` and `instance` (a clashing exposed label is kept as
//! `exported_job` / `exported_instance`) and the job's static labels. Like Prometheus, each
//! scrape also writes `up`, `scrape_duration_seconds` and `scrape_samples_scraped`, and a
//! staleness marker for every series of the previous scrape that is gone (all of them when
//! the target is down). Samples enter the pipeline through the OTLP receiver, like remote
//! write. Targets are spread over the interval by a hash of their address.

mod client;
mod parse;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use strata_schema::remote_write::{Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
use strata_server::tls::client::ClientTlsConfig;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::Labels;
use strata_ingest::otlp::{Converted, Metrics, OtlpReceiver, Payload};

use client::ScrapeClient;
pub use parse::{Exposition, ParsedSample, parse};

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// One scrape job (`[[agent.scrape]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every series scraped.
    pub job: String,
    /// Targets as `HOST:PORT`; each becomes the `instance` label.
    pub targets: Vec<String>,
    /// Path of the metrics endpoint.
    pub metrics_path: String,
    /// Time between scrapes of one target, in milliseconds.
    pub interval_ms: u64,
    /// A scrape taking longer fails (`up` 0), in milliseconds; at most `interval_ms`.
    pub timeout_ms: u64,
    /// Largest exposition accepted; a larger one fails the scrape.
    pub max_body_bytes: usize,
    /// Tenant of the samples (the agent's default tenant when empty).
    pub tenant: String,
    /// Labels added to every series of the job.
    pub labels: BTreeMap<String, String>,
    /// `http` or `https` (`https` needs `tls.ca` or `tls.pinned_cert`).
    pub scheme: Option<String>,
    /// TLS to the targets (`[agent.scrape.tls]`): CA, optional client certificate, server
    /// name.
    pub tls: ClientTlsConfig,
    /// `Authorization: Bearer` token of the targets.
    pub bearer_token: Option<String>,
    /// ... or read from this file at every scrape (a rotated token is used from the next).
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// Basic auth to the targets: user and password.
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            job: String::new(),
            targets: Vec::new(),
            metrics_path: "/metrics".into(),
            interval_ms: 15_000,
            timeout_ms: 10_000,
            max_body_bytes: 32 << 20,
            tenant: String::new(),
            labels: BTreeMap::new(),
            scheme: None,
            tls: ClientTlsConfig::default(),
            bearer_token: None,
            bearer_token_file: None,
            username: None,
            password: None,
        }
    }
}

impl ScrapeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.job.is_empty() {
            return Err("a scrape job needs a `job` name".into());
        }
        if self.targets.is_empty() {
            return Err(format!("scrape job {:?} has no targets", self.job));
        }
        for t in &self.targets {
            let uri: Result<http::Uri, _> = format!("http://{t}{}", self.metrics_path).parse();
            if t.contains('/') || uri.is_err() {
                return Err(format!(
                    "scrape job {:?}: target {t:?} must be HOST:PORT",
                    self.job
                ));
            }
        }
        self.validate_access()
            .map_err(|e| format!("scrape job {:?}: {e}", self.job))?;
        if !self.metrics_path.starts_with('/') {
            return Err(format!(
                "scrape job {:?}: metrics_path must start with '/'",
                self.job
            ));
        }
        if self.interval_ms == 0 || self.timeout_ms == 0 || self.timeout_ms > self.interval_ms {
            return Err(format!(
                "scrape job {:?}: need 0 < timeout_ms <= interval_ms",
                self.job
            ));
        }
        Ok(())
    }
}

/// Scrape counters, by job and outcome (`ok`, `failed`, `refused`).
#[derive(Clone)]
pub struct ScrapeMetrics {
    scrapes: Family<Labels, Counter>,
    samples: Family<Labels, Counter>,
}

impl ScrapeMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            scrapes: Family::default(),
            samples: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("strata_agent_scrape");
        r.register(
            "scrapes",
            "Scrapes by job and outcome (ok, failed: target down or broken exposition, refused: not accepted downstream)",
            m.scrapes.clone(),
        );
        r.register("samples", "Samples scraped, by job", m.samples.clone());
        m
    }

    fn count(&self, job: &str, outcome: &str) {
        self.scrapes
            .get_or_create(&vec![
                ("job", job.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }
}

/// Starts one task per target of `config`, until `shutdown`.
pub fn spawn(
    config: &ScrapeConfig,
    receiver: Arc<OtlpReceiver>,
    metrics: &ScrapeMetrics,
    shutdown: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) {
    for target in &config.targets {
        let scraper = Scraper {
            config: config.clone(),
            target: target.clone(),
            receiver: receiver.clone(),
            metrics: metrics.clone(),
            previous: HashSet::new(),
        };
        tasks.spawn(scraper.run(shutdown.clone()));
    }
}

struct Scraper {
    config: ScrapeConfig,
    target: String,
    receiver: Arc<OtlpReceiver>,
    metrics: ScrapeMetrics,
    /// Label sets written by the last stored scrape (for staleness markers).
    previous: Labelsets,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Scraper {
    async fn run(mut self, shutdown: CancellationToken) {
        let interval = Duration::from_millis(self.config.interval_ms);
        let offset = xxhash_rust::xxh3::xxh3_64(self.target.as_bytes()) % self.config.interval_ms;
        let client = ScrapeClient::new(&self.config);
        let first = tokio::time::Instant::now() + Duration::from_millis(offset);
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.scrape_once(&client).await;
        }
    }

    async fn scrape_once(&mut self, client: &ScrapeClient) {
        let t = now_ms();
        let start = Instant::now();
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let result = match tokio::time::timeout(timeout, client.fetch(&self.target)).await {
            Ok(Ok(text)) => parse(&text),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("timed out after {timeout:?}")),
        };
        let exposition = match result {
            Ok(e) => Some(e),
            Err(e) => {
                debug!(job = %self.config.job, target = %self.target, error = %e, "scrape failed");
                None
            }
        };
        let (request, current) = self.write_request(exposition.as_ref(), t, start.elapsed());
        let converted = strata_schema::remote_write::to_batch(
            &request,
            &strata_schema::remote_write::MetadataCache::default(),
        );
        let job = self.config.job.clone();
        self.metrics
            .samples
            .get_or_create(&vec![("job", job.clone())])
            .inc_by(exposition.as_ref().map_or(0, |e| e.samples.len()) as u64);
        let tenant = (!self.config.tenant.is_empty()).then(|| self.config.tenant.clone());
        let export = match converted {
            Ok(converted) => self.export(tenant, converted.batch).await,
            // A batch past Arrow's offset limits; a scrape within its body limit cannot reach it.
            Err(e) => Err(e.to_string()),
        };
        let outcome = match (&export, &exposition) {
            (Err(e), _) => {
                warn!(job = %job, target = %self.target, error = %e, "scraped samples refused");
                "refused"
            }
            (Ok(_), None) => "failed",
            (Ok(_), Some(_)) => "ok",
        };
        // Only series that were stored count as written: after a refusal the next scrape
        // still marks stale what the last stored scrape had.
        if export.is_ok() {
            self.previous = current;
        }
        self.metrics.count(&job, outcome);
    }

    /// Hands the scrape's rows to the pipeline. A pipeline that does not take them within an
    /// interval refuses them, so the next scrape does not wait behind this one. The export runs
    /// as a task of its own and is never cancelled midway (the buffer's reservations and WAL
    /// writes complete); a late one is left to finish, and its outcome is not counted.
    async fn export(
        &self,
        tenant: Option<String>,
        batch: Option<arrow::record_batch::RecordBatch>,
    ) -> Result<(), String> {
        let receiver = self.receiver.clone();
        let rows = Converted::of_rows(batch);
        let task = tokio::spawn(async move {
            receiver
                .export::<Metrics>("scrape", tenant.as_deref(), Payload::Converted(rows))
                .await
        });
        match tokio::time::timeout(Duration::from_millis(self.config.interval_ms), task).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(e)) => Err(format!("export task: {e}")),
            Err(_) => {
                Err("the pipeline did not take the samples within the scrape interval".to_string())
            }
        }
    }

    /// The samples of one scrape (or of a failed one), with staleness markers for series
    /// that are gone and the scrape's own series; and the label sets it writes.
    fn write_request(
        &self,
        exposition: Option<&Exposition>,
        t: i64,
        took: Duration,
    ) -> (WriteRequest, Labelsets) {
        let mut timeseries = Vec::new();
        let mut current = HashSet::new();
        let mut metadata = Vec::new();
        // The target's labels win: an exposed label of the same name is kept as
        // `exported_<name>`, as Prometheus does without `honor_labels`.
        let target_labels = |mut labels: Vec<(String, String)>| {
            let is_target_label = |name: &str| {
                name == "job" || name == "instance" || self.config.labels.contains_key(name)
            };
            let mut taken: HashSet<String> = labels.iter().map(|l| l.0.clone()).collect();
            for l in labels.iter_mut() {
                if is_target_label(&l.0) {
                    // Prefixed again while the name is taken, as Prometheus does.
                    let mut name = format!("exported_{}", l.0);
                    while taken.contains(&name) || is_target_label(&name) {
                        name = format!("exported_{name}");
                    }
                    taken.insert(name.clone());
                    l.0 = name;
                }
            }
            labels.push(("job".into(), self.config.job.clone()));
            labels.push(("instance".into(), self.target.clone()));
            labels.extend(
                self.config
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "job" && *k != "instance")
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            labels.sort();
            labels
        };
        let mut push = |labels: Vec<(String, String)>, value: f64, ts: i64| {
            timeseries.push(TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: vec![Sample {
                    value,
                    timestamp: ts,
                }],
                ..Default::default()
            });
        };
        let scraped = exposition.map_or(0, |e| e.samples.len());
        if let Some(e) = exposition {
            for s in &e.samples {
                let mut labels = s.labels.clone();
                labels.push(("__name__".into(), s.name.clone()));
                let labels = target_labels(labels);
                current.insert(labels.clone());
                push(labels, s.value, s.timestamp_ms.unwrap_or(t));
            }
            for (name, kind) in &e.types {
                metadata.push(MetricMetadata {
                    r#type: metadata_type(kind),
                    metric_family_name: name.clone(),
                    help: e.help.get(name).cloned().unwrap_or_default(),
                    unit: String::new(),
                });
            }
        }
        for gone in self.previous.difference(&current) {
            push(gone.clone(), f64::from_bits(STALE_NAN), t);
        }
        let up = if exposition.is_some() { 1.0 } else { 0.0 };
        for (name, value) in [
            ("up", up),
            ("scrape_duration_seconds", took.as_secs_f64()),
            ("scrape_samples_scraped", scraped as f64),
        ] {
            push(
                target_labels(vec![("__name__".into(), name.into())]),
                value,
                t,
            );
        }
        let request = WriteRequest {
            timeseries,
            metadata,
        };
        (request, current)
    }
}

/// Label sets of one scrape.
type Labelsets = HashSet<Vec<(String, String)>>;

/// A `# TYPE` as remote write's metadata type.
fn metadata_type(kind: &str) -> i32 {
    match kind {
        "counter" => 1,
        "gauge" => 2,
        "histogram" => 3,
        "gaugehistogram" => 4,
        "summary" => 5,
        "info" => 6,
        "stateset" => 7,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_ingest::otlp::OtlpMetrics;
    use strata_ingest::test_sink::Sink;

    fn scraper(labels: &[(&str, &str)]) -> Scraper {
        let mut registry = prometheus_client::registry::Registry::default();
        let otlp = Arc::new(OtlpMetrics::register(&mut registry, "test"));
        let receiver = Arc::new(OtlpReceiver::new(
            Arc::new(Sink::default()),
            otlp,
            1 << 20,
            Arc::new(strata_server::auth::Gate::open("default")),
        ));
        Scraper {
            config: ScrapeConfig {
                job: "node".into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..ScrapeConfig::default()
            },
            target: "127.0.0.1:9100".into(),
            receiver,
            metrics: ScrapeMetrics::register(&mut registry),
            previous: HashSet::new(),
        }
    }

    #[test]
    fn target_labels_win_and_exposed_ones_are_renamed() {
        let s = scraper(&[("env", "prod")]);
        let text = "# TYPE m gauge\nm{job=\"inner\",env=\"dev\",exported_job=\"x\",a=\"1\"} 1\n";
        let exposition = parse(text).unwrap();
        let (request, current) = s.write_request(Some(&exposition), 1000, Duration::ZERO);
        let m = request
            .timeseries
            .iter()
            .find(|t| {
                t.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == "m")
            })
            .unwrap();
        let got: Vec<(&str, &str)> = m
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("__name__", "m"),
                ("a", "1"),
                ("env", "prod"),
                ("exported_env", "dev"),
                ("exported_exported_job", "inner"),
                ("exported_job", "x"),
                ("instance", "127.0.0.1:9100"),
                ("job", "node"),
            ]
        );
        // Only exposed series are tracked for staleness.
        assert_eq!(current.len(), 1);
        assert_eq!(request.metadata[0].r#type, 2);
    }
}
