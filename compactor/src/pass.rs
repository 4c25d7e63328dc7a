//! One full pass over a storage: compaction, retention and garbage collection, for every
//! tenant, signal and partition.
//!
//! Per partition (newest hours first), from one fresh resolution of its files and records:
//! 1. past the retention (its whole hour older than now minus the retention): a retention
//!    commit names every live file as an input, with no outputs — invisible at once;
//! 2. otherwise, once the hour closed `grace` ago and it holds two or more mergeable live
//!    files (any but outputs of half the target size or more): they are merged
//!    ([`crate::merge`]) into new outputs, then a compaction commit (create-only, numbered one
//!    past the last) switches readers from the inputs to the outputs. Inputs that do not fit
//!    the memory limit together are merged in rounds, one commit each, a round's small
//!    outputs being inputs of a later one. A conflict (another compactor committed that number
//!    first) deletes this pass's outputs and ends the partition's pass;
//! 3. garbage: inputs of commits at least `delete_delay` old are deleted; outputs that no
//!    commit names and that are older than `orphan_grace` are deleted; a record that is not
//!    its partition's newest and whose files are all gone is deleted.
//!
//! Crash safety: every step is a single put or delete, and each state in between is one the
//! next pass finishes or redoes: outputs without a commit are invisible (and collected),
//! a commit without its deletions is complete for readers, deletions are idempotent.
//! A file that cannot be read or is not a Strata file of the signal is skipped, counted and
//! reported; its partition is compacted without it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use serde::Serialize;
use strata_schema::Signal;
use strata_storage::Storage;
use strata_storage::commit::{self, Commit, CommitError, CommitKind};
use strata_storage::format::{ParquetOptions, wal_entries};
use strata_storage::layout::{self, HOUR_NANOS};
use strata_storage::live::{LiveFiles, Partition};
use tracing::{info, warn};

use crate::config::{CompactorConfig, RetentionConfig};
use crate::merge::{self, MergeError, Output};
use crate::metrics::CompactorMetrics;

/// What one pass did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Partitions compacted, and the merges that took (one commit each; a partition whose
    /// inputs exceed the memory limit takes several rounds).
    pub partitions: u64,
    pub merges: u64,
    /// The partitions' own files, bytes and rows merged (files written by this pass and
    /// merged again in a later round are not counted again).
    pub files_in: u64,
    pub bytes_in: u64,
    pub files_out: u64,
    pub bytes_out: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub duplicates: u64,
    /// Partitions made invisible by retention, and their files.
    pub retention_partitions: u64,
    pub retention_files: u64,
    /// Deleted: inputs of commits past `delete_delay`, outputs never committed, records.
    pub deleted_inputs: u64,
    pub deleted_orphans: u64,
    pub deleted_records: u64,
    /// Commits lost to another compactor.
    pub conflicts: u64,
    /// Files skipped as unreadable or foreign.
    pub skipped_files: u64,
    /// Closed partitions left with more than one live file (not compacted this pass).
    pub pending_partitions: u64,
    pub errors: Vec<String>,
}

/// The settings of one pass.
pub struct PassConfig {
    pub id: String,
    pub grace: Duration,
    pub delete_delay: Duration,
    pub orphan_grace: Duration,
    pub retention: RetentionConfig,
    pub target_file_bytes: u64,
    pub memory_limit_bytes: usize,
    pub options: ParquetOptions,
}

impl From<&CompactorConfig> for PassConfig {
    fn from(c: &CompactorConfig) -> Self {
        Self {
            id: c.id.clone(),
            grace: c.grace.0,
            delete_delay: c.delete_delay.0,
            orphan_grace: c.orphan_grace.0,
            retention: c.retention.clone(),
            target_file_bytes: c.target_file_bytes,
            memory_limit_bytes: c.memory_limit_bytes,
            options: ParquetOptions {
                row_group_rows: c.row_group_rows,
                zstd_level: c.zstd_level,
            },
        }
    }
}

/// Files found unusable, skipped by later passes of the same process.
#[derive(Default)]
pub struct Skipped(Mutex<HashSet<Path>>);

impl Skipped {
    fn contains(&self, p: &Path) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).contains(p)
    }
    fn insert(&self, p: Path) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(p);
    }
}

/// Runs one pass at `now_ms` (milliseconds since the epoch).
pub async fn run(
    storage: &Storage,
    config: &PassConfig,
    now_ms: i64,
    metrics: &CompactorMetrics,
    skipped: &Skipped,
) -> Report {
    let mut report = Report::default();
    let live = LiveFiles::new(storage.store.clone(), Duration::ZERO);
    let tenants = match tenants(storage).await {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(format!("listing tenants: {e}"));
            metrics.error("list");
            return report;
        }
    };
    let mut oldest_pending: Option<i64> = None;
    for tenant in tenants {
        for signal in Signal::ALL {
            let dir = storage.path(&layout::signal_dir(&tenant, signal));
            let snapshot = match live.resolve(&dir).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(%tenant, %signal, error = %e, "cannot resolve partitions");
                    report.errors.push(format!("{tenant}/{signal}: {e}"));
                    metrics.error("resolve");
                    continue;
                }
            };
            let ctx = Ctx {
                storage,
                config,
                now_ms,
                metrics,
                skipped,
                tenant: &tenant,
                signal,
            };
            let cutoff = config
                .retention
                .of(&tenant, signal)
                .map(|r| now_ms.saturating_sub(i64::try_from(r.as_millis()).unwrap_or(i64::MAX)));
            for (&hour, partition) in snapshot.partitions.iter().rev() {
                let mut partition = partition.clone();
                let end_ms = (hour + 1).saturating_mul(HOUR_NANOS / 1_000_000);
                let live_files = partition.live().count();
                metrics.observe_partition(signal, live_files);
                if cutoff.is_some_and(|c| end_ms <= c) {
                    if live_files > 0 {
                        ctx.expire(hour, &mut partition, &mut report).await;
                    }
                } else if end_ms.saturating_add(ms(config.grace)) <= now_ms
                    && needs_compaction(&partition, config.target_file_bytes)
                {
                    ctx.compact(hour, &mut partition, &mut report).await;
                    if needs_compaction(&partition, config.target_file_bytes) {
                        report.pending_partitions += 1;
                        oldest_pending = Some(oldest_pending.map_or(hour, |o| o.min(hour)));
                    }
                }
                ctx.collect(hour, &mut partition, &mut report).await;
            }
        }
    }
    metrics.finish_pass(&report, oldest_pending, now_ms);
    report
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether a live file is merged when its partition is compacted: unless it is an output
/// already of half the target size or more (a full output is final; rewriting it for each
/// late file would cost more than the file saves).
fn mergeable(m: &ObjectMeta, target_file_bytes: u64) -> bool {
    !layout::is_compacted(m.location.filename().unwrap_or_default())
        || m.size < target_file_bytes / 2
}

/// Two or more mergeable live files.
fn needs_compaction(p: &Partition, target_file_bytes: u64) -> bool {
    p.live()
        .filter(|m| mergeable(m, target_file_bytes))
        .nth(1)
        .is_some()
}

/// Decoded bytes per uncompressed byte in a partition, measured on its smallest file (one
/// more read of a small file); the default if that fails (the merge reports why).
async fn decoded_ratio(pool: &[merge::Opened]) -> f64 {
    match pool.iter().min_by_key(|o| o.meta.size) {
        Some(smallest) => merge::decoded_ratio(smallest)
            .await
            .unwrap_or(merge::DEFAULT_DECODED_RATIO),
        None => merge::DEFAULT_DECODED_RATIO,
    }
}

/// One partition's compaction so far.
#[derive(Default)]
struct Done {
    rounds: u64,
    /// Of the partition's own files (not those this pass wrote and merged again).
    files_in: u64,
    bytes_in: u64,
    rows_in: u64,
    duplicates: u64,
}

/// The tenants below the root (`tenant=<t>/` directories).
async fn tenants(storage: &Storage) -> Result<Vec<String>, object_store::Error> {
    let listed = storage
        .store
        .list_with_delimiter(Some(&storage.prefix))
        .await?;
    let mut out: Vec<String> = listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().and_then(layout::tenant_of).map(str::to_string))
        .filter(|t| strata_schema::envelope::validate_tenant(t).is_ok())
        .collect();
    out.sort();
    Ok(out)
}

struct Ctx<'a> {
    storage: &'a Storage,
    config: &'a PassConfig,
    now_ms: i64,
    metrics: &'a CompactorMetrics,
    skipped: &'a Skipped,
    tenant: &'a str,
    signal: Signal,
}

impl Ctx<'_> {
    fn partition_dir(&self, hour: i64) -> Path {
        self.storage
            .path(&layout::partition_dir(self.tenant, self.signal, hour))
    }

    /// Commits `commit` and adds it to `partition`; false if it did not commit.
    async fn commit(
        &self,
        hour: i64,
        partition: &mut Partition,
        commit: Commit,
        report: &mut Report,
    ) -> bool {
        match commit::write(self.storage, self.tenant, self.signal, hour, &commit).await {
            Ok(()) => {
                partition.commits.push(Arc::new(commit));
                true
            }
            Err(CommitError::Conflict { path }) => {
                info!(%path, "another compactor committed this partition first");
                report.conflicts += 1;
                self.metrics.conflicts.inc();
                let dir = self.partition_dir(hour);
                self.delete(commit.outputs.iter().map(|n| dir.clone().join(n.as_str())))
                    .await;
                false
            }
            Err(e) => {
                // The outcome is unknown: the outputs stay (a commit may name them); if it did
                // not land, they are orphans and collected after `orphan_grace`.
                report.errors.push(e.to_string());
                self.metrics.error("commit");
                false
            }
        }
    }

    async fn expire(&self, hour: i64, partition: &mut Partition, report: &mut Report) {
        let inputs: Vec<String> = partition
            .live()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect();
        let n = inputs.len() as u64;
        let commit = Commit {
            seq: partition.last_seq() + 1,
            kind: CommitKind::Retention,
            created_ms: self.now_ms,
            compactor: self.config.id.clone(),
            inputs,
            outputs: Vec::new(),
            rows_in: 0,
            rows_out: 0,
        };
        if self.commit(hour, partition, commit, report).await {
            info!(tenant = %self.tenant, signal = %self.signal, partition = %layout::hour_key(hour), files = n, "past retention");
            report.retention_partitions += 1;
            report.retention_files += n;
            self.metrics.retention_files.inc_by(n);
        }
    }

    /// Compacts the partition's mergeable files in rounds: each round merges the inputs that
    /// fit the memory limit ([`merge::take_group`]) and commits; outputs small enough to be
    /// merged again go back into the pool. Stops at the first round that does not commit.
    async fn compact(&self, hour: i64, partition: &mut Partition, report: &mut Report) {
        let store = self.storage.store.clone();
        let target = self.config.target_file_bytes;
        let candidates: Vec<ObjectMeta> = partition
            .live()
            .filter(|m| mergeable(m, target) && !self.skipped.contains(&m.location))
            .cloned()
            .collect();
        let mut pool = Vec::new();
        for meta in candidates {
            let path = meta.location.clone();
            match merge::open(store.clone(), meta, self.signal).await {
                Ok(o) => pool.push(o),
                Err(e) => self.skip(path, &e, report),
            }
        }
        let limits = merge::Limits {
            memory: self.config.memory_limit_bytes,
            decoded_ratio: decoded_ratio(&pool).await,
        };
        // Files this pass wrote: merged again, they are not the partition's input.
        let mut written: HashSet<String> = HashSet::new();
        let mut done = Done::default();
        let started = std::time::Instant::now();
        // Each round takes two inputs at least and gives back one at most: bounded.
        for _ in 0..pool.len() {
            let group = merge::take_group(&mut pool, limits);
            if group.len() < 2 {
                break;
            }
            for o in &group {
                let name = o.meta.location.filename().unwrap_or_default();
                if !written.contains(name) {
                    done.files_in += 1;
                    done.bytes_in += o.meta.size;
                    done.rows_in += o.rows();
                }
            }
            let Some(outputs) = self
                .merge_round(hour, partition, group, limits, &mut done, report)
                .await
            else {
                break;
            };
            for (meta, footer) in outputs {
                written.extend(meta.location.filename().map(str::to_string));
                if mergeable(&meta, target) {
                    let path = meta.location.clone();
                    match merge::open_written(store.clone(), meta, footer, self.signal) {
                        Ok(o) => pool.push(o),
                        Err(e) => self.skip(path, &e, report),
                    }
                }
            }
        }
        if done.rounds == 0 {
            return;
        }
        let (files_out, bytes_out) = partition
            .live()
            .filter(|m| written.contains(m.location.filename().unwrap_or_default()))
            .fold((0u64, 0u64), |(n, b), m| (n + 1, b + m.size));
        info!(
            tenant = %self.tenant, signal = %self.signal, partition = %layout::hour_key(hour),
            rounds = done.rounds, files_in = done.files_in, bytes_in = done.bytes_in,
            files_out, bytes_out, rows_in = done.rows_in, duplicates = done.duplicates,
            seconds = started.elapsed().as_secs_f64(), "compacted"
        );
        report.partitions += 1;
        report.merges += done.rounds;
        report.files_in += done.files_in;
        report.bytes_in += done.bytes_in;
        report.files_out += files_out;
        report.bytes_out += bytes_out;
        report.rows_in += done.rows_in;
        report.rows_out += done.rows_in.saturating_sub(done.duplicates);
        report.duplicates += done.duplicates;
    }

    /// Merges `group` and commits the switch to its outputs; the outputs with their footers,
    /// or `None` if nothing was committed.
    async fn merge_round(
        &self,
        hour: i64,
        partition: &mut Partition,
        group: Vec<merge::Opened>,
        limits: merge::Limits,
        done: &mut Done,
        report: &mut Report,
    ) -> Option<Vec<(ObjectMeta, Arc<ParquetMetaData>)>> {
        let names: Vec<String> = group
            .iter()
            .filter_map(|o| o.meta.location.filename().map(str::to_string))
            .collect();
        let entries: Vec<Vec<KeyValue>> = group.iter().map(merge::Opened::wal_entries).collect();
        let carried = wal_entries::carry(
            &names
                .iter()
                .zip(&entries)
                .map(|(n, e)| (n.as_str(), e.as_slice()))
                .collect::<Vec<_>>(),
        );
        let bytes_in: u64 = group.iter().map(|o| o.meta.size).sum();
        let dir = self.partition_dir(hour);
        let created = Arc::new(Mutex::new(Vec::<String>::new()));
        let output = Output {
            store: self.storage.store.clone(),
            dir: dir.clone(),
            signal: self.signal,
            options: self.config.options,
            target_file_bytes: self.config.target_file_bytes,
            metadata: carried,
            on_create: Box::new({
                let created = created.clone();
                move |name: &str| {
                    created
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(name.to_string())
                }
            }),
        };
        let merged = match merge::merge(group, limits, output).await {
            Ok(m) => m,
            Err(e) => {
                warn!(tenant = %self.tenant, signal = %self.signal, partition = %layout::hour_key(hour), error = %e, "merge failed");
                let created = created.lock().unwrap_or_else(|e| e.into_inner()).clone();
                self.delete(created.iter().map(|n| dir.clone().join(n.as_str())))
                    .await;
                if let MergeError::Input { path, .. } | MergeError::Unusable { path, .. } = &e {
                    self.skip(path.clone(), &e, report);
                } else {
                    report.errors.push(e.to_string());
                    self.metrics.error("merge");
                }
                return None;
            }
        };
        let commit = Commit {
            seq: partition.last_seq() + 1,
            kind: CommitKind::Compaction,
            created_ms: self.now_ms,
            compactor: self.config.id.clone(),
            inputs: names.clone(),
            outputs: merged.outputs.iter().map(|w| w.name.clone()).collect(),
            rows_in: merged.rows_in,
            rows_out: merged.rows_out,
        };
        if !self.commit(hour, partition, commit, report).await {
            return None;
        }
        let bytes_out: u64 = merged.outputs.iter().map(|w| w.size).sum();
        let outputs: Vec<(ObjectMeta, Arc<ParquetMetaData>)> = merged
            .outputs
            .iter()
            .map(|w| {
                let meta = ObjectMeta {
                    location: dir.clone().join(w.name.as_str()),
                    last_modified: chrono::Utc::now(),
                    size: w.size,
                    e_tag: None,
                    version: None,
                };
                (meta, w.footer.clone())
            })
            .collect();
        partition
            .files
            .extend(outputs.iter().map(|(meta, _)| meta.clone()));
        done.rounds += 1;
        done.duplicates += merged.duplicates;
        self.metrics.compacted(
            self.signal,
            names.len() as u64,
            bytes_in,
            &merged,
            bytes_out,
        );
        Some(outputs)
    }

    fn skip(&self, path: Path, e: &dyn std::fmt::Display, report: &mut Report) {
        warn!(file = %path, error = %e, "skipping a file the compactor cannot use");
        report.skipped_files += 1;
        report.errors.push(format!("skipped {path}: {e}"));
        self.metrics.skipped_files.inc();
        self.skipped.insert(path);
    }

    /// Deletes what is due in `partition`.
    async fn collect(&self, hour: i64, partition: &mut Partition, report: &mut Report) {
        let dir = self.partition_dir(hour);
        let present: HashSet<String> = partition
            .files
            .iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect();
        let mut due: Vec<String> = Vec::new();
        let mut named: HashSet<&str> = HashSet::new();
        for c in &partition.commits {
            named.extend(c.inputs.iter().chain(&c.outputs).map(String::as_str));
            if self.now_ms.saturating_sub(c.created_ms) >= ms(self.config.delete_delay) {
                due.extend(c.inputs.iter().filter(|n| present.contains(*n)).cloned());
            }
        }
        let orphans: Vec<String> = partition
            .files
            .iter()
            .filter(|m| {
                let name = m.location.filename().unwrap_or_default();
                layout::is_compacted(name)
                    && !named.contains(name)
                    && self
                        .now_ms
                        .saturating_sub(m.last_modified.timestamp_millis())
                        >= ms(self.config.orphan_grace)
            })
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect();
        let deleted_inputs = self
            .delete(due.iter().map(|n| dir.clone().join(n.as_str())))
            .await;
        let deleted_orphans = self
            .delete(orphans.iter().map(|n| dir.clone().join(n.as_str())))
            .await;
        report.deleted_inputs += deleted_inputs.len() as u64;
        report.deleted_orphans += deleted_orphans.len() as u64;
        self.metrics.deleted("input", deleted_inputs.len());
        self.metrics.deleted("orphan", deleted_orphans.len());
        let gone: HashSet<&str> = deleted_inputs
            .iter()
            .chain(&deleted_orphans)
            .map(String::as_str)
            .collect();
        let remaining: HashSet<&str> = present
            .iter()
            .map(String::as_str)
            .filter(|n| !gone.contains(n))
            .collect();
        let last = partition.last_seq();
        let obsolete: Vec<u64> = partition
            .commits
            .iter()
            .filter(|c| c.seq < last)
            .filter(|c| {
                !c.inputs
                    .iter()
                    .chain(&c.outputs)
                    .any(|n| remaining.contains(n.as_str()))
            })
            .map(|c| c.seq)
            .collect();
        let records =
            self.delete(obsolete.iter().map(|&seq| {
                commit::record_path(self.storage, self.tenant, self.signal, hour, seq)
            }))
            .await;
        report.deleted_records += records.len() as u64;
        self.metrics.deleted("record", records.len());
        partition
            .files
            .retain(|m| !gone.contains(m.location.filename().unwrap_or_default()));
        partition.commits.retain(|c| !obsolete.contains(&c.seq));
    }

    /// Deletes `paths`; returns the file names deleted (or already gone).
    async fn delete(&self, paths: impl Iterator<Item = Path>) -> Vec<String> {
        let paths: Vec<Path> = paths.collect();
        let results: Vec<(Path, Result<(), object_store::Error>)> = futures::stream::iter(paths)
            .map(|p| async move {
                let r = match self.storage.store.delete(&p).await {
                    Err(object_store::Error::NotFound { .. }) => Ok(()),
                    r => r,
                };
                (p, r)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut done = Vec::new();
        for (path, r) in results {
            match r {
                Ok(()) => done.extend(path.filename().map(str::to_string)),
                Err(e) => {
                    warn!(%path, error = %e, "cannot delete");
                    self.metrics.error("delete");
                }
            }
        }
        done
    }
}
