//! A lane: the queues and the shipping loop in front of one collector.
//!
//! Entries wait in one queue per (signal, tenant) — a bulkhead: a backlog of logs does not
//! hold up traces, because due queues take turns (round robin). A queue is due when it holds
//! `batch_max_rows` rows or `batch_max_bytes` bytes, when its oldest entry waited
//! `batch_max_age`, or when it holds entries to retry. One `DoPut` ships up to a batch's worth
//! of entries, each under its own sequence.
//!
//! A failed `DoPut` marks its entries as attempted (they stay here: the collector may have
//! stored them), unless the connection was refused (nothing was sent), and is retried with
//! exponential backoff and jitter. The [`Breaker`] opens after repeated failures; then the
//! entries never attempted move to the next collector on the ring, and so do entries that
//! arrive while it is open. A collector that stays down for `breaker_max_open` loses the
//! attempted entries too (counted as `abandoned`: a duplicate is possible only if it had
//! stored them and comes back with its files).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::FlightClient;
use arrow_flight::error::FlightError;
use strata_schema::Signal;
use strata_schema::envelope::Envelope;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tracing::{debug, info, warn};

use super::breaker::{Breaker, State};
use super::{LaneMsg, Shipper, flight};
use crate::buffer::{Entry, LoadError};

const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

struct Queued {
    entry: Entry,
    /// Sent at least once without an acknowledgement: it must stay with this collector.
    attempted: bool,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Queued>,
    rows: usize,
    bytes: usize,
    since: Option<Instant>,
}

impl Queue {
    fn push_back(&mut self, q: Queued) {
        self.rows += q.entry.rows;
        self.bytes += q.entry.bytes;
        self.since.get_or_insert_with(Instant::now);
        self.entries.push_back(q);
    }

    /// Puts entries taken from the front back there, in their order.
    fn return_front(&mut self, taken: impl DoubleEndedIterator<Item = Queued>) {
        for q in taken.rev() {
            self.rows += q.entry.rows;
            self.bytes += q.entry.bytes;
            self.entries.push_front(q);
        }
        self.since.get_or_insert_with(Instant::now);
    }

    fn pop_front(&mut self) -> Option<Queued> {
        let q = self.entries.pop_front()?;
        self.rows -= q.entry.rows;
        self.bytes -= q.entry.bytes;
        if self.entries.is_empty() {
            self.since = None;
        }
        Some(q)
    }
}

type Key = (Signal, Arc<str>);

pub(super) struct Lane {
    addr: Arc<str>,
    shipper: Shipper,
    rx: mpsc::UnboundedReceiver<LaneMsg>,
    queues: BTreeMap<Key, Queue>,
    /// Round-robin position among the queues.
    cursor: usize,
    breaker: Breaker,
    client: Option<FlightClient>,
    retry_at: Instant,
    backoff: Duration,
    /// Since when the breaker has not been closed.
    open_since: Option<Instant>,
}

impl Lane {
    pub(super) fn new(
        addr: Arc<str>,
        shipper: Shipper,
        rx: mpsc::UnboundedReceiver<LaneMsg>,
    ) -> Self {
        let c = &shipper.0.config;
        let breaker = Breaker::new(c.breaker_failures, c.breaker_open, c.breaker_max_open);
        Self {
            addr,
            shipper,
            rx,
            queues: BTreeMap::new(),
            cursor: 0,
            breaker,
            client: None,
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
            open_since: None,
        }
    }

    pub(super) async fn run(mut self) {
        let cfg = self.shipper.0.config.clone();
        let shutdown = self.shipper.0.shutdown.clone();
        let mut tick =
            tokio::time::interval((cfg.batch_max_age / 4).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish_state();
        loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(LaneMsg::Entry(entry)) => self.accept(entry),
                    Some(LaneMsg::Removed) | None => {
                        self.hand_back();
                        return;
                    }
                },
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            self.ship_due(false).await;
        }
        // Shutdown: take what is queued and ship it all within the grace period.
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            if let LaneMsg::Entry(entry) = msg {
                self.push(entry, false);
            }
        }
        let deadline = Instant::now() + cfg.shutdown_grace;
        while self.queues.values().any(|q| !q.entries.is_empty()) && Instant::now() < deadline {
            if !self.ship_due(true).await {
                let wait = self
                    .retry_at
                    .min(deadline)
                    .saturating_duration_since(Instant::now());
                sleep(wait.max(Duration::from_millis(10))).await;
            }
        }
        let left: usize = self.queues.values().map(|q| q.rows).sum();
        if left > 0 {
            warn!(collector = %self.addr, rows = left, "shutdown grace period over with rows not shipped");
        }
    }

    fn push(&mut self, entry: Entry, attempted: bool) {
        let key = (entry.signal, entry.tenant.clone());
        self.queues
            .entry(key)
            .or_default()
            .push_back(Queued { entry, attempted });
    }

    /// A new entry: queued here, or moved on at once while the breaker is open.
    fn accept(&mut self, entry: Entry) {
        if self.breaker.is_unhealthy()
            && let Some(next) = self.shipper.failover_target(&self.addr, &entry)
        {
            self.shipper.reroute(entry, next, "failover");
            return;
        }
        self.push(entry, false);
    }

    /// The collector left the set: every entry goes back to the shipper for re-routing.
    fn hand_back(&mut self) {
        self.rx.close();
        let mut entries = Vec::new();
        while let Ok(msg) = self.rx.try_recv() {
            if let LaneMsg::Entry(e) = msg {
                entries.push(e);
            }
        }
        for q in std::mem::take(&mut self.queues).into_values() {
            entries.extend(q.entries.into_iter().map(|q| q.entry));
        }
        info!(collector = %self.addr, batches = entries.len(), "handing back batches of a removed collector");
        self.shipper
            .0
            .metrics
            .breaker_state
            .get_or_create(&self.labels())
            .set(0);
        for e in entries {
            self.shipper.dispatch(e, self.addr.clone());
        }
    }

    /// Ships due queues in turn while shipments succeed; `force` treats every non-empty queue
    /// as due. Returns false when a shipment failed or the breaker holds shipping back.
    async fn ship_due(&mut self, force: bool) -> bool {
        let cfg = self.shipper.0.config.clone();
        loop {
            let now = Instant::now();
            if self
                .open_since
                .is_some_and(|t| now.duration_since(t) >= cfg.breaker_max_open)
            {
                // Down for a whole maximal open period: even batches it may have stored move
                // on (a duplicate is better than a batch stranded with a collector that is
                // gone). Counted as `abandoned`.
                self.fail_over(true);
                self.open_since = Some(now);
            }
            if now < self.retry_at || !self.breaker.allow(now) {
                return false;
            }
            let keys: Vec<Key> = self.queues.keys().cloned().collect();
            if self.queues.values().all(|q| q.entries.is_empty()) {
                // Nothing to ship, so nothing to probe with: a half-open breaker asks the
                // collector directly, or it would stay half-open (and avoided) for good.
                if self.breaker.state() == State::HalfOpen {
                    return self.probe().await;
                }
                return true;
            }
            let due = (0..keys.len())
                .map(|i| (self.cursor + i) % keys.len())
                .find(|&i| {
                    let q = &self.queues[&keys[i]];
                    !q.entries.is_empty()
                        && (force
                            || q.rows >= cfg.batch_max_rows
                            || q.bytes >= cfg.batch_max_bytes
                            || q.since.is_some_and(|t| t.elapsed() >= cfg.batch_max_age)
                            || q.entries.front().is_some_and(|e| e.attempted))
                });
            let Some(i) = due else {
                self.queues.retain(|_, q| !q.entries.is_empty());
                return true;
            };
            self.cursor = i + 1;
            if !self.ship(&keys[i]).await {
                return false;
            }
        }
    }

    /// Ships up to one batch's worth of entries of `key`; returns whether it was acknowledged.
    async fn ship(&mut self, key: &Key) -> bool {
        let cfg = self.shipper.0.config.clone();
        let buffer = self.shipper.0.buffer.clone();
        let Some(queue) = self.queues.get_mut(key) else {
            return true;
        };
        let mut taken = Vec::new();
        let (mut rows, mut bytes) = (0, 0);
        while let Some(front) = queue.entries.front() {
            if !taken.is_empty()
                && (rows + front.entry.rows > cfg.batch_max_rows
                    || bytes + front.entry.bytes > cfg.batch_max_bytes)
            {
                break;
            }
            rows += front.entry.rows;
            bytes += front.entry.bytes;
            taken.extend(queue.pop_front());
        }
        let mut batches = Vec::with_capacity(taken.len());
        let mut held = Vec::with_capacity(taken.len());
        let mut sent = Vec::with_capacity(taken.len());
        let mut taken = VecDeque::from(taken);
        while let Some(q) = taken.pop_front() {
            // Only the first load may wait for memory: later ones would wait for what the
            // loaded batches hold. What does not fit goes back and ships next time.
            match buffer.load(q.entry.id, sent.is_empty()).await {
                None => {} // acknowledged already
                Some(Err(LoadError::Unreadable(e))) => buffer.lose(q.entry.id, &e),
                Some(Err(LoadError::Busy)) => {
                    self.queues
                        .entry(key.clone())
                        .or_default()
                        .return_front(std::iter::once(q).chain(taken));
                    break;
                }
                Some(Ok(loaded)) => {
                    batches.push((q.entry.id, loaded.stream));
                    held.push(loaded.permit);
                    sent.push(q);
                }
            }
        }
        if sent.is_empty() {
            return true;
        }
        let (signal, tenant) = key;
        let envelope = Envelope::new(
            cfg.agent_id.clone(),
            sent[0].entry.id,
            *signal,
            tenant.to_string(),
        );
        let rows: usize = sent.iter().map(|q| q.entry.rows).sum();
        let result = match self.client() {
            Ok(client) => timeout(cfg.ship_timeout, flight::put(client, &envelope, batches))
                .await
                .unwrap_or_else(|_| Err(FlightError::ProtocolError("DoPut timed out".into()))),
            Err(e) => Err(e),
        };
        drop(held);
        let metrics = self.shipper.0.metrics.clone();
        let mut labels = self.labels();
        match result {
            Ok(()) => {
                labels.push(("outcome", "ok".into()));
                metrics.shipped_batches.get_or_create(&labels).inc();
                metrics
                    .shipped_rows
                    .get_or_create(&vec![("signal", signal.as_str().to_string())])
                    .inc_by(rows as u64);
                let ids: Vec<u64> = sent.iter().map(|q| q.entry.id).collect();
                buffer.ack(&ids);
                debug!(collector = %self.addr, rows, batches = ids.len(), "shipped");
                let was_unhealthy = self.breaker.is_unhealthy();
                self.breaker.success();
                self.open_since = None;
                self.backoff = FIRST_BACKOFF;
                if was_unhealthy {
                    info!(collector = %self.addr, "collector recovered; circuit breaker closed");
                    self.publish_state();
                }
                true
            }
            Err(e) => {
                labels.push(("outcome", "error".into()));
                metrics.shipped_batches.get_or_create(&labels).inc();
                // A refused connection means nothing was sent: those batches may move freely.
                let delivered_maybe = !connection_refused(&e);
                self.queues
                    .entry(key.clone())
                    .or_default()
                    .return_front(sent.into_iter().map(|mut q| {
                        q.attempted |= delivered_maybe;
                        q
                    }));
                let now = Instant::now();
                let opened = self.breaker.failure(now, jitter_fraction());
                self.retry_at = self
                    .breaker
                    .retry_at(now)
                    .max(now + self.backoff.mul_f64(0.5 + jitter_fraction() / 2.0));
                warn!(collector = %self.addr, error = %e, retry_in = ?(self.retry_at - now), "DoPut failed");
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                // A new connection next time: the old one may be half dead.
                self.client = None;
                if opened {
                    warn!(collector = %self.addr, "circuit breaker open; its keys go to the next collector");
                    metrics.breaker_opened.get_or_create(&self.labels()).inc();
                    self.open_since.get_or_insert(now);
                    self.publish_state();
                    self.fail_over(false);
                }
                false
            }
        }
    }

    /// Probes a collector with no batch at hand: any gRPC answer (a collector answers
    /// `ListActions` with `UNIMPLEMENTED`) shows it is up and serving.
    async fn probe(&mut self) -> bool {
        let limit = self.shipper.0.config.ship_timeout;
        let answer = match self.client() {
            Ok(client) => match timeout(limit, client.list_actions()).await {
                Ok(Ok(_)) => true,
                Ok(Err(FlightError::Tonic(status))) => status.code() == tonic::Code::Unimplemented,
                _ => false,
            },
            Err(_) => false,
        };
        let now = Instant::now();
        if answer {
            info!(collector = %self.addr, "collector answers again; circuit breaker closed");
            self.breaker.success();
            self.open_since = None;
            self.backoff = FIRST_BACKOFF;
        } else {
            self.breaker.failure(now, jitter_fraction());
            self.retry_at = self.breaker.retry_at(now);
            self.client = None;
        }
        self.publish_state();
        answer
    }

    /// Moves every entry never sent (with `all`, every entry) to the next healthy collector
    /// on the ring.
    fn fail_over(&mut self, all: bool) {
        for queue in self.queues.values_mut() {
            let mut keep = Queue::default();
            while let Some(q) = queue.pop_front() {
                if q.attempted && !all {
                    keep.push_back(q);
                    continue;
                }
                let reason = if q.attempted { "abandoned" } else { "failover" };
                match self.shipper.failover_target(&self.addr, &q.entry) {
                    Some(next) => self.shipper.reroute(q.entry, next, reason),
                    None => keep.push_back(q),
                }
            }
            *queue = keep;
        }
    }

    fn publish_state(&self) {
        self.shipper
            .set_health(&self.addr, self.breaker.is_unhealthy());
        self.shipper
            .0
            .metrics
            .breaker_state
            .get_or_create(&self.labels())
            .set(self.breaker.state().gauge());
    }

    fn labels(&self) -> Vec<(&'static str, String)> {
        vec![("collector", self.addr.to_string())]
    }

    fn client(&mut self) -> Result<&mut FlightClient, FlightError> {
        if self.client.is_none() {
            let config = &self.shipper.0.config;
            self.client = Some(flight::client(
                &self.addr,
                &config.connector,
                config.token.as_deref(),
            )?);
        }
        // Just set above when it was missing.
        self.client
            .as_mut()
            .ok_or_else(|| FlightError::ProtocolError("no client".into()))
    }
}

/// Whether `e` is a refused TCP connection: the request never left the agent.
fn connection_refused(e: &FlightError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = match e {
        FlightError::Tonic(status) => Some(status.as_ref()),
        other => Some(other),
    };
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// A number in [0, 1) from the clock, so retrying lanes do not move in lockstep.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}
