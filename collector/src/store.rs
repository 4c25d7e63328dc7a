//! The accept path shared by every receiver of a collector:
//! idempotency check -> schema and room check -> WAL append (fsynced, group-committed) ->
//! buffer. A batch is acknowledged only when this returns `Ok`.
//!
//! Invariants:
//! - A batch with an agent key (agent id, sequence) is stored at most once, also across
//!   restarts (see [`crate::dedup`]); batches without one (direct OTLP) carry an empty id.
//! - Every buffered row is in a WAL segment the WAL still keeps: `gate` stops the persister
//!   from computing the WAL's low-water mark while an append is between the WAL and the
//!   buffer.
//! - Recovery does not store a row twice: rows of WAL entries that a file in storage already
//!   records (see [`crate::persisted`]) are not replayed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use strata_schema::Signal;
use strata_schema::envelope::Envelope;
use tokio::sync::RwLock;
use tracing::{info, warn};

use crate::buffer::{Buffer, BufferError};
use crate::dedup::{self, Claim, Dedup};
use crate::metrics::CollectorMetrics;
use crate::spanmetrics::SpanMetrics;
use crate::wal::{Wal, WalError, entry};
use strata_storage::Storage;
use strata_storage::layout;

/// Why a batch was not accepted: the same classification for the wire as every receiver's.
pub use strata_ingest::IngestError as AcceptError;

#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    Stored { rows: usize },
    Duplicate,
}

pub struct Store {
    pub buffer: Arc<Buffer>,
    wal: Wal,
    dedup: Dedup,
    checkpoint: PathBuf,
    gate: RwLock<()>,
    metrics: Arc<CollectorMetrics>,
    span_metrics: Option<Arc<SpanMetrics>>,
}

impl Store {
    /// Opens the WAL under `data_dir`, replays it into `buffer` (skipping rows that are
    /// already in `collector`'s files in `storage`) and loads the idempotency checkpoint.
    /// Damaged WAL tails and checkpoints are set aside and counted, never fatal.
    pub async fn open(
        data_dir: &std::path::Path,
        segment_bytes: u64,
        buffer: Arc<Buffer>,
        storage: &Storage,
        collector: &str,
        metrics: Arc<CollectorMetrics>,
    ) -> std::io::Result<Store> {
        let checkpoint = dedup::checkpoint_path(data_dir);
        let dedup = match Dedup::load(&checkpoint) {
            Ok(d) => d.unwrap_or_default(),
            Err(e) => {
                warn!(error = %e, "idempotency checkpoint unreadable; starting with an empty window");
                metrics
                    .recovery_errors
                    .get_or_create(&vec![("what", "dedup".into())])
                    .inc();
                Dedup::default()
            }
        };
        let (wal, recovery) = Wal::open(&data_dir.join("wal"), segment_bytes)?;
        metrics.wal_corrupt_bytes.inc_by(recovery.corrupt_bytes);
        if recovery.corrupt_segments > 0 {
            metrics
                .recovery_errors
                .get_or_create(&vec![("what", "wal".into())])
                .inc_by(recovery.corrupt_segments);
        }
        let mut entries = Vec::with_capacity(recovery.records.len());
        for (position, payload) in &recovery.records {
            let id = &position.id;
            let decoded = entry::decode(payload).map_err(|e| e.to_string()).and_then(
                |(envelope, batches)| {
                    let signal = envelope.signal().map_err(|e| e.to_string())?;
                    let prepared = buffer
                        .prepare(signal, &batches, false)
                        .map_err(|e| e.to_string())?;
                    Ok((*id, envelope, signal, prepared))
                },
            );
            match decoded {
                Ok(e) => entries.push(e),
                Err(e) => {
                    warn!(entry = id, error = %e, "cannot replay a WAL entry; skipping it");
                    metrics
                        .recovery_errors
                        .get_or_create(&vec![("what", "wal_entry".into())])
                        .inc();
                }
            }
        }
        // What a crash between writing a file and cutting the WAL left in storage already.
        let dirs: HashSet<String> = entries
            .iter()
            .flat_map(|(_, env, signal, p)| {
                p.hours()
                    .map(|h| layout::partition_dir(&env.tenant, *signal, h))
                    .collect::<Vec<_>>()
            })
            .collect();
        let persisted = crate::persisted::scan(storage, collector, dirs)
            .await
            .map_err(std::io::Error::other)?;
        let (mut replayed, mut skipped) = (0, 0);
        for (id, envelope, signal, mut prepared) in entries {
            if !envelope.agent_id.is_empty() {
                dedup.stored(&envelope.agent_id, envelope.sequence);
            }
            let before = prepared.rows();
            prepared.retain_hours(|h| {
                !persisted
                    .get(&layout::partition_dir(&envelope.tenant, signal, h))
                    .is_some_and(|ids| ids.contains(&id))
            });
            skipped += before - prepared.rows();
            replayed += buffer.commit(&envelope.tenant, prepared, id);
        }
        if !recovery.records.is_empty() {
            info!(
                entries = recovery.records.len(),
                replayed,
                already_stored = skipped,
                "replayed WAL"
            );
        }
        metrics.buffered_bytes.set(buffer.held_bytes() as i64);
        Ok(Store {
            buffer,
            wal,
            dedup,
            checkpoint,
            gate: RwLock::new(()),
            metrics,
            span_metrics: None,
        })
    }

    /// Counts every span stored from now on into `span_metrics`.
    pub fn with_span_metrics(mut self, span_metrics: Arc<SpanMetrics>) -> Self {
        self.span_metrics = Some(span_metrics);
        self
    }

    /// Stores one batch (all of `envelope`'s signal) durably, or says why not.
    /// `source` (`flight`, `otlp`) labels the accepted-rows metric. `stream`, when given, is
    /// `batches` as the Arrow IPC stream they arrived in: the WAL keeps it as it is instead of
    /// encoding the batches again.
    pub async fn accept(
        &self,
        source: &'static str,
        envelope: &Envelope,
        batches: &[RecordBatch],
        stream: Option<&[u8]>,
    ) -> Result<Accepted, AcceptError> {
        let signal = envelope
            .signal()
            .map_err(|e| AcceptError::Invalid(e.to_string()))?;
        let keyed = !envelope.agent_id.is_empty();
        let mut claim = None;
        if keyed {
            match self.dedup.claim(&envelope.agent_id, envelope.sequence) {
                Claim::Duplicate => return Ok(Accepted::Duplicate),
                Claim::InFlight => {
                    return Err(AcceptError::Unavailable(
                        "this batch is being stored by another request; retry".into(),
                    ));
                }
                Claim::New => {
                    claim = Some(PendingClaim {
                        dedup: &self.dedup,
                        agent: &envelope.agent_id,
                        seq: envelope.sequence,
                    })
                }
            }
        }
        let result = self.store(envelope, signal, batches, stream).await;
        if let Ok(Accepted::Stored { rows }) = &result {
            self.metrics
                .received_rows
                .get_or_create(&vec![
                    ("signal", signal.as_str().to_string()),
                    ("source", source.to_string()),
                ])
                .inc_by(*rows as u64);
            if signal == Signal::Traces
                && let Some(span_metrics) = &self.span_metrics
            {
                span_metrics.observe(&envelope.tenant, batches);
            }
        }
        if let Some(claim) = claim {
            match &result {
                Ok(_) => claim.stored(),
                Err(_) => drop(claim),
            }
        }
        result
    }

    async fn store(
        &self,
        envelope: &Envelope,
        signal: Signal,
        batches: &[RecordBatch],
        stream: Option<&[u8]>,
    ) -> Result<Accepted, AcceptError> {
        let prepared = self
            .buffer
            .prepare(signal, batches, true)
            .map_err(|e| match e {
                BufferError::Full { .. } => AcceptError::Overloaded(e.to_string()),
                BufferError::Schema { .. } => AcceptError::Invalid(e.to_string()),
            })?;
        let record = match stream {
            Some(stream) => entry::encode_stream(envelope, stream),
            None => entry::encode(envelope, batches)
                .map_err(|e| AcceptError::Internal(e.to_string()))?,
        };
        let _gate = self.gate.read().await;
        let entry = self.wal.append(record).await.map_err(|e| {
            self.metrics.wal_errors.inc();
            match e {
                WalError::NoSpace(m) => AcceptError::Overloaded(m),
                WalError::Closed => AcceptError::Unavailable("collector is shutting down".into()),
                WalError::Io(m) => AcceptError::Unavailable(m),
            }
        })?;
        let rows = self.buffer.commit(&envelope.tenant, prepared, entry);
        self.metrics
            .buffered_bytes
            .set(self.buffer.held_bytes() as i64);
        Ok(Accepted::Stored { rows })
    }

    /// After partitions were written to storage: checkpoint the idempotency keys, then delete
    /// the WAL segments no buffered row needs any more.
    pub async fn truncate_wal(&self) {
        let low = {
            let _gate = self.gate.write().await;
            self.buffer
                .min_segment()
                .unwrap_or(u64::MAX)
                .min(self.wal.active_segment())
        };
        // The checkpoint (the whole idempotency window, fsynced) is only needed when segments
        // are about to go; most flushes free none.
        match self.wal.has_segments_below(low) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                warn!(error = %e, "cannot list WAL segments");
                self.metrics.wal_errors.inc();
                return;
            }
        }
        if let Err(e) = self.dedup.checkpoint(&self.checkpoint) {
            warn!(error = %e, "cannot checkpoint idempotency keys; keeping the WAL");
            self.metrics.wal_errors.inc();
            return;
        }
        match self.wal.remove_below(low) {
            Ok(n) => {
                self.metrics.wal_segments_removed.inc_by(n as u64);
            }
            Err(e) => {
                warn!(error = %e, "cannot remove WAL segments");
                self.metrics.wal_errors.inc();
            }
        }
    }
}

/// A claim on an idempotency key while its batch is being stored. Dropped without
/// [`PendingClaim::stored`] (the store failed, or the request was cancelled because its client
/// went away mid-store) it releases the key, so that the client's retry is not refused as
/// "in flight" forever. A cancelled store that did reach the WAL may then be stored again by the
/// retry: a duplicate, never a batch that can no longer be delivered.
struct PendingClaim<'a> {
    dedup: &'a Dedup,
    agent: &'a str,
    seq: u64,
}

impl PendingClaim<'_> {
    fn stored(self) {
        self.dedup.stored(self.agent, self.seq);
        std::mem::forget(self);
    }
}

impl Drop for PendingClaim<'_> {
    fn drop(&mut self) {
        self.dedup.release(self.agent, self.seq);
    }
}
