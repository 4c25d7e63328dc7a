//! The compactor's own metrics (`strata_compactor_*`), registered on the role's registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use strata_schema::Signal;
use strata_server::Labels;

use crate::merge::Merged;
use crate::pass::Report;

#[derive(Clone, Default)]
pub struct CompactorMetrics {
    pub passes: Counter,
    pub merges: Family<Labels, Counter>,
    pub files_in: Family<Labels, Counter>,
    pub bytes_in: Family<Labels, Counter>,
    pub files_out: Family<Labels, Counter>,
    pub bytes_out: Family<Labels, Counter>,
    pub rows_in: Family<Labels, Counter>,
    pub rows_out: Family<Labels, Counter>,
    pub duplicates: Family<Labels, Counter>,
    pub retention_files: Counter,
    pub deleted: Family<Labels, Counter>,
    pub conflicts: Counter,
    pub skipped_files: Counter,
    pub errors: Family<Labels, Counter>,
    /// Live files of the partition with the most, per signal, as of the last pass.
    pub max_files_per_partition: Family<Labels, Gauge>,
    /// Live files in all partitions, per signal, as of the last pass.
    pub live_files: Family<Labels, Gauge>,
    /// Start (seconds since the epoch) of the oldest closed hour still not compacted; 0 when none.
    pub oldest_pending_hour: Gauge,
    pub last_pass_timestamp: Gauge,
    /// Per-pass accumulation of the two file gauges before they are published.
    pending: std::sync::Arc<std::sync::Mutex<[(i64, i64); 3]>>,
}

/// Stages an error is counted under.
const STAGES: [&str; 5] = ["list", "resolve", "merge", "commit", "delete"];

fn sig(signal: Signal) -> Labels {
    vec![("signal", signal.as_str().to_string())]
}

impl CompactorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("strata_compactor");
        r.register("passes", "Passes run", m.passes.clone());
        r.register(
            "merges",
            "Merges committed (a partition whose files exceed the memory limit takes several)",
            m.merges.clone(),
        );
        r.register("input_files", "Files read by merges", m.files_in.clone());
        r.register(
            "input_bytes",
            "Bytes of files read by merges",
            m.bytes_in.clone(),
        );
        r.register(
            "output_files",
            "Files written by compaction",
            m.files_out.clone(),
        );
        r.register(
            "output_bytes",
            "Bytes written by compaction",
            m.bytes_out.clone(),
        );
        r.register("input_rows", "Rows read by compaction", m.rows_in.clone());
        r.register(
            "output_rows",
            "Rows written by compaction",
            m.rows_out.clone(),
        );
        r.register(
            "duplicates",
            "Duplicate spans and metric points dropped",
            m.duplicates.clone(),
        );
        r.register(
            "retention_files",
            "Files made invisible by retention",
            m.retention_files.clone(),
        );
        r.register(
            "deleted",
            "Objects deleted, by reason (input, orphan, record)",
            m.deleted.clone(),
        );
        r.register(
            "conflicts",
            "Commits lost to another compactor",
            m.conflicts.clone(),
        );
        r.register(
            "skipped_files",
            "Files skipped as unreadable or foreign",
            m.skipped_files.clone(),
        );
        r.register("errors", "Errors, by stage", m.errors.clone());
        r.register(
            "max_files_per_partition",
            "Live files in the fullest partition",
            m.max_files_per_partition.clone(),
        );
        r.register(
            "live_files",
            "Live files in all partitions",
            m.live_files.clone(),
        );
        r.register(
            "oldest_pending_hour_seconds",
            "Start of the oldest closed hour not yet compacted (0: none)",
            m.oldest_pending_hour.clone(),
        );
        r.register(
            "last_pass_timestamp_seconds",
            "When the last pass ended",
            m.last_pass_timestamp.clone(),
        );
        // Every series exists from the start, at 0, so dashboards and alerts see them.
        for signal in Signal::ALL {
            let l = sig(signal);
            for f in [
                &m.merges,
                &m.files_in,
                &m.bytes_in,
                &m.files_out,
                &m.bytes_out,
                &m.rows_in,
                &m.rows_out,
                &m.duplicates,
            ] {
                f.get_or_create(&l).inc_by(0);
            }
            m.live_files.get_or_create(&l).set(0);
            m.max_files_per_partition.get_or_create(&l).set(0);
        }
        for reason in ["input", "orphan", "record"] {
            m.deleted
                .get_or_create(&vec![("reason", reason.to_string())])
                .inc_by(0);
        }
        for stage in STAGES {
            m.errors
                .get_or_create(&vec![("stage", stage.to_string())])
                .inc_by(0);
        }
        m
    }

    pub fn error(&self, stage: &'static str) {
        self.errors
            .get_or_create(&vec![("stage", stage.to_string())])
            .inc();
    }

    pub fn deleted(&self, reason: &'static str, n: usize) {
        self.deleted
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc_by(n as u64);
    }

    pub fn compacted(
        &self,
        signal: Signal,
        files_in: u64,
        bytes_in: u64,
        m: &Merged,
        bytes_out: u64,
    ) {
        let l = sig(signal);
        self.merges.get_or_create(&l).inc();
        self.files_in.get_or_create(&l).inc_by(files_in);
        self.bytes_in.get_or_create(&l).inc_by(bytes_in);
        self.files_out
            .get_or_create(&l)
            .inc_by(m.outputs.len() as u64);
        self.bytes_out.get_or_create(&l).inc_by(bytes_out);
        self.rows_in.get_or_create(&l).inc_by(m.rows_in);
        self.rows_out.get_or_create(&l).inc_by(m.rows_out);
        self.duplicates.get_or_create(&l).inc_by(m.duplicates);
    }

    /// Counts one partition's live files (before the pass changed it).
    pub fn observe_partition(&self, signal: Signal, live: usize) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut p[signal as usize];
        slot.0 = slot.0.max(live as i64);
        slot.1 += live as i64;
    }

    pub fn finish_pass(&self, _report: &Report, oldest_pending: Option<i64>, now_ms: i64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for signal in Signal::ALL {
            let (max, total) = std::mem::take(&mut p[signal as usize]);
            self.max_files_per_partition
                .get_or_create(&sig(signal))
                .set(max);
            self.live_files.get_or_create(&sig(signal)).set(total);
        }
        self.oldest_pending_hour
            .set(oldest_pending.map_or(0, |h| h.saturating_mul(3600)));
        self.last_pass_timestamp.set(now_ms / 1000);
        self.passes.inc();
    }
}
