//! The agent's buffer: accepted batches, each bound for one collector, kept until that
//! collector acknowledged them.
//!
//! Disk mode (the default) writes every routed batch to a `strata-wal` log under
//! `<data_dir>/buffer` and answers the OTLP client only once it is fsynced (group commit: the
//! parts of all concurrent requests share one `fdatasync`). Memory mode keeps batches in memory
//! only; they are lost with the process, which is the trade-off the user chose.
//!
//! Invariants:
//! - A batch's idempotency sequence is its entry id: unique, increasing, never reused (see
//!   `strata-wal`), so a batch replayed after a crash carries the key the collector already saw.
//! - An entry leaves the buffer only when acknowledged ([`Buffer::ack`]) or, in memory mode, at
//!   shutdown (counted as dropped). A segment is deleted once none of its entries is live;
//!   before that, the route records it holds for older live entries are written again, so a
//!   re-routed batch never goes back to its first collector after a restart.
//! - Bounded: on disk `buffer_max_bytes` in total and `buffer_key_share` of it per
//!   (signal, tenant) (a bulkhead: a flood of one cannot fill the buffer for the others); in
//!   memory `memory_limit_bytes`, half of which at most holds copies of on-disk batches (the
//!   rest is for requests being decoded and batches being shipped). Past a limit, or on ENOSPC,
//!   appends fail with `Overloaded`, which the receivers turn into `RESOURCE_EXHAUSTED` / 429.
//! - Recovery: a torn or corrupt tail is set aside and counted by `strata-wal`; a record that
//!   cannot be decoded is skipped and counted; the agent starts either way.

pub mod record;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::ipc::CompressionType;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use strata_schema::Signal;
use strata_wal::{Position, Wal, WalError, segment_of};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use crate::metrics::AgentMetrics;
use record::{DataHeader, Record};
use strata_ingest::IngestError;

/// Marks the ids of entries that are not on disk (memory mode, volatile batches): they start
/// at the wall clock in nanoseconds at open (unique across restarts) with this bit set, apart
/// from the ids of the disk log. Collectors keep a dedup window per id space, so a stream of
/// one kind never pushes the other out of the window.
pub const MEMORY_IDS: u64 = 1 << 63;

/// Where accepted batches wait for their acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BufferMode {
    Disk,
    Memory,
}

#[derive(Debug, Clone)]
pub struct BufferConfig {
    pub mode: BufferMode,
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    /// Largest share of `max_bytes` one (signal, tenant) may hold, in (0, 1].
    pub key_share: f64,
    pub memory_limit_bytes: usize,
    /// How a batch's Arrow IPC stream is compressed: once, at append, for the disk, the
    /// in-memory copy and shipping alike.
    pub compression: Option<CompressionType>,
}

/// What a lane needs to know of a buffered batch.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Entry id, and the batch's idempotency sequence.
    pub id: u64,
    pub signal: Signal,
    pub tenant: Arc<str>,
    pub rows: usize,
    pub bytes: usize,
    /// Routing hash of the batch's first row: where it goes when it must move whole.
    pub key_hash: u64,
}

/// A buffered entry with the collector it is bound for.
pub type Bound = (Entry, Arc<str>);

/// A part of an accepted request, routed to `target`.
pub struct NewPart {
    pub target: Arc<str>,
    pub key_hash: u64,
    pub signal: Signal,
    pub tenant: Arc<str>,
    pub batch: RecordBatch,
}

/// Memory held by in-memory copies; released when the last entry sharing it goes.
struct Hold {
    _permit: OwnedSemaphorePermit,
    kib: u64,
    cached_kib: Arc<AtomicU64>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.cached_kib.fetch_sub(self.kib, Ordering::Relaxed);
    }
}

struct Meta {
    entry: Entry,
    target: Arc<str>,
    position: Option<Position>,
    /// The batch's Arrow IPC stream in memory (what is shipped), when there was room.
    cached: Option<(Bytes, Arc<Hold>)>,
    /// Segment holding this entry's latest route record, if it was re-routed.
    route_segment: Option<u64>,
    /// Set for volatile entries: told when the entry is acknowledged.
    receipt: Option<Arc<Receipt>>,
}

/// Acknowledgement of a volatile batch (one whose source keeps it durable itself, such as a
/// tailed file): resolves once every part of it was acknowledged by its collector. A part that
/// is dropped instead (shutdown, memory mode) leaves the receipt unresolved, so the source
/// never takes an unshipped batch for shipped.
pub struct Receipt {
    remaining: std::sync::atomic::AtomicUsize,
    done: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Receipt {
    /// A receipt for `parts` parts, and the receiver that resolves when all are acknowledged.
    pub fn new(parts: usize) -> (Arc<Receipt>, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let receipt = Arc::new(Receipt {
            remaining: std::sync::atomic::AtomicUsize::new(parts),
            done: Mutex::new(Some(tx)),
        });
        if parts == 0 {
            receipt.part_acked();
        }
        (receipt, rx)
    }

    fn part_acked(&self) {
        let left = self
            .remaining
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        if left == 0
            && let Some(tx) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            let _ = tx.send(());
        }
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Meta>,
    /// Bytes on disk and live entries per segment.
    segments: BTreeMap<u64, (u64, usize)>,
    key_bytes: HashMap<(Signal, Arc<str>), u64>,
    disk_bytes: u64,
}

pub struct Buffer {
    config: BufferConfig,
    wal: Option<Wal>,
    state: Mutex<State>,
    memory: Arc<Semaphore>,
    memory_kib: u32,
    cached_kib: Arc<AtomicU64>,
    next_memory_id: AtomicU64,
    metrics: Arc<AgentMetrics>,
    /// Serialises segment deletion.
    deleting: tokio::sync::Mutex<()>,
}

/// Why a live entry was not loaded.
#[derive(Debug)]
pub enum LoadError {
    /// No memory to hold it right now (only when not waiting).
    Busy,
    /// It cannot be read back (corrupt on disk).
    Unreadable(String),
}

/// A batch loaded for shipping, as its Arrow IPC stream, with the memory it holds while in
/// flight.
pub struct Loaded {
    pub stream: Bytes,
    pub permit: Option<OwnedSemaphorePermit>,
}

impl Buffer {
    /// Opens the buffer; returns it with the entries still waiting (replayed from disk), each
    /// with its target collector.
    pub fn open(
        config: BufferConfig,
        metrics: Arc<AgentMetrics>,
    ) -> std::io::Result<(Arc<Buffer>, Vec<Bound>)> {
        let memory_kib = u32::try_from(config.memory_limit_bytes / 1024)
            .unwrap_or(u32::MAX)
            .max(1);
        let first_memory_id = MEMORY_IDS
            | std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
        let mut state = State::default();
        let mut wal = None;
        if config.mode == BufferMode::Disk {
            let mut corrupt_records = 0u64;
            let (w, recovery) =
                Wal::open_with(&config.dir, config.segment_bytes, |pos, payload| {
                    if let Err(e) = replay(&mut state, pos, payload) {
                        warn!(entry = pos.id, error = %e, "skipping an unreadable buffer record");
                        corrupt_records += 1;
                    }
                })?;
            for (id, bytes) in w.segments()? {
                state.segments.entry(id).or_default().0 = bytes;
            }
            state.disk_bytes = state.segments.values().map(|(b, _)| b).sum();
            metrics.buffer_corrupt_bytes.inc_by(recovery.corrupt_bytes);
            metrics
                .buffer_corrupt_segments
                .inc_by(recovery.corrupt_segments);
            metrics.buffer_corrupt_records.inc_by(corrupt_records);
            wal = Some(w);
        }
        let buffer = Arc::new(Buffer {
            config,
            deleting: tokio::sync::Mutex::new(()),
            wal,
            state: Mutex::new(state),
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
            cached_kib: Arc::new(AtomicU64::new(0)),
            next_memory_id: AtomicU64::new(first_memory_id),
            metrics,
        });
        let waiting: Vec<Bound> = {
            let state = buffer.lock();
            let mut v: Vec<_> = state
                .entries
                .values()
                .map(|m| (m.entry.clone(), m.target.clone()))
                .collect();
            v.sort_by_key(|(e, _)| e.id);
            v
        };
        if !waiting.is_empty() {
            let rows: usize = waiting.iter().map(|(e, _)| e.rows).sum();
            info!(
                entries = waiting.len(),
                rows, "disk buffer replayed; shipping what was not acknowledged"
            );
            buffer.metrics.buffer_replayed_rows.inc_by(rows as u64);
        }
        buffer.update_gauges();
        Ok((buffer, waiting))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes the segments replay found without live entries.
    pub async fn compact(&self) {
        if let Some(wal) = &self.wal {
            self.delete_unused_segments(wal).await;
        }
    }

    pub fn mode(&self) -> BufferMode {
        self.config.mode
    }

    /// Memory for a request being decoded and routed: `Overloaded` when there is none.
    pub fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, IngestError> {
        let kib = (bytes / 1024 + 1).min(self.memory_kib as usize) as u32;
        self.memory
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| {
                IngestError::Overloaded(format!(
                    "agent memory limit reached ({} KiB held); retry later",
                    self.memory_kib as usize - self.memory.available_permits()
                ))
            })
    }

    /// Makes the parts of one request durable (disk mode: fsynced) and returns their entries.
    /// `permit` is the request's memory; it is kept for in-memory copies when there is room.
    ///
    /// With a `receipt` the parts are volatile: kept in memory only (holding `permit` until
    /// acknowledged), never written to disk, and the receipt is told of each acknowledgement.
    /// The source of such parts must be able to produce them again after a crash.
    pub async fn append(
        self: &Arc<Self>,
        parts: Vec<NewPart>,
        permit: OwnedSemaphorePermit,
        receipt: Option<Arc<Receipt>>,
    ) -> Result<Vec<Bound>, IngestError> {
        let volatile = receipt.is_some();
        // Every part is encoded once, as the IPC stream that is written, kept and shipped.
        let mut streams = Vec::with_capacity(parts.len());
        for p in &parts {
            let stream = strata_ingest::flight::ipc_stream(&p.batch, self.config.compression)
                .map_err(|e| IngestError::Internal(format!("buffer encode: {e}")))?;
            streams.push(Bytes::from(stream));
        }
        let kib = (streams.iter().map(Bytes::len).sum::<usize>() / 1024 + 1) as u64;
        let keep = match self.config.mode {
            _ if volatile => true,
            BufferMode::Memory => true,
            BufferMode::Disk => {
                self.cached_kib.load(Ordering::Relaxed) + kib <= u64::from(self.memory_kib) / 2
            }
        };
        let mut out = Vec::with_capacity(parts.len());
        let mut positions = Vec::with_capacity(parts.len());
        if let Some(wal) = self.wal.as_ref().filter(|_| !volatile) {
            let mut encoded = Vec::with_capacity(parts.len());
            for (p, stream) in parts.iter().zip(&streams) {
                let header = DataHeader {
                    target: p.target.to_string(),
                    key_hash: p.key_hash,
                    rows: p.batch.num_rows() as u32,
                };
                encoded.push(record::encode_data(&header, p.signal, &p.tenant, stream));
            }
            let sizes: Vec<u64> = encoded.iter().map(|b| framed_len(b)).collect();
            self.admit(&parts, &sizes)?;
            let results =
                futures::future::join_all(encoded.into_iter().map(|b| wal.append_at(b))).await;
            let mut failed = None;
            for (r, size) in results.into_iter().zip(&sizes) {
                match r {
                    Ok(pos) => positions.push(Some((pos, *size))),
                    Err(e) => {
                        positions.push(None);
                        failed.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failed {
                // Parts that did make it are acknowledged away at once: the client is told to
                // retry the whole request, and must not get these rows twice.
                let written: Vec<u64> = positions.iter().flatten().map(|(p, _)| p.id).collect();
                self.release_reservation(&parts, &sizes);
                if !written.is_empty() {
                    self.discard_written(&written, &positions);
                }
                return Err(self.wal_error(e));
            }
        } else {
            for _ in &parts {
                positions.push(None);
            }
        }
        // The copies hold the memory of their streams; the rest of the request's goes now.
        // Volatile parts are not copies of on-disk batches: they do not count against the
        // share of memory such copies may take.
        let mut permit = permit;
        let held = permit
            .split((kib as usize).min(permit.num_permits()))
            .unwrap_or(permit);
        let kib = if volatile { 0 } else { kib };
        let hold = keep.then(|| {
            self.cached_kib.fetch_add(kib, Ordering::Relaxed);
            Arc::new(Hold {
                _permit: held,
                kib,
                cached_kib: self.cached_kib.clone(),
            })
        });
        let mut state = self.lock();
        for ((p, pos), stream) in parts.into_iter().zip(positions).zip(streams) {
            let id = match pos {
                Some((pos, _)) => pos.id,
                None => self.next_memory_id.fetch_add(1, Ordering::Relaxed),
            };
            let bytes = match pos {
                Some((_, size)) => size as usize,
                None => stream.len(),
            };
            let entry = Entry {
                id,
                signal: p.signal,
                tenant: p.tenant.clone(),
                rows: p.batch.num_rows(),
                bytes,
                key_hash: p.key_hash,
            };
            // Reserved in `admit`; the segment's share is booked here. (Memory mode has no
            // disk limits, so nothing to book.)
            if let Some((pos, size)) = pos {
                let seg = state.segments.entry(segment_of(pos.id)).or_default();
                seg.1 += 1;
                seg.0 += size;
            }
            state.entries.insert(
                id,
                Meta {
                    entry: entry.clone(),
                    target: p.target.clone(),
                    position: pos.map(|(p, _)| p),
                    cached: hold.as_ref().map(|h| (stream, h.clone())),
                    route_segment: None,
                    receipt: receipt.clone(),
                },
            );
            out.push((entry, p.target));
        }
        drop(state);
        self.update_gauges();
        Ok(out)
    }

    /// Checks the disk limits for records of `sizes` bytes and reserves them (released on
    /// failure).
    fn admit(&self, parts: &[NewPart], sizes: &[u64]) -> Result<(), IngestError> {
        let total: u64 = sizes.iter().sum();
        let share = (self.config.max_bytes as f64 * self.config.key_share) as u64;
        let mut state = self.lock();
        if state.disk_bytes + total > self.config.max_bytes {
            self.count_refusal("full");
            return Err(IngestError::Overloaded(format!(
                "agent disk buffer is full ({} of {} bytes); retry later",
                state.disk_bytes, self.config.max_bytes
            )));
        }
        let mut per_key: HashMap<(Signal, Arc<str>), u64> = HashMap::new();
        for (p, size) in parts.iter().zip(sizes) {
            *per_key.entry((p.signal, p.tenant.clone())).or_default() += size;
        }
        for (key, add) in &per_key {
            let held = state.key_bytes.get(key).copied().unwrap_or(0);
            if held + add > share {
                self.count_refusal("share");
                return Err(IngestError::Overloaded(format!(
                    "agent buffer share of {} for tenant {} is full ({held} bytes); retry later",
                    key.0.as_str(),
                    key.1
                )));
            }
        }
        state.disk_bytes += total;
        for (key, add) in per_key {
            *state.key_bytes.entry(key).or_default() += add;
        }
        Ok(())
    }

    fn release_reservation(&self, parts: &[NewPart], sizes: &[u64]) {
        let mut state = self.lock();
        for (p, size) in parts.iter().zip(sizes) {
            state.disk_bytes = state.disk_bytes.saturating_sub(*size);
            if let Some(b) = state.key_bytes.get_mut(&(p.signal, p.tenant.clone())) {
                *b = b.saturating_sub(*size);
            }
        }
    }

    /// Records written by a request that failed as a whole: book their bytes to their segments
    /// (they are on disk) and acknowledge them so they are never shipped.
    fn discard_written(self: &Arc<Self>, ids: &[u64], positions: &[Option<(Position, u64)>]) {
        {
            let mut state = self.lock();
            for (pos, size) in positions.iter().flatten() {
                state.segments.entry(segment_of(pos.id)).or_default().0 += size;
                state.disk_bytes += size;
            }
        }
        self.write_acks(ids.to_vec());
    }

    fn wal_error(&self, e: WalError) -> IngestError {
        let (kind, err) = match e {
            WalError::NoSpace(m) => (
                "nospace",
                IngestError::Overloaded(format!("agent disk buffer: {m}; retry later")),
            ),
            WalError::Io(m) => (
                "io",
                IngestError::Unavailable(format!("agent disk buffer: {m}")),
            ),
            WalError::Closed => (
                "closed",
                IngestError::Unavailable("agent is shutting down".into()),
            ),
        };
        self.count_refusal(kind);
        err
    }

    fn count_refusal(&self, reason: &str) {
        self.metrics
            .buffer_refusals
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// The batch of a live entry: its in-memory copy, else read back from disk with memory
    /// held for it while it is shipped. With `wait`, waits for that memory; without, answers
    /// `Busy` when there is none (a caller already holding loaded batches must not wait for
    /// memory it holds itself). `None` when the entry is gone.
    pub async fn load(&self, id: u64, wait: bool) -> Option<Result<Loaded, LoadError>> {
        let (cached, position, bytes) = {
            let state = self.lock();
            let meta = state.entries.get(&id)?;
            (
                meta.cached.as_ref().map(|(b, _)| b.clone()),
                meta.position,
                meta.entry.bytes,
            )
        };
        if let Some(stream) = cached {
            return Some(Ok(Loaded {
                stream,
                permit: None,
            }));
        }
        let (Some(wal), Some(position)) = (self.wal.clone(), position) else {
            return Some(Err(LoadError::Unreadable(
                "entry has neither a copy in memory nor on disk".into(),
            )));
        };
        // The record's bytes are held while shipping (nothing is decoded).
        let kib = (bytes / 1024 + 1).min(self.memory_kib as usize / 2) as u32;
        let permit = if wait {
            self.memory.clone().acquire_many_owned(kib).await.ok()
        } else {
            match self.memory.clone().try_acquire_many_owned(kib) {
                Ok(p) => Some(p),
                Err(_) => return Some(Err(LoadError::Busy)),
            }
        };
        let read = tokio::task::spawn_blocking(move || {
            let bytes = wal.read(position).map_err(|e| e.to_string())?;
            let start = match record::decode(&bytes).map_err(|e| e.to_string())? {
                Record::Data { rest, .. } => {
                    bytes.len() - rest.len()
                        + record::data_stream(rest).map_err(|e| e.to_string())?
                }
                _ => return Err("not a data record".to_string()),
            };
            Ok(Bytes::from(bytes).slice(start..))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        Some(
            read.map(|stream| Loaded { stream, permit })
                .map_err(LoadError::Unreadable),
        )
    }

    /// A live entry that cannot be read back (corrupt on disk): counted as lost and removed.
    pub fn lose(self: &Arc<Self>, id: u64, error: &str) {
        let rows = {
            let mut state = self.lock();
            // A lost part is not an acknowledged one: its receipt stays unresolved.
            state.entries.get_mut(&id).map_or(0, |m| {
                m.receipt = None;
                m.entry.rows
            })
        };
        warn!(
            entry = id,
            rows, error, "buffered batch cannot be read back; it is lost"
        );
        self.metrics.buffer_lost_rows.inc_by(rows as u64);
        self.ack(&[id]);
    }

    /// The collector of a live entry.
    pub fn target(&self, id: u64) -> Option<Arc<str>> {
        self.lock().entries.get(&id).map(|m| m.target.clone())
    }

    /// Sends a live entry to `target` from now on; durable before it returns (disk mode).
    pub async fn reroute(&self, id: u64, target: Arc<str>) -> Result<(), String> {
        let volatile = self
            .lock()
            .entries
            .get(&id)
            .is_some_and(|m| m.receipt.is_some());
        let segment = match self.wal.as_ref().filter(|_| !volatile) {
            Some(wal) => Some(segment_of(
                wal.append_at(record::encode_route(id, &target))
                    .await
                    .map_err(|e| e.to_string())?
                    .id,
            )),
            None => None,
        };
        let mut state = self.lock();
        if let Some(meta) = state.entries.get_mut(&id) {
            meta.target = target;
            meta.route_segment = segment;
        }
        Ok(())
    }

    /// Acknowledged entries leave the buffer; segments left without live entries are deleted
    /// in the background.
    pub fn ack(self: &Arc<Self>, ids: &[u64]) {
        let mut durable = Vec::with_capacity(ids.len());
        {
            let mut state = self.lock();
            for id in ids {
                let Some(meta) = state.entries.remove(id) else {
                    continue;
                };
                if let Some(receipt) = &meta.receipt {
                    receipt.part_acked();
                    continue;
                }
                durable.push(*id);
                let key = (meta.entry.signal, meta.entry.tenant.clone());
                if let Some(b) = state.key_bytes.get_mut(&key) {
                    *b = b.saturating_sub(meta.entry.bytes as u64);
                }
                if let Some(pos) = meta.position
                    && let Some(seg) = state.segments.get_mut(&segment_of(pos.id))
                {
                    seg.1 = seg.1.saturating_sub(1);
                }
            }
        }
        if !durable.is_empty() {
            self.write_acks(durable);
        }
        self.update_gauges();
    }

    /// Ack records need no fsync of their own: a lost one only means a batch is shipped again,
    /// and the collector recognises its sequence. They ride a group commit; then unused
    /// segments are deleted.
    fn write_acks(self: &Arc<Self>, ids: Vec<u64>) {
        let Some(wal) = self.wal.clone() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let buffer = self.clone();
        handle.spawn(async move {
            if let Err(e) = wal.append(record::encode_ack(&ids)).await {
                warn!(error = %e, "cannot record acknowledgements in the disk buffer");
            }
            buffer.delete_unused_segments(&wal).await;
        });
    }

    /// Deletes segments below the active one that hold no live entry. Route records such a
    /// segment holds for live entries elsewhere are written again first.
    async fn delete_unused_segments(&self, wal: &Wal) {
        let _one_at_a_time = self.deleting.lock().await;
        let active = wal.active_segment();
        let (empty, routes) = {
            let state = self.lock();
            let empty: Vec<u64> = state
                .segments
                .iter()
                .filter(|(id, (_, live))| **id < active && *live == 0)
                .map(|(id, _)| *id)
                .collect();
            if empty.is_empty() {
                return;
            }
            let routes: Vec<(u64, Arc<str>)> = state
                .entries
                .values()
                .filter(|m| m.route_segment.is_some_and(|s| empty.contains(&s)))
                .map(|m| (m.entry.id, m.target.clone()))
                .collect();
            (empty, routes)
        };
        for (id, target) in routes {
            match wal.append_at(record::encode_route(id, &target)).await {
                Ok(pos) => {
                    if let Some(m) = self.lock().entries.get_mut(&id) {
                        m.route_segment = Some(segment_of(pos.id));
                    }
                }
                Err(e) => {
                    // Without the new route record the old segment must stay.
                    warn!(error = %e, "cannot rewrite a route record; keeping its segment");
                    return;
                }
            }
        }
        for seg in empty {
            match wal.remove(seg) {
                Ok(true) => {
                    let mut state = self.lock();
                    if let Some((bytes, _)) = state.segments.remove(&seg) {
                        state.disk_bytes = state.disk_bytes.saturating_sub(bytes);
                    }
                    self.metrics.buffer_segments_removed.inc();
                }
                Ok(false) => {}
                Err(e) => warn!(segment = seg, error = %e, "cannot delete a buffer segment"),
            }
        }
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let state = self.lock();
        self.metrics.buffer_entries.set(state.entries.len() as i64);
        self.metrics.buffer_disk_bytes.set(state.disk_bytes as i64);
        self.metrics
            .buffered_bytes
            .set((i64::from(self.memory_kib) - self.memory.available_permits() as i64) * 1024);
    }

    /// Rows of every live entry.
    pub fn live_rows(&self) -> usize {
        self.lock().entries.values().map(|m| m.entry.rows).sum()
    }
}

/// Bytes a record of `payload` takes in a segment: its frame header and the payload.
fn framed_len(payload: &[u8]) -> u64 {
    (strata_wal::format::RECORD_HEADER_LEN + payload.len()) as u64
}

/// Applies one replayed record to the state.
fn replay(state: &mut State, pos: Position, payload: &[u8]) -> Result<(), String> {
    match record::decode(payload).map_err(|e| e.to_string())? {
        Record::Data { header, rest } => {
            let env = strata_wal::entry::decode_envelope(rest).map_err(|e| e.to_string())?;
            let signal = env.signal().map_err(|e| e.to_string())?;
            let tenant: Arc<str> = Arc::from(env.tenant.as_str());
            let bytes = framed_len(payload) as usize;
            *state.key_bytes.entry((signal, tenant.clone())).or_default() += bytes as u64;
            state.segments.entry(segment_of(pos.id)).or_default().1 += 1;
            state.entries.insert(
                pos.id,
                Meta {
                    entry: Entry {
                        id: pos.id,
                        signal,
                        tenant,
                        rows: header.rows as usize,
                        bytes,
                        key_hash: header.key_hash,
                    },
                    target: Arc::from(header.target.as_str()),
                    position: Some(pos),
                    cached: None,
                    route_segment: None,
                    receipt: None,
                },
            );
        }
        Record::Route { entry, target } => {
            if let Some(m) = state.entries.get_mut(&entry) {
                m.target = Arc::from(target.as_str());
                m.route_segment = Some(segment_of(pos.id));
            }
        }
        Record::Ack(ids) => {
            for id in ids {
                if let Some(m) = state.entries.remove(&id) {
                    let key = (m.entry.signal, m.entry.tenant.clone());
                    if let Some(b) = state.key_bytes.get_mut(&key) {
                        *b = b.saturating_sub(m.entry.bytes as u64);
                    }
                    if let Some(seg) = state.segments.get_mut(&segment_of(id)) {
                        seg.1 = seg.1.saturating_sub(1);
                    }
                }
            }
        }
    }
    Ok(())
}
