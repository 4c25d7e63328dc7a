//! In-memory buffer of accepted rows, per (tenant, signal, UTC hour) partition.
//!
//! Invariants:
//! - Every appended batch has exactly its signal's schema (checked on append), so partitions
//!   concatenate without casts.
//! - Total Arrow memory held ([`retained_bytes`], each allocation once) is bounded by
//!   `max_bytes`; `append` refuses past it.
//! - A partition taken for writing is put back whole if the write fails, so accepted rows are
//!   only ever removed once they are in storage.
//! - Each partition knows the oldest WAL segment its rows came from, so the WAL can be cut
//!   below the oldest segment any buffered row still needs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::TimestampNanosecondType;
use arrow::record_batch::RecordBatch;
use strata_schema::Signal;
use strata_schema::memory::retained_bytes;

use strata_storage::layout::hour_of;

/// Why a batch was not appended.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("batch does not match the {signal} schema: {reason}")]
    Schema { signal: Signal, reason: String },
    #[error("collector buffer is full ({held} of {max} bytes); retry later")]
    Full { held: usize, max: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub tenant: Arc<str>,
    pub signal: Signal,
    /// Hours since the Unix epoch (UTC).
    pub hour: i64,
}

/// Rows of one partition waiting to be written.
#[derive(Debug)]
pub struct Partition {
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    pub bytes: usize,
    pub since: Instant,
    /// WAL entries holding these rows; written into the file's metadata so recovery can tell
    /// what is already in storage.
    pub entries: Vec<u64>,
}

impl Partition {
    /// Oldest WAL segment holding any of these rows.
    pub fn min_segment(&self) -> Option<u64> {
        self.entries
            .iter()
            .map(|&e| crate::wal::segment_of(e))
            .min()
    }
}

/// Batches checked against their schema and split by hour, ready to [`Buffer::commit`].
#[derive(Debug)]
pub struct Prepared {
    signal: Signal,
    parts: Vec<PreparedPart>,
}

/// The rows of one hour, with the memory they hold ([`retained_bytes`], measured once).
#[derive(Debug)]
struct PreparedPart {
    hour: i64,
    batch: RecordBatch,
    bytes: usize,
}

impl Prepared {
    pub fn rows(&self) -> usize {
        self.parts.iter().map(|p| p.batch.num_rows()).sum()
    }

    fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// The hour partitions these rows fall in.
    pub fn hours(&self) -> impl Iterator<Item = i64> + '_ {
        self.parts.iter().map(|p| p.hour)
    }

    /// Keeps only the hour partitions for which `keep` is true.
    pub fn retain_hours(&mut self, mut keep: impl FnMut(i64) -> bool) {
        self.parts.retain(|p| keep(p.hour));
    }
}

pub struct Buffer {
    partitions: Mutex<HashMap<PartitionKey, Partition>>,
    held: AtomicUsize,
    max_bytes: usize,
}

impl Buffer {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            partitions: Mutex::new(HashMap::new()),
            held: AtomicUsize::new(0),
            max_bytes,
        }
    }

    pub fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Checks `batches` against `signal`'s schema and splits them by hour. With `check_room`,
    /// refuses when the buffer is over its limit (recovery replays without that check).
    pub fn prepare(
        &self,
        signal: Signal,
        batches: &[RecordBatch],
        check_room: bool,
    ) -> Result<Prepared, BufferError> {
        let mut parts = Vec::new();
        for batch in batches {
            signal
                .check_batch(batch)
                .map_err(|reason| BufferError::Schema { signal, reason })?;
            for (hour, batch) in split_by_hour(signal, batch)? {
                let bytes = retained_bytes(&batch);
                parts.push(PreparedPart { hour, batch, bytes });
            }
        }
        let prepared = Prepared { signal, parts };
        let held = self.held_bytes();
        if check_room && held > 0 && held + prepared.bytes() > self.max_bytes {
            return Err(BufferError::Full {
                held,
                max: self.max_bytes,
            });
        }
        Ok(prepared)
    }

    /// Adds prepared rows of `tenant`, kept in WAL entry `entry`; returns the row count.
    pub fn commit(&self, tenant: &str, prepared: Prepared, entry: u64) -> usize {
        let tenant: Arc<str> = Arc::from(tenant);
        let mut rows_in = 0;
        let total = prepared.bytes();
        let mut parts = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        for PreparedPart { hour, batch, bytes } in prepared.parts {
            let key = PartitionKey {
                tenant: tenant.clone(),
                signal: prepared.signal,
                hour,
            };
            let p = parts.entry(key).or_insert_with(|| Partition {
                batches: Vec::new(),
                rows: 0,
                bytes: 0,
                since: Instant::now(),
                entries: Vec::new(),
            });
            rows_in += batch.num_rows();
            p.rows += batch.num_rows();
            p.bytes += bytes;
            if p.entries.last() != Some(&entry) {
                p.entries.push(entry);
            }
            p.batches.push(batch);
        }
        self.held.fetch_add(total, Ordering::Relaxed);
        rows_in
    }

    /// Oldest WAL segment still needed by buffered rows.
    pub fn min_segment(&self) -> Option<u64> {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(Partition::min_segment)
            .min()
    }

    /// Takes the partitions that are due: over `max_rows` or `max_bytes`, older than
    /// `max_age`, or all of them when `all` is set.
    pub fn take_due(
        &self,
        max_rows: usize,
        max_bytes: usize,
        max_age: Duration,
        all: bool,
    ) -> Vec<(PartitionKey, Partition)> {
        let mut parts = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let due: Vec<PartitionKey> = parts
            .iter()
            .filter(|(_, p)| {
                all || p.rows >= max_rows || p.bytes >= max_bytes || p.since.elapsed() >= max_age
            })
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| parts.remove(&k).map(|p| (k, p)))
            .collect()
    }

    /// Marks a taken partition as written: its memory is released.
    pub fn release(&self, partition: &Partition) {
        self.held.fetch_sub(partition.bytes, Ordering::Relaxed);
    }

    /// Puts back a partition whose write failed, ahead of rows that arrived meanwhile.
    pub fn restore(&self, key: PartitionKey, mut partition: Partition) {
        let mut parts = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(newer) = parts.remove(&key) {
            partition.rows += newer.rows;
            partition.bytes += newer.bytes;
            partition.entries.extend(newer.entries);
            partition.batches.extend(newer.batches);
        }
        parts.insert(key, partition);
    }

    pub fn is_empty(&self) -> bool {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

/// Splits a batch into one batch per UTC hour of its time column.
fn split_by_hour(
    signal: Signal,
    batch: &RecordBatch,
) -> Result<Vec<(i64, RecordBatch)>, BufferError> {
    let times = batch
        .column_by_name(signal.time_column())
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| BufferError::Schema {
            signal,
            reason: format!("no {} timestamp column", signal.time_column()),
        })?;
    let hour = |i: usize| {
        if times.is_null(i) {
            0
        } else {
            hour_of(times.value(i))
        }
    };
    let first = if batch.num_rows() > 0 { hour(0) } else { 0 };
    if (0..batch.num_rows()).all(|i| hour(i) == first) {
        return Ok(vec![(first, batch.clone())]);
    }
    let mut groups: HashMap<i64, Vec<u32>> = HashMap::new();
    for i in 0..batch.num_rows() {
        groups.entry(hour(i)).or_default().push(i as u32);
    }
    groups
        .into_iter()
        .map(|(h, rows)| {
            take_record_batch(batch, &UInt32Array::from(rows))
                .map(|b| (h, b))
                .map_err(|e| BufferError::Schema {
                    signal,
                    reason: e.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    use super::*;
    use strata_storage::layout::HOUR_NANOS;

    fn logs(times: &[i64]) -> RecordBatch {
        strata_schema::logs::to_batch(&[ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: times
                    .iter()
                    .map(|&t| LogRecord {
                        time_unix_nano: t as u64,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }])
        .unwrap()
    }

    #[test]
    fn splits_by_hour_and_flushes_when_due() {
        let b = Buffer::new(1 << 30);
        let h = 480_000 * HOUR_NANOS;
        let p = b
            .prepare(
                Signal::Logs,
                &[logs(&[h, h + 1, h + HOUR_NANOS, h + 2])],
                true,
            )
            .unwrap();
        let rows = b.commit("t", p, crate::wal::entry_id(3, 0));
        assert_eq!(b.min_segment(), Some(3));
        assert_eq!(rows, 4);
        assert!(b.held_bytes() > 0);
        assert!(
            b.take_due(100, usize::MAX, Duration::from_secs(60), false)
                .is_empty()
        );
        let mut due = b.take_due(3, usize::MAX, Duration::from_secs(60), false);
        assert_eq!(due.len(), 1);
        let (key, part) = due.pop().unwrap();
        assert_eq!((key.hour, part.rows), (480_000, 3));
        b.release(&part);
        let rest = b.take_due(100, usize::MAX, Duration::ZERO, false);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0.hour, 480_001);
        b.release(&rest[0].1);
        assert_eq!(b.held_bytes(), 0);
        assert!(b.is_empty());
    }

    #[test]
    fn refuses_when_full_and_restores_failed_writes_first() {
        let b = Buffer::new(1);
        let p = b.prepare(Signal::Logs, &[logs(&[0])], true).unwrap();
        b.commit("t", p, 1);
        assert!(matches!(
            b.prepare(Signal::Logs, &[logs(&[0])], true),
            Err(BufferError::Full { .. })
        ));
        assert!(
            b.prepare(Signal::Logs, &[logs(&[0])], false).is_ok(),
            "recovery ignores the limit"
        );
        let (key, part) = b.take_due(0, 0, Duration::ZERO, true).pop().unwrap();
        b.restore(key, part);
        assert!(!b.is_empty());
    }

    #[test]
    fn rejects_batches_of_another_schema() {
        let b = Buffer::new(1 << 30);
        let err = b.prepare(Signal::Traces, &[logs(&[0])], true).unwrap_err();
        assert!(matches!(err, BufferError::Schema { .. }), "{err}");
    }
}
