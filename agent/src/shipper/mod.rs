//! The shipper: routes accepted rows to collectors and ships them in batches.
//!
//! `Shipper` implements [`Ingest`]. An accepted batch is split by the owner of each row's
//! routing key on the [`Ring`] (spans by trace id, logs by service, metric points by series) and
//! each part is queued on the lane of its collector. A lane ([`lane`]) batches its parts per
//! (signal, tenant) by rows, bytes and age, and ships each batch with one Flight `DoPut`
//! ([`flight`]), retrying with backoff until the collector acknowledges it.
//!
//! Invariants:
//! - Memory: each accepted batch holds permits of a semaphore sized `memory_limit_bytes`
//!   (in KiB) until every part of it was acknowledged; no permits left means `Overloaded`.
//! - A part is never dropped while the agent runs; at shutdown a lane retries for at most
//!   the grace period, and what it gives up on is counted in `strata_agent_dropped_rows`.

pub mod flight;
mod lane;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::UInt64Type;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use strata_schema::{Signal, columns};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::discovery::Discovery;
use crate::ingest::{Ingest, IngestError};
use crate::metrics::AgentMetrics;
use crate::ring::Ring;

/// Items a lane may have queued before `ingest` answers `Overloaded`.
const LANE_QUEUE: usize = 4096;

/// What the shipper needs from the agent configuration.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    pub agent_id: String,
    pub batch_max_rows: usize,
    pub batch_max_bytes: usize,
    pub batch_max_age: Duration,
    pub memory_limit_bytes: usize,
    pub shutdown_grace: Duration,
}

impl ShipperConfig {
    pub fn from_agent(c: &AgentConfig) -> Self {
        Self {
            agent_id: c.id.clone(),
            batch_max_rows: c.batch_max_rows,
            batch_max_bytes: c.batch_max_bytes,
            batch_max_age: Duration::from_millis(c.batch_max_age_ms.max(1)),
            memory_limit_bytes: c.memory_limit_bytes,
            shutdown_grace: Duration::from_secs(c.shutdown_grace_secs),
        }
    }
}

/// One routed part of an accepted batch, on its way to one collector.
pub(crate) struct Part {
    signal: Signal,
    tenant: Arc<str>,
    batch: RecordBatch,
    /// Memory held for the whole accepted batch; released when its last part is acknowledged.
    _permit: Arc<OwnedSemaphorePermit>,
}

#[derive(Clone)]
pub struct Shipper(Arc<Inner>);

struct Inner {
    config: ShipperConfig,
    metrics: Arc<AgentMetrics>,
    ring: RwLock<Arc<Ring>>,
    lanes: Mutex<HashMap<String, mpsc::Sender<Part>>>,
    memory: Arc<Semaphore>,
    memory_kib: u32,
    sequence: AtomicU64,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Shipper {
    /// Resolves the collectors once, then keeps the ring fresh in the background.
    pub async fn start(
        config: ShipperConfig,
        discovery: Discovery,
        metrics: Arc<AgentMetrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let memory_kib = u32::try_from(config.memory_limit_bytes / 1024)
            .unwrap_or(u32::MAX)
            .max(1);
        // Sequence numbers start at the wall clock so that a restarted agent never reuses one.
        let first_seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let shipper = Shipper(Arc::new(Inner {
            config,
            metrics,
            ring: RwLock::new(Arc::new(Ring::default())),
            lanes: Mutex::new(HashMap::new()),
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
            sequence: AtomicU64::new(first_seq),
            tracker: TaskTracker::new(),
            shutdown,
        }));
        let members = discovery.resolve(&[]).await;
        shipper.set_members(members);
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
        shipper
    }

    fn ring(&self) -> Arc<Ring> {
        self.0
            .ring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_members(&self, members: Vec<String>) {
        info!(collectors = ?members, "collector set");
        self.0.metrics.collectors.set(members.len() as i64);
        *self.0.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Ring::new(members));
    }

    /// Ready once at least one collector is known.
    pub fn is_ready(&self) -> bool {
        !self.ring().is_empty() && !self.0.shutdown.is_cancelled()
    }

    pub(crate) fn next_sequence(&self) -> u64 {
        self.0.sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits until every lane has shipped or given up (after shutdown was requested).
    pub async fn drain(&self) {
        self.0.tracker.close();
        self.0.tracker.wait().await;
        self.0.metrics.buffered_bytes.set(0);
    }

    fn lane(&self, addr: &str) -> Option<mpsc::Sender<Part>> {
        let mut lanes = self.0.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = lanes.get(addr) {
            return Some(tx.clone());
        }
        if self.0.shutdown.is_cancelled() {
            return None;
        }
        let (tx, rx) = mpsc::channel(LANE_QUEUE);
        lanes.insert(addr.to_string(), tx.clone());
        let lane = lane::Lane::new(addr.to_string(), self.clone(), rx);
        self.0.tracker.spawn(lane.run());
        Some(tx)
    }

    fn held_bytes(&self) -> i64 {
        (self.0.memory_kib as i64 - self.0.memory.available_permits() as i64) * 1024
    }
}

/// The routing key hash of every row: spans by trace id, logs by service, metric points by
/// series (already a hash).
fn row_hashes(signal: Signal, batch: &RecordBatch) -> Result<Vec<u64>, IngestError> {
    use xxhash_rust::xxh3::xxh3_64;
    let missing = |c: &str| IngestError::Internal(format!("batch has no {c} column"));
    match signal {
        Signal::Traces | Signal::Logs => {
            let name = if signal == Signal::Traces {
                columns::TRACE_ID
            } else {
                columns::SERVICE_NAME
            };
            let col = batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| missing(name))?;
            Ok((0..col.len())
                .map(|i| {
                    if col.is_null(i) {
                        xxh3_64(b"")
                    } else {
                        xxh3_64(col.value(i).as_bytes())
                    }
                })
                .collect())
        }
        Signal::Metrics => {
            let col = batch
                .column_by_name(columns::SERIES_ID)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or_else(|| missing(columns::SERIES_ID))?;
            Ok(col.iter().map(|v| v.unwrap_or(0)).collect())
        }
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
        if self.0.shutdown.is_cancelled() {
            return Err(IngestError::Unavailable("agent is shutting down".into()));
        }
        let kib = (batch.get_array_memory_size() / 1024 + 1).min(self.0.memory_kib as usize);
        let permit = self
            .0
            .memory
            .clone()
            .try_acquire_many_owned(kib as u32)
            .map_err(|_| {
                IngestError::Overloaded(format!(
                    "agent buffer full ({} bytes held); retry later",
                    self.held_bytes()
                ))
            })?;
        let permit = Arc::new(permit);
        let ring = self.ring();
        if ring.is_empty() {
            return Err(IngestError::Unavailable("no collector is known".into()));
        }
        let hashes = row_hashes(signal, &batch)?;
        let mut groups: Vec<Vec<u32>> = vec![Vec::new(); ring.members().len()];
        for (row, h) in hashes.into_iter().enumerate() {
            // A non-empty ring always has an owner.
            let owner = ring.owner(h).unwrap_or(0);
            groups[owner].push(row as u32);
        }
        let tenant: Arc<str> = Arc::from(tenant);
        // Reserve a queue slot on every lane first, so a request is queued whole or not at all.
        let mut reserved = Vec::new();
        for (owner, rows) in groups.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let addr = &ring.members()[owner];
            let tx = self
                .lane(addr)
                .ok_or_else(|| IngestError::Unavailable("agent is shutting down".into()))?;
            reserved.push((addr.clone(), tx, rows));
        }
        let mut slots = Vec::with_capacity(reserved.len());
        for (addr, tx, rows) in &reserved {
            let slot = tx.try_reserve().map_err(|e| match e {
                mpsc::error::TrySendError::Full(()) => {
                    IngestError::Overloaded(format!("queue to collector {addr} is full"))
                }
                mpsc::error::TrySendError::Closed(()) => {
                    warn!(collector = %addr, "lane closed");
                    IngestError::Unavailable("agent is shutting down".into())
                }
            })?;
            slots.push((slot, rows));
        }
        for (slot, rows) in slots {
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(&batch, &UInt32Array::from(rows.clone()))
                    .map_err(|e| IngestError::Internal(format!("routing: {e}")))?
            };
            slot.send(Part {
                signal,
                tenant: tenant.clone(),
                batch: part,
                _permit: permit.clone(),
            });
        }
        self.0.metrics.buffered_bytes.set(self.held_bytes());
        Ok(())
    }
}
