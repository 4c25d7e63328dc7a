//! Trace summaries: a trace's true root, start and duration, its spans (few columns each)
//! and which spansets each span matched, assembled from all of the trace's rows.
//!
//! Invariants: a span id seen twice (a batch stored twice after a lost acknowledgement) counts
//! once; the root is the earliest span without a parent, and a trace whose root has not
//! arrived says so in Tempo's words; the duration runs from the earliest start to the latest
//! end of any span, whichever file or collector holds it.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow::array::{Array, RecordBatch};
use strata_schema::columns;

use super::{bools, ints, strings, text};
use crate::error::QueryError;

/// What Tempo reports as root service and name while the root span has not arrived.
pub const NO_ROOT: &str = "<root span not yet received>";

/// The summary columns the search reads, in SQL.
pub const SUMMARY_COLUMNS: &str = "trace_id, span_id, parent_span_id, service_name, name, \
     start_time, duration_nanos, coalesce(status_code, 0) AS status, kind";

#[derive(Debug, Clone, PartialEq)]
pub struct SpanSummary {
    pub span_id: String,
    pub parent_span_id: String,
    pub service: String,
    pub name: String,
    pub start_ns: i64,
    pub duration_nanos: i64,
    pub status: i32,
    pub kind: i32,
    /// Whether the span matched each spanset of the query.
    pub matched: Vec<bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceStats {
    pub span_count: u32,
    pub error_count: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_service: String,
    pub root_name: String,
    pub start_ns: i64,
    pub duration_nanos: i64,
    /// Spans by start time.
    pub spans: Vec<SpanSummary>,
    pub services: BTreeMap<String, ServiceStats>,
}

impl TraceSummary {
    /// Whether spanset `i` matched any span of the trace.
    pub fn spanset_matched(&self, i: usize) -> bool {
        self.spans
            .iter()
            .any(|s| s.matched.get(i).copied().unwrap_or(false))
    }

    pub fn error_count(&self) -> u32 {
        self.services.values().map(|s| s.error_count).sum()
    }
}

/// Groups summary rows (columns [`SUMMARY_COLUMNS`] plus boolean `m0..m{spansets}`) by trace.
pub fn assemble(
    batches: &[RecordBatch],
    spansets: usize,
) -> Result<HashMap<String, TraceSummary>, QueryError> {
    let mut by_trace: HashMap<String, Vec<SpanSummary>> = HashMap::new();
    let mut seen = HashSet::new();
    for batch in batches {
        let trace_id = strings(batch, columns::TRACE_ID)?;
        let span_id = strings(batch, columns::SPAN_ID)?;
        let parent = strings(batch, columns::PARENT_SPAN_ID)?;
        let service = strings(batch, columns::SERVICE_NAME)?;
        let name = strings(batch, columns::NAME)?;
        let start = ints(batch, columns::START_TIME)?;
        let duration = ints(batch, columns::DURATION_NANOS)?;
        let status = ints(batch, "status")?;
        let kind = ints(batch, columns::KIND)?;
        let flags = (0..spansets)
            .map(|i| bools(batch, &format!("m{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let t = text(&trace_id, row);
            if !seen.insert((t.to_string(), text(&span_id, row).to_string())) {
                continue;
            }
            by_trace
                .entry(t.to_string())
                .or_default()
                .push(SpanSummary {
                    span_id: text(&span_id, row).to_string(),
                    parent_span_id: text(&parent, row).to_string(),
                    service: text(&service, row).to_string(),
                    name: text(&name, row).to_string(),
                    start_ns: start.value(row),
                    duration_nanos: duration.value(row),
                    status: status.value(row) as i32,
                    kind: kind.value(row) as i32,
                    matched: flags
                        .iter()
                        .map(|f| f.is_valid(row) && f.value(row))
                        .collect(),
                });
        }
    }
    Ok(by_trace
        .into_iter()
        .map(|(id, spans)| (id.clone(), summarize(id, spans)))
        .collect())
}

/// The summary of one trace's spans.
pub fn summarize(trace_id: String, mut spans: Vec<SpanSummary>) -> TraceSummary {
    spans.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then(a.span_id.cmp(&b.span_id)));
    let start_ns = spans.iter().map(|s| s.start_ns).min().unwrap_or_default();
    let end_ns = spans
        .iter()
        .map(|s| s.start_ns.saturating_add(s.duration_nanos))
        .max()
        .unwrap_or_default();
    let root = spans.iter().find(|s| s.parent_span_id.is_empty());
    let (root_service, root_name) = match root {
        Some(r) => (r.service.clone(), r.name.clone()),
        None => (NO_ROOT.to_string(), NO_ROOT.to_string()),
    };
    let mut services: BTreeMap<String, ServiceStats> = BTreeMap::new();
    for s in &spans {
        let stats = services.entry(s.service.clone()).or_default();
        stats.span_count += 1;
        stats.error_count += u32::from(s.status == 2);
    }
    TraceSummary {
        trace_id,
        root_service,
        root_name,
        start_ns,
        duration_nanos: end_ns.saturating_sub(start_ns),
        spans,
        services,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, service: &str, start: i64, dur: i64) -> SpanSummary {
        SpanSummary {
            span_id: id.into(),
            parent_span_id: parent.into(),
            service: service.into(),
            name: format!("op-{id}"),
            start_ns: start,
            duration_nanos: dur,
            status: if service == "db" { 2 } else { 0 },
            kind: 2,
            matched: vec![],
        }
    }

    #[test]
    fn root_and_duration_cover_every_span() {
        let t = summarize(
            "t".into(),
            vec![
                span("b", "a", "api", 20, 500),
                span("c", "b", "db", 30, 10),
                span("a", "", "web", 10, 100),
            ],
        );
        assert_eq!(
            (t.root_service.as_str(), t.root_name.as_str()),
            ("web", "op-a")
        );
        assert_eq!((t.start_ns, t.duration_nanos), (10, 510));
        assert_eq!(t.spans[0].span_id, "a");
        assert_eq!(t.services["db"].error_count, 1);
        assert_eq!(t.error_count(), 1);
        let orphan = summarize("t".into(), vec![span("c", "b", "db", 30, 10)]);
        assert_eq!(orphan.root_service, NO_ROOT);
    }
}
