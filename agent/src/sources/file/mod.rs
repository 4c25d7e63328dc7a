//! The file source: tails log files on a node (plain, JSON, logfmt or regex-parsed lines, CRI
//! and Docker container logs, multiline records) and ships them as log records, resuming
//! exactly where it stopped after a restart.
//!
//! Three parts per source, joined by bounded queues:
//! 1. the [`tailer`] thread finds and reads files and cuts batches, each with the checkpoint
//!    changes it makes good ([`checkpoint`]);
//! 2. the sender task hands each batch to the shipper as a *volatile* batch (not copied into
//!    the disk buffer: the file itself is the buffer), retrying while the agent is overloaded;
//! 3. the committer task waits for each batch's acknowledgement by its collector, in order,
//!    then applies and persists the checkpoint changes.
//!
//! Invariants:
//! - A checkpoint never passes a line whose batch a collector has not acknowledged; so after
//!   a crash every line is read again unless it was acknowledged, and a line is shipped twice
//!   only if its batch was acknowledged but the checkpoint not yet written (at most the
//!   batches in flight at the crash).
//! - Memory is bounded: at most `max_inflight_batches` batches are unacknowledged; past it the
//!   tailer stops reading.
//! - A batch that is dropped unshipped (shutdown) stops the committer: nothing read after it
//!   is checkpointed either.

pub mod checkpoint;
pub mod config;
pub mod framing;
pub mod identity;
pub mod k8s;
pub mod lines;
pub mod metrics;
pub mod multiline;
pub mod parse;
mod tailer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_schema::Signal;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

pub use config::FileSourceConfig;

use crate::shipper::Shipper;
use checkpoint::{Checkpoints, Loaded};
use metrics::{FileMetrics, SourceMetrics};
use strata_ingest::IngestError;
use tailer::{Outgoing, Tailer, Update};

/// A shipped batch whose checkpoint changes wait for its acknowledgement.
struct Pending {
    done: Option<oneshot::Receiver<()>>,
    updates: Vec<Update>,
    records: u64,
    _permit: OwnedSemaphorePermit,
}

/// Starts one file source. Reading stops at `shutdown`; acknowledgements are still applied
/// to the checkpoints until `drained` (cancel it once the shipper drained), then the
/// checkpoints are written a last time. Its tasks run on `tracker`.
pub fn spawn(
    config: FileSourceConfig,
    data_dir: &Path,
    shipper: Shipper,
    metrics: &FileMetrics,
    shutdown: CancellationToken,
    drained: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), String> {
    config.validate()?;
    let name = config.resolved_name();
    let metrics = metrics.source(&name);
    let path = Checkpoints::path_for(data_dir, &name);
    let (restored, first_start) = match Checkpoints::load(&path) {
        Loaded::First => (Vec::new(), true),
        Loaded::Found(files) => (files, false),
        Loaded::Unreadable(e) => {
            warn!(source = %name, error = %e, "checkpoint unreadable; reading files from their start");
            metrics.checkpoint_errors.inc();
            (Vec::new(), false)
        }
    };
    let checkpoints = Checkpoints::new(path, restored.clone());
    let config = Arc::new(config);
    let (tx, rx) = mpsc::channel(1);
    let (commit_tx, commit_rx) = mpsc::unbounded_channel();
    let tailer = Tailer::new(
        config.clone(),
        metrics.clone(),
        restored,
        first_start,
        tx,
        shutdown.clone(),
    );
    std::thread::Builder::new()
        .name(format!("tail-{name}"))
        .spawn(move || tailer.run())
        .map_err(|e| format!("file source {name}: cannot start its thread: {e}"))?;
    let inflight = Arc::new(Semaphore::new(config.max_inflight_batches));
    tracker.spawn(send(
        rx,
        shipper,
        config.tenant.clone(),
        inflight,
        commit_tx,
        metrics.clone(),
        shutdown,
    ));
    tracker.spawn(commit(commit_rx, checkpoints, metrics, drained));
    Ok(())
}

/// Hands batches to the shipper in order; waits (never drops) while the agent is overloaded.
async fn send(
    mut rx: mpsc::Receiver<Outgoing>,
    shipper: Shipper,
    tenant: String,
    inflight: Arc<Semaphore>,
    commit_tx: mpsc::UnboundedSender<Pending>,
    metrics: SourceMetrics,
    shutdown: CancellationToken,
) {
    while let Some(out) = rx.recv().await {
        if inflight.available_permits() == 0 {
            metrics.backpressure.inc();
        }
        let permit = tokio::select! {
            p = inflight.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.cancelled() => return,
        };
        let done = match out.batch {
            None => None,
            Some(batch) => {
                let mut backoff = Duration::from_millis(10);
                loop {
                    match shipper
                        .ingest_volatile(&tenant, Signal::Logs, batch.clone())
                        .await
                    {
                        Ok(done) => break Some(done),
                        Err(IngestError::Overloaded(_) | IngestError::Unavailable(_)) => {
                            metrics.backpressure.inc();
                            tokio::select! {
                                _ = tokio::time::sleep(backoff) => {}
                                _ = shutdown.cancelled() => return,
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                        }
                        Err(e) => {
                            // Not a condition a retry can change; holding the checkpoint
                            // back would stall the source for good.
                            error!(error = %e, records = out.records, "log records refused; skipping them");
                            metrics.refused_records.inc_by(out.records);
                            break None;
                        }
                    }
                }
            }
        };
        let pending = Pending {
            records: if done.is_some() { out.records } else { 0 },
            done,
            updates: out.updates,
            _permit: permit,
        };
        if commit_tx.send(pending).is_err() {
            return;
        }
    }
}

/// Applies checkpoint changes once their batch is acknowledged, in order, and persists them.
async fn commit(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    mut checkpoints: Checkpoints,
    metrics: SourceMetrics,
    drained: CancellationToken,
) {
    let mut dirty = false;
    let mut next: Option<Pending> = None;
    'outer: loop {
        let mut p = match next.take() {
            Some(p) => p,
            None => tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => p,
                    None => break,
                },
                _ = drained.cancelled() => break,
            },
        };
        if let Some(done) = p.done.take() {
            let acked = tokio::select! {
                r = done => r.is_ok(),
                _ = drained.cancelled() => false,
            };
            if !acked {
                break;
            }
        }
        apply(&mut checkpoints, p, &metrics);
        dirty = true;
        // Everything already acknowledged goes into the same write.
        while let Ok(mut p) = rx.try_recv() {
            let ready = match p.done.as_mut().map(|d| d.try_recv()) {
                None | Some(Ok(())) => true,
                Some(Err(oneshot::error::TryRecvError::Empty)) => false,
                Some(Err(oneshot::error::TryRecvError::Closed)) => {
                    persist(&checkpoints, &metrics).await;
                    break 'outer;
                }
            };
            if ready {
                p.done = None;
                apply(&mut checkpoints, p, &metrics);
            } else {
                next = Some(p);
                break;
            }
        }
        persist(&checkpoints, &metrics).await;
        dirty = false;
    }
    if dirty {
        persist(&checkpoints, &metrics).await;
    }
}

fn apply(checkpoints: &mut Checkpoints, p: Pending, metrics: &SourceMetrics) {
    metrics.acked_records.inc_by(p.records);
    for u in p.updates {
        match u {
            Update::Set(c) => checkpoints.set(c),
            Update::Forget(k) => checkpoints.forget(&k),
        }
    }
}

async fn persist(checkpoints: &Checkpoints, metrics: &SourceMetrics) {
    let path = checkpoints.path().to_path_buf();
    let written = match checkpoints.encode() {
        Ok(bytes) => tokio::task::spawn_blocking(move || checkpoint::write(&path, &bytes))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e))),
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        warn!(path = %checkpoints.path().display(), error = %e, "cannot write file checkpoints");
        metrics.checkpoint_errors.inc();
    }
}
