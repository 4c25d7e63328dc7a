//! Persisting buffered partitions to storage.
//!
//! A background loop takes due partitions from the [`Buffer`], encodes each as one Parquet file
//! ([`parquet`]) and writes it with a single `put`, which is atomic on every `object_store`
//! backend (the local one writes a temporary file and renames it), so a reader never sees a
//! half-written file. A partition whose write fails goes back into the buffer and is tried again
//! on the next tick. At shutdown every partition is written. After files are written, the WAL
//! is cut below the oldest segment still needed by buffered rows.

use std::sync::Arc;
use std::time::Duration;

use object_store::{ObjectStoreExt, PutPayload};
use parquet::file::metadata::KeyValue;
use strata_storage::Storage;
use strata_storage::format::{self, ParquetOptions};
use strata_storage::layout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::buffer::{Buffer, Partition, PartitionKey};
use crate::metrics::CollectorMetrics;
use crate::store::Store;

/// When partitions are due.
#[derive(Debug, Clone)]
pub struct FlushPolicy {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

pub struct Persister {
    pub collector_id: String,
    pub buffer: Arc<Buffer>,
    pub store: Arc<Store>,
    pub storage: Storage,
    pub policy: FlushPolicy,
    pub options: ParquetOptions,
    pub metrics: Arc<CollectorMetrics>,
}

impl Persister {
    /// Flushes due partitions until `shutdown`, then flushes everything (retrying failed writes
    /// for at most `grace`).
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let tick =
            (self.policy.max_age / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let mut interval = tokio::time::interval(tick);
        loop {
            tokio::select! {
                _ = interval.tick() => self.flush(false).await,
                _ = shutdown.cancelled() => break,
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            self.flush(true).await;
            if self.buffer.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !self.buffer.is_empty() {
            error!("shutdown grace elapsed with rows still buffered");
        }
        info!("persister stopped");
    }

    /// Writes every due partition (all of them when `all`).
    pub async fn flush(&self, all: bool) {
        let due = self.buffer.take_due(
            self.policy.max_rows,
            self.policy.max_bytes,
            self.policy.max_age,
            all,
        );
        let mut written = 0;
        for (key, partition) in due {
            match self.write(&key, &partition).await {
                Ok(()) => {
                    self.buffer.release(&partition);
                    written += 1;
                }
                Err(e) => {
                    error!(tenant = %key.tenant, signal = %key.signal, error = %e, "cannot write partition; will retry");
                    self.metrics
                        .write_errors
                        .get_or_create(&vec![("signal", key.signal.as_str().to_string())])
                        .inc();
                    self.buffer.restore(key, partition);
                }
            }
        }
        self.metrics
            .buffered_bytes
            .set(self.buffer.held_bytes() as i64);
        if written > 0 {
            self.store.truncate_wal().await;
        }
    }

    async fn write(&self, key: &PartitionKey, partition: &Partition) -> Result<(), String> {
        let signal = key.signal;
        let batches = partition.batches.clone();
        // The file names the WAL entries its rows came from, for recovery (`persisted`).
        let metadata = vec![KeyValue::new(
            crate::persisted::METADATA_KEY.to_string(),
            crate::persisted::encode(&partition.entries),
        )];
        let options = self.options;
        // Sorting and compression are CPU work: keep them off the async workers.
        let (bytes, rows) = tokio::task::spawn_blocking(move || {
            format::encode(signal, &batches, metadata, options).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let relative = layout::file_path(&key.tenant, signal, key.hour, &self.collector_id);
        let path = self.storage.path(&relative);
        let size = bytes.len();
        self.storage
            .store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| e.to_string())?;
        let labels = vec![("signal", signal.as_str().to_string())];
        self.metrics.files_written.get_or_create(&labels).inc();
        self.metrics
            .bytes_written
            .get_or_create(&labels)
            .inc_by(size as u64);
        self.metrics
            .rows_written
            .get_or_create(&labels)
            .inc_by(rows as u64);
        debug!(%path, rows, bytes = size, "wrote file");
        Ok(())
    }
}
