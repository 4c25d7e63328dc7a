//! A lane: the queue and batcher in front of one collector.
//!
//! It gathers routed parts per (signal, tenant) and ships a batch when it reaches
//! `batch_max_rows` or `batch_max_bytes`, or when its oldest part waited `batch_max_age`.
//! A failed `DoPut` is retried with exponential backoff and jitter; while it retries, new parts
//! queue up (bounded) and the agent's memory limit turns into backpressure upstream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::compute::concat_batches;
use arrow_flight::FlightClient;
use strata_schema::Signal;
use strata_schema::envelope::Envelope;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tracing::{debug, error, warn};

use super::{Part, Shipper, flight};

/// One `DoPut` may take this long before it counts as failed.
const PUT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Pending {
    parts: Vec<Part>,
    rows: usize,
    bytes: usize,
    since: Option<Instant>,
}

pub(super) struct Lane {
    addr: String,
    shipper: Shipper,
    rx: mpsc::Receiver<Part>,
    pending: HashMap<(Signal, Arc<str>), Pending>,
    client: Option<FlightClient>,
}

impl Lane {
    pub(super) fn new(addr: String, shipper: Shipper, rx: mpsc::Receiver<Part>) -> Self {
        Self {
            addr,
            shipper,
            rx,
            pending: HashMap::new(),
            client: None,
        }
    }

    pub(super) async fn run(mut self) {
        let cfg = self.shipper.0.config.clone();
        let shutdown = self.shipper.0.shutdown.clone();
        let mut tick =
            tokio::time::interval((cfg.batch_max_age / 4).max(Duration::from_millis(10)));
        loop {
            tokio::select! {
                part = self.rx.recv() => match part {
                    Some(part) => {
                        let key = (part.signal, part.tenant.clone());
                        let p = self.pending.entry(key.clone()).or_default();
                        p.rows += part.batch.num_rows();
                        p.bytes += part.batch.get_array_memory_size();
                        p.since.get_or_insert_with(Instant::now);
                        p.parts.push(part);
                        if p.rows >= cfg.batch_max_rows || p.bytes >= cfg.batch_max_bytes {
                            self.ship(&key, None).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    let due: Vec<_> = self
                        .pending
                        .iter()
                        .filter(|(_, p)| p.since.is_some_and(|t| t.elapsed() >= cfg.batch_max_age))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in due {
                        self.ship(&key, None).await;
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        // Shutdown: take what is still queued and ship everything within the grace period.
        self.rx.close();
        while let Ok(part) = self.rx.try_recv() {
            let key = (part.signal, part.tenant.clone());
            let p = self.pending.entry(key).or_default();
            p.rows += part.batch.num_rows();
            p.parts.push(part);
        }
        let deadline = Instant::now() + cfg.shutdown_grace;
        let keys: Vec<_> = self.pending.keys().cloned().collect();
        for key in keys {
            self.ship(&key, Some(deadline)).await;
        }
    }

    /// Ships the pending batch of `key`; retries until acknowledged, or until `deadline`.
    async fn ship(&mut self, key: &(Signal, Arc<str>), deadline: Option<Instant>) {
        let Some(pending) = self.pending.remove(key) else {
            return;
        };
        if pending.parts.is_empty() {
            return;
        }
        let (signal, tenant) = key;
        let batches: Vec<_> = pending.parts.iter().map(|p| p.batch.clone()).collect();
        let batch = match concat_batches(&batches[0].schema(), &batches) {
            Ok(b) => b,
            Err(e) => {
                // Parts of one key share the signal's schema; this is a bug, not bad input.
                error!(error = %e, "cannot concatenate parts; dropping batch");
                self.count_dropped(*signal, pending.rows);
                return;
            }
        };
        let envelope = Envelope::new(
            self.shipper.0.config.agent_id.clone(),
            self.shipper.next_sequence(),
            *signal,
            tenant.to_string(),
        );
        let metrics = self.shipper.0.metrics.clone();
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = match self.client() {
                Ok(client) => timeout(PUT_TIMEOUT, flight::put(client, &envelope, batch.clone()))
                    .await
                    .unwrap_or_else(|_| {
                        Err(arrow_flight::error::FlightError::ProtocolError(
                            "DoPut timed out".into(),
                        ))
                    }),
                Err(e) => Err(e),
            };
            let labels = vec![("collector", self.addr.clone())];
            match result {
                Ok(()) => {
                    let mut ok = labels;
                    ok.push(("outcome", "ok".into()));
                    metrics.shipped_batches.get_or_create(&ok).inc();
                    metrics
                        .shipped_rows
                        .get_or_create(&vec![("signal", signal.as_str().to_string())])
                        .inc_by(batch.num_rows() as u64);
                    debug!(collector = %self.addr, rows = batch.num_rows(), seq = envelope.sequence, "shipped");
                    break;
                }
                Err(e) => {
                    let mut err = labels;
                    err.push(("outcome", "error".into()));
                    metrics.shipped_batches.get_or_create(&err).inc();
                    warn!(collector = %self.addr, error = %e, retry_in = ?backoff, "DoPut failed");
                    if deadline.is_some_and(|d| Instant::now() + backoff > d) {
                        error!(collector = %self.addr, rows = batch.num_rows(), "giving up at shutdown");
                        self.count_dropped(*signal, batch.num_rows());
                        break;
                    }
                    sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        drop(pending);
        metrics.buffered_bytes.set(self.shipper.held_bytes());
    }

    fn client(&mut self) -> Result<&mut FlightClient, arrow_flight::error::FlightError> {
        if self.client.is_none() {
            self.client = Some(flight::client(&self.addr)?);
        }
        // Just set above when it was missing.
        self.client
            .as_mut()
            .ok_or_else(|| arrow_flight::error::FlightError::ProtocolError("no client".into()))
    }

    fn count_dropped(&self, signal: Signal, rows: usize) {
        self.shipper
            .0
            .metrics
            .dropped_rows
            .get_or_create(&vec![("signal", signal.as_str().to_string())])
            .inc_by(rows as u64);
    }
}

/// Full jitter between half and all of `d`, so retrying lanes do not move in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d / 2 + d.mul_f64(f64::from(nanos % 1000) / 2000.0)
}
