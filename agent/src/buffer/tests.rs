//! The buffer keeps a batch as the Arrow IPC stream it ships: what is loaded, from memory or
//! from disk after a restart, reads back as the accepted batch, and a kept copy holds only the
//! memory of its compressed bytes.

use std::sync::Arc;

use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prometheus_client::registry::Registry;
use strata_schema::Signal;

use super::*;

fn batch(n: usize) -> RecordBatch {
    let records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: i as u64,
            severity_text: "INFO".into(),
            ..Default::default()
        })
        .collect();
    strata_schema::logs::to_batch(&[ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }])
    .expect("batch")
}

fn config(dir: &std::path::Path, mode: BufferMode, memory_limit_bytes: usize) -> BufferConfig {
    BufferConfig {
        mode,
        dir: dir.join("buffer"),
        max_bytes: 1 << 30,
        segment_bytes: 1 << 20,
        key_share: 1.0,
        memory_limit_bytes,
        compression: Some(CompressionType::ZSTD),
    }
}

fn open(config: BufferConfig) -> (Arc<Buffer>, Vec<Bound>) {
    let metrics = Arc::new(AgentMetrics::register(&mut Registry::default()));
    Buffer::open(config, metrics).expect("open")
}

fn part(batch: RecordBatch) -> NewPart {
    NewPart {
        target: "127.0.0.1:4320".into(),
        key_hash: 1,
        signal: Signal::Logs,
        tenant: "acme".into(),
        batch,
    }
}

async fn loaded(buffer: &Buffer, id: u64) -> RecordBatch {
    let loaded = buffer.load(id, true).await.expect("live").expect("loaded");
    let reader = StreamReader::try_new(std::io::Cursor::new(&loaded.stream[..]), None)
        .expect("an IPC stream");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    assert_eq!(batches.len(), 1);
    batches.into_iter().next().expect("one batch")
}

#[tokio::test]
async fn batches_load_as_their_stream_from_memory_and_from_disk_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (batch(3), batch(500));
    {
        // Room for copies in memory: loads come from them.
        let (buffer, waiting) = open(config(dir.path(), BufferMode::Disk, 64 << 20));
        assert!(waiting.is_empty());
        let permit = buffer.reserve(1 << 20).expect("memory");
        let bound = buffer
            .append(vec![part(a.clone()), part(b.clone())], permit, None)
            .await
            .expect("appended");
        assert_eq!(bound.len(), 2);
        assert_eq!(bound[1].0.rows, 500);
        assert_eq!(loaded(&buffer, bound[0].0.id).await, a);
        assert_eq!(loaded(&buffer, bound[1].0.id).await, b);
        buffer.ack(&[bound[0].0.id]);
        assert!(buffer.load(bound[0].0.id, true).await.is_none());
    }
    // After a restart only the disk has them. (An ack record rides a later group commit, so
    // the acknowledged batch may come back too: it is shipped again and the collector knows
    // its sequence.)
    let (buffer, waiting) = open(config(dir.path(), BufferMode::Disk, 64 << 20));
    let unacked = waiting
        .iter()
        .find(|(e, _)| e.rows == 500)
        .expect("the unacknowledged batch is replayed");
    assert!(waiting.len() <= 2);
    assert_eq!(loaded(&buffer, unacked.0.id).await, b);
    for (e, _) in &waiting {
        assert_eq!(loaded(&buffer, e.id).await.num_rows(), e.rows);
    }
}

#[tokio::test]
async fn a_kept_copy_holds_the_memory_of_its_compressed_stream_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (buffer, _) = open(config(dir.path(), BufferMode::Memory, 64 << 20));
    let total = buffer.memory.available_permits();
    // A request reserves for its decoded size; the copy kept is a few KiB of zstd.
    let permit = buffer.reserve(8 << 20).expect("memory");
    let bound = buffer
        .append(vec![part(batch(2000))], permit, None)
        .await
        .expect("appended");
    let held_kib = total - buffer.memory.available_permits();
    let stream_kib = buffer
        .load(bound[0].0.id, true)
        .await
        .expect("live")
        .expect("loaded")
        .stream
        .len()
        / 1024
        + 1;
    assert_eq!(held_kib, stream_kib, "held {held_kib} KiB");
    assert!(held_kib < 1024, "the 8 MiB reservation went back");
    assert_eq!(loaded(&buffer, bound[0].0.id).await, batch(2000));
    buffer.ack(&[bound[0].0.id]);
    assert_eq!(buffer.memory.available_permits(), total);
}
