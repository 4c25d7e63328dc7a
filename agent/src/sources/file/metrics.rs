//! Metrics of the file sources, registered once per agent, labelled by source.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::Labels;

/// Families shared by every file source of an agent.
#[derive(Clone, Default)]
pub struct FileMetrics {
    records: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    acked_records: Family<Labels, Counter>,
    refused_records: Family<Labels, Counter>,
    issues: Family<Labels, Counter>,
    truncations: Family<Labels, Counter>,
    truncated_unread_bytes: Family<Labels, Counter>,
    truncated_recovered_bytes: Family<Labels, Counter>,
    released: Family<Labels, Counter>,
    skipped: Family<Labels, Counter>,
    open_files: Family<Labels, Gauge>,
    tracked_files: Family<Labels, Gauge>,
    backpressure: Family<Labels, Counter>,
    checkpoint_errors: Family<Labels, Counter>,
    lag_bytes: Family<Labels, Gauge>,
}

impl FileMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("strata_agent_file");
        r.register("records", "Records read from files", m.records.clone());
        r.register("bytes", "Bytes of lines read from files", m.bytes.clone());
        r.register(
            "acked_records",
            "Records read from files and acknowledged by a collector",
            m.acked_records.clone(),
        );
        r.register(
            "refused_records",
            "Records the agent refused as invalid (a bug if ever non-zero); their lines are skipped",
            m.refused_records.clone(),
        );
        r.register(
            "issues",
            "Lines repaired, by kind: long (cut at max_line_bytes), invalid_utf8, malformed \
             (not in the source's format, kept as plain), parse (message not parsed, kept whole)",
            m.issues.clone(),
        );
        r.register(
            "truncations",
            "Files found truncated or rewritten in place (copytruncate); reading starts over",
            m.truncations.clone(),
        );
        r.register(
            "truncated_unread_bytes",
            "Bytes a file was known to hold but had not been read when it was truncated: lost",
            m.truncated_unread_bytes.clone(),
        );
        r.register(
            "truncated_recovered_bytes",
            "Bytes of a truncated file not read yet, read from the copy copytruncate made",
            m.truncated_recovered_bytes.clone(),
        );
        r.register(
            "released",
            "Files let go after they were deleted or rotated away and read to their end",
            m.released.clone(),
        );
        r.register(
            "skipped",
            "Files matched but not read, by reason (compressed, unreadable)",
            m.skipped.clone(),
        );
        r.register("open_files", "Files held open", m.open_files.clone());
        r.register(
            "tracked_files",
            "Files being tailed",
            m.tracked_files.clone(),
        );
        r.register(
            "backpressure",
            "Times reading paused because the batches in flight reached their limit or the \
             agent was out of memory",
            m.backpressure.clone(),
        );
        r.register(
            "checkpoint_errors",
            "Checkpoints that could not be written or read",
            m.checkpoint_errors.clone(),
        );
        r.register(
            "lag_bytes",
            "Bytes in tailed files not read yet",
            m.lag_bytes.clone(),
        );
        m
    }

    /// The handles of one source.
    pub fn source(&self, name: &str) -> SourceMetrics {
        // One statement per handle: `get_or_create` returns a guard on its family, and two
        // guards of one family alive at once would deadlock.
        fn get<M: Clone + Default>(
            family: &Family<Labels, M>,
            name: &str,
            extra: Option<(&'static str, &str)>,
        ) -> M {
            let mut labels = vec![("source", name.to_string())];
            if let Some((k, v)) = extra {
                labels.push((k, v.to_string()));
            }
            // Edition 2024: the guard of a tail expression drops before the function returns.
            family.get_or_create(&labels).clone()
        }
        SourceMetrics {
            records: get(&self.records, name, None),
            bytes: get(&self.bytes, name, None),
            acked_records: get(&self.acked_records, name, None),
            refused_records: get(&self.refused_records, name, None),
            long_lines: get(&self.issues, name, Some(("kind", "long"))),
            invalid_utf8: get(&self.issues, name, Some(("kind", "invalid_utf8"))),
            malformed: get(&self.issues, name, Some(("kind", "malformed"))),
            parse_failed: get(&self.issues, name, Some(("kind", "parse"))),
            truncations: get(&self.truncations, name, None),
            truncated_unread_bytes: get(&self.truncated_unread_bytes, name, None),
            truncated_recovered_bytes: get(&self.truncated_recovered_bytes, name, None),
            released: get(&self.released, name, None),
            skipped_compressed: get(&self.skipped, name, Some(("reason", "compressed"))),
            skipped_unreadable: get(&self.skipped, name, Some(("reason", "unreadable"))),
            open_files: get(&self.open_files, name, None),
            tracked_files: get(&self.tracked_files, name, None),
            backpressure: get(&self.backpressure, name, None),
            checkpoint_errors: get(&self.checkpoint_errors, name, None),
            lag_bytes: get(&self.lag_bytes, name, None),
        }
    }
}

/// Metric handles of one file source.
#[derive(Clone)]
pub struct SourceMetrics {
    pub records: Counter,
    pub bytes: Counter,
    pub acked_records: Counter,
    pub refused_records: Counter,
    pub long_lines: Counter,
    pub invalid_utf8: Counter,
    pub malformed: Counter,
    pub parse_failed: Counter,
    pub truncations: Counter,
    pub truncated_unread_bytes: Counter,
    pub truncated_recovered_bytes: Counter,
    pub released: Counter,
    pub skipped_compressed: Counter,
    pub skipped_unreadable: Counter,
    pub open_files: Gauge,
    pub tracked_files: Gauge,
    pub backpressure: Counter,
    pub checkpoint_errors: Counter,
    pub lag_bytes: Gauge,
}
