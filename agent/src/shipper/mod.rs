//! The shipper: routes accepted rows to collectors, buffers them, and ships them in batches.
//!
//! `Shipper` implements [`Ingest`]. An accepted batch is split by the owner of each row's
//! routing key on the [`Ring`] (spans by trace id, logs by service, metric points by series),
//! skipping collectors whose circuit [`breaker`] is not closed (their keys go to the next
//! member clockwise, and no other key moves). The parts are made durable in the [`Buffer`]
//! (one entry each; the entry id is the part's idempotency sequence), and only then is the
//! request answered. Each entry is handed to the [`lane`] of its collector, which ships
//! batches of entries with one Flight `DoPut` ([`flight`]) and acknowledges them in the buffer
//! once the collector acknowledged them.
//!
//! Invariants:
//! - A request is answered with success only once every part of it is in the buffer; an entry
//!   leaves the buffer only when its collector acknowledged it.
//! - An entry that was sent and whose outcome is unknown stays with its collector (the
//!   collector may have stored it; only it can recognise the retry), unless the collector is
//!   removed from the set. An entry never sent moves whole to the next member when its
//!   collector's breaker opens. Both moves are recorded in the buffer before the entry is sent
//!   elsewhere, so a restart does not send it back.
//! - When the collector set changes, the entries of a removed collector are re-routed by the
//!   new ring; none stays behind.
//! - Memory: see [`Buffer`]; no memory or buffer space left means `Overloaded`.

mod breaker;
pub mod flight;
mod lane;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use strata_schema::Signal;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::buffer::{Buffer, BufferConfig, Entry, NewPart};
use crate::config::AgentConfig;
use crate::discovery::Discovery;
use crate::metrics::AgentMetrics;
use crate::ring::Ring;
use strata_ingest::{Ingest, IngestError};
use strata_server::tls::client::{ClientTls, Connector};

/// What the shipper needs from the agent configuration.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    pub agent_id: String,
    pub batch_max_rows: usize,
    pub batch_max_bytes: usize,
    pub batch_max_age: Duration,
    pub shutdown_grace: Duration,
    pub ship_timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    pub breaker_max_open: Duration,
    pub buffer: BufferConfig,
    /// How a lane dials its collector (TCP, then TLS when configured).
    pub connector: Connector,
    /// Bearer token sent to collectors.
    pub token: Option<String>,
}

impl ShipperConfig {
    /// The shipper's settings; reads the TLS files and the token file.
    pub fn from_agent(c: &AgentConfig) -> Result<Self, String> {
        let tls = ClientTls::load(&c.ship_tls).map_err(|e| format!("ship_tls: {e}"))?;
        let token = match (&c.ship_token, &c.ship_token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("ship_token_file {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        Ok(Self {
            connector: Connector::new(tls.map(Arc::new), Duration::from_secs(5)),
            token,
            agent_id: c.id.clone(),
            batch_max_rows: c.batch_max_rows,
            batch_max_bytes: c.batch_max_bytes,
            batch_max_age: Duration::from_millis(c.batch_max_age_ms.max(1)),
            shutdown_grace: Duration::from_secs(c.shutdown_grace_secs),
            ship_timeout: Duration::from_millis(c.ship_timeout_ms.max(1)),
            breaker_failures: c.breaker_failures,
            breaker_open: Duration::from_millis(c.breaker_open_ms.max(1)),
            breaker_max_open: Duration::from_millis(c.breaker_max_open_ms.max(1)),
            buffer: BufferConfig {
                mode: c.buffer,
                dir: c.data_dir.join("buffer"),
                max_bytes: c.buffer_max_bytes,
                segment_bytes: c.buffer_segment_bytes,
                key_share: c.buffer_key_share,
                memory_limit_bytes: c.memory_limit_bytes,
                compression: c.ship_compression.ipc(),
            },
        })
    }
}

/// What a lane receives.
pub(crate) enum LaneMsg {
    Entry(Entry),
    /// The collector left the set: hand every entry back for re-routing, then stop.
    Removed,
}

#[derive(Clone)]
pub struct Shipper(Arc<Inner>);

struct Inner {
    config: ShipperConfig,
    metrics: Arc<AgentMetrics>,
    ring: RwLock<Arc<Ring>>,
    lanes: Mutex<HashMap<Arc<str>, mpsc::UnboundedSender<LaneMsg>>>,
    /// Collectors whose breaker is not closed: new keys avoid them.
    unhealthy: RwLock<HashSet<Arc<str>>>,
    buffer: Arc<Buffer>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Shipper {
    /// Opens the buffer, resolves the collectors once, ships what the buffer still holds, and
    /// keeps the ring fresh in the background.
    pub async fn start(
        config: ShipperConfig,
        discovery: Discovery,
        metrics: Arc<AgentMetrics>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let (buffer, waiting) = Buffer::open(config.buffer.clone(), metrics.clone())?;
        buffer.compact().await;
        let shipper = Shipper(Arc::new(Inner {
            config,
            metrics,
            ring: RwLock::new(Arc::new(Ring::default())),
            lanes: Mutex::new(HashMap::new()),
            unhealthy: RwLock::new(HashSet::new()),
            buffer,
            tracker: TaskTracker::new(),
            shutdown,
        }));
        let members = discovery.resolve(&[]).await;
        shipper.set_members(members);
        for (entry, target) in waiting {
            shipper.dispatch(entry, target);
        }
        let refresher = shipper.clone();
        shipper.0.tracker.spawn(async move {
            let mut tick = tokio::time::interval(discovery.refresh_interval());
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = refresher.0.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let current = refresher.ring().members().to_vec();
                let members = discovery.resolve(&current).await;
                if members != current {
                    refresher.set_members(members);
                }
            }
        });
        Ok(shipper)
    }

    fn ring(&self) -> Arc<Ring> {
        self.0
            .ring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Installs a new collector set; lanes of removed collectors hand their entries back.
    pub fn set_members(&self, members: Vec<String>) {
        info!(collectors = ?members, "collector set");
        self.0.metrics.collectors.set(members.len() as i64);
        let ring = Arc::new(Ring::new(members));
        *self.0.ring.write().unwrap_or_else(|p| p.into_inner()) = ring.clone();
        let removed: Vec<_> = {
            let mut lanes = self.0.lanes.lock().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<Arc<str>> = lanes
                .keys()
                .filter(|a| !ring.contains(a))
                .cloned()
                .collect();
            gone.into_iter()
                .filter_map(|a| lanes.remove(&a).map(|tx| (a, tx)))
                .collect()
        };
        for (addr, tx) in removed {
            info!(collector = %addr, "collector left the set; re-routing its batches");
            self.0
                .unhealthy
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&addr);
            let _ = tx.send(LaneMsg::Removed);
        }
    }

    /// Ready once at least one collector is known.
    pub fn is_ready(&self) -> bool {
        !self.ring().is_empty() && !self.0.shutdown.is_cancelled()
    }

    /// Waits until every lane has shipped what it could within the grace period (after
    /// shutdown was requested). With the disk buffer, what is left is shipped after the next
    /// start; with the memory buffer it is counted as dropped.
    pub async fn drain(&self) {
        self.0.tracker.close();
        self.0.tracker.wait().await;
        let left = self.0.buffer.live_rows();
        if left > 0 {
            match self.0.buffer.mode() {
                crate::buffer::BufferMode::Disk => {
                    info!(
                        rows = left,
                        "rows stay in the disk buffer for the next start"
                    )
                }
                crate::buffer::BufferMode::Memory => {
                    warn!(rows = left, "memory buffer: rows not shipped are dropped");
                    self.0
                        .metrics
                        .dropped_rows
                        .get_or_create(&vec![("signal", "all".to_string())])
                        .inc_by(left as u64);
                }
            }
        }
    }

    fn is_unhealthy(&self, addr: &str) -> bool {
        self.0
            .unhealthy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(addr)
    }

    pub(crate) fn set_health(&self, addr: &Arc<str>, unhealthy: bool) {
        let mut set = self.0.unhealthy.write().unwrap_or_else(|p| p.into_inner());
        if unhealthy {
            set.insert(addr.clone());
        } else {
            set.remove(addr);
        }
    }

    /// The collector a key hash goes to now (skipping unhealthy ones), if any is known.
    fn owner_now(&self, ring: &Ring, hash: u64) -> Option<Arc<str>> {
        ring.owner_skipping(hash, |i| self.is_unhealthy(&ring.members()[i]))
            .map(|i| Arc::from(ring.members()[i].as_str()))
    }

    /// Hands an entry to the lane of `target`; an entry whose collector left the set is
    /// re-routed first.
    pub(crate) fn dispatch(&self, entry: Entry, target: Arc<str>) {
        let ring = self.ring();
        if !ring.contains(&target) {
            if let Some(next) = self.owner_now(&ring, entry.key_hash) {
                self.reroute(entry, next, "removed");
            } else {
                // No collector at all: keep it where it is until one is known.
                warn!(entry = entry.id, "no collector known for a buffered batch");
            }
            return;
        }
        // No lane (shutdown) or a lane that just stopped: the entry stays in the buffer and is
        // shipped after the next start.
        if let Some(tx) = self.lane(&target) {
            let _ = tx.send(LaneMsg::Entry(entry));
        }
    }

    /// Records that `entry` goes to `target` from now on, then dispatches it there.
    pub(crate) fn reroute(&self, entry: Entry, target: Arc<str>, reason: &'static str) {
        let shipper = self.clone();
        self.0.tracker.spawn(async move {
            match shipper.0.buffer.reroute(entry.id, target.clone()).await {
                Ok(()) => {
                    shipper
                        .0
                        .metrics
                        .rerouted_batches
                        .get_or_create(&vec![("reason", reason.to_string())])
                        .inc();
                    shipper.dispatch(entry, target);
                }
                Err(e) => {
                    // Not recorded: ship it where it was bound (its lane, if still there).
                    warn!(entry = entry.id, error = %e, "cannot record a re-route");
                    if let Some(old) = shipper.0.buffer.target(entry.id)
                        && let Some(tx) = shipper.lane(&old)
                    {
                        let _ = tx.send(LaneMsg::Entry(entry));
                    }
                }
            }
        });
    }

    /// Where an entry of a collector whose breaker opened goes instead, if anywhere.
    pub(crate) fn failover_target(&self, from: &str, entry: &Entry) -> Option<Arc<str>> {
        let ring = self.ring();
        let next = self.owner_now(&ring, entry.key_hash)?;
        (&*next != from).then_some(next)
    }

    fn lane(&self, addr: &Arc<str>) -> Option<mpsc::UnboundedSender<LaneMsg>> {
        let mut lanes = self.0.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = lanes.get(addr) {
            return Some(tx.clone());
        }
        if self.0.shutdown.is_cancelled() {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        lanes.insert(addr.clone(), tx.clone());
        let lane = lane::Lane::new(addr.clone(), self.clone(), rx);
        self.0.tracker.spawn(lane.run());
        Some(tx)
    }
}

impl Shipper {
    /// Accepts a batch whose source keeps it durable itself (a tailed file): it is routed and
    /// shipped like any other, but never written to the disk buffer. The returned receiver
    /// resolves once every part was acknowledged by its collector; it never resolves for a
    /// batch that was not shipped (the source then reads it again after a restart).
    pub async fn ingest_volatile(
        &self,
        tenant: &str,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<tokio::sync::oneshot::Receiver<()>, IngestError> {
        let (permit, parts) = self.route(tenant, signal, batch)?;
        let (receipt, done) = crate::buffer::Receipt::new(parts.len());
        let entries = self.0.buffer.append(parts, permit, Some(receipt)).await?;
        for (entry, target) in entries {
            self.dispatch(entry, target);
        }
        Ok(done)
    }

    /// Reserves memory for `batch` and splits it by the collector that owns each row now.
    fn route(
        &self,
        tenant: &str,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<(tokio::sync::OwnedSemaphorePermit, Vec<NewPart>), IngestError> {
        if self.0.shutdown.is_cancelled() {
            return Err(IngestError::Unavailable("agent is shutting down".into()));
        }
        let permit = self
            .0
            .buffer
            .reserve(strata_schema::memory::retained_bytes(&batch))?;
        let ring = self.ring();
        if ring.is_empty() {
            return Err(IngestError::Unavailable("no collector is known".into()));
        }
        let hashes = crate::ring::row_hashes(signal, &batch)
            .map_err(|c| IngestError::Internal(format!("batch has no {c} column")))?;
        // Health is read once per batch, and rows are grouped by member index: nothing per
        // row but the ring lookup.
        let members = ring.members();
        let skip: Vec<bool> = members.iter().map(|m| self.is_unhealthy(m)).collect();
        // (key hash of the first row, rows) per member index.
        let mut groups: Vec<Option<(u64, Vec<u32>)>> = vec![None; members.len()];
        for (row, h) in hashes.into_iter().enumerate() {
            // A non-empty ring always has an owner.
            let Some(owner) = ring.owner_skipping(h, |i| skip[i]) else {
                continue;
            };
            groups[owner]
                .get_or_insert_with(|| (h, Vec::new()))
                .1
                .push(row as u32);
        }
        let tenant: Arc<str> = Arc::from(tenant);
        let mut parts = Vec::new();
        for (member, group) in groups.into_iter().enumerate() {
            let Some((key_hash, rows)) = group else {
                continue;
            };
            let target: Arc<str> = Arc::from(members[member].as_str());
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(&batch, &UInt32Array::from(rows))
                    .map_err(|e| IngestError::Internal(format!("routing: {e}")))?
            };
            parts.push(NewPart {
                target,
                key_hash,
                signal,
                tenant: tenant.clone(),
                batch: part,
            });
        }
        Ok((permit, parts))
    }
}

#[async_trait]
impl Ingest for Shipper {
    async fn ingest(
        &self,
        tenant: &str,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<(), IngestError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (permit, parts) = self.route(tenant, signal, batch)?;
        let entries = self.0.buffer.append(parts, permit, None).await?;
        for (entry, target) in entries {
            self.dispatch(entry, target);
        }
        Ok(())
    }
}
