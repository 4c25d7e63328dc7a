//! From the lines of a file to log records and batches: framing, multiline joining and message
//! parsing of what was read, the record's attributes and resource, and the Arrow batch a
//! flush sends.
//!
//! Invariants:
//! - Every record of a file carries the same resource (service, host, pod), built once per
//!   file ([`file_meta`]); a record's time is the parsed one, else the framing's, else now.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::path::Path;
use tracing::warn;

use super::super::config::FileSourceConfig;
use super::super::framing::{FrameIssues, Framed};
use super::super::identity::FileKey;
use super::super::k8s;
use super::super::lines::{Line, LineSplitter};
use super::super::metrics::SourceMetrics;
use super::super::parse::MessageParser;
use super::{Batch, FileMeta, Tracked};

/// Where the records of one file go while it is read.
pub(super) struct Out<'a> {
    pub(super) batch: &'a mut Batch,
    pub(super) metrics: &'a SourceMetrics,
    pub(super) parser: &'a MessageParser,
    pub(super) key: FileKey,
}

impl Out<'_> {
    pub(super) fn count(&self, issues: &FrameIssues) {
        if issues.invalid_utf8 > 0 {
            self.metrics.invalid_utf8.inc_by(issues.invalid_utf8);
        }
        if issues.malformed > 0 {
            self.metrics.malformed.inc_by(issues.malformed);
        }
        if issues.cut > 0 {
            self.metrics.long_lines.inc_by(issues.cut);
        }
    }

    pub(super) fn record(&mut self, meta: &Arc<FileMeta>, framed: Framed) {
        let observed = now_ns();
        let bytes = framed.text.len();
        let parsed = self.parser.parse(framed.text);
        if parsed.failed {
            self.metrics.parse_failed.inc();
        }
        let mut attributes = Vec::with_capacity(2 + parsed.attributes.len());
        attributes.push(string_kv("log.file.path", meta.path.clone()));
        if let Some(s) = framed.stream {
            attributes.push(string_kv("log.iostream", s.as_str().to_string()));
        }
        attributes.extend(parsed.attributes);
        let (severity_number, severity_text) = parsed.severity.unwrap_or_default();
        let time = parsed.time_ns.or(framed.time_ns).unwrap_or(observed);
        let record = LogRecord {
            // A time before 1970 (a parsed epoch gone wrong) is not a date far in the future.
            time_unix_nano: time.max(0) as u64,
            observed_time_unix_nano: observed as u64,
            severity_number,
            severity_text,
            body: Some(AnyValue {
                value: Some(Value::StringValue(parsed.body)),
            }),
            attributes,
            trace_id: parsed.trace_id,
            span_id: parsed.span_id,
            ..Default::default()
        };
        let b = &mut *self.batch;
        let i = *b.index.entry(self.key).or_insert_with(|| {
            b.groups.push((meta.clone(), Vec::new()));
            b.groups.len() - 1
        });
        b.groups[i].1.push(record);
        b.records += 1;
        b.bytes += bytes;
        b.since.get_or_insert_with(Instant::now);
        self.metrics.records.inc();
        self.metrics.bytes.inc_by(bytes as u64);
    }
}

/// Splits, frames, joins and parses the bytes read from a file.
pub(super) fn feed(t: &mut Tracked, bytes: &[u8], now: Instant, out: &mut Out<'_>) {
    split_and_emit(t, now, out, |lines, emit| {
        lines.feed(bytes, &mut |l| emit(l))
    });
}

/// Emits the file's incomplete last line as a line.
pub(super) fn finish_line(t: &mut Tracked, now: Instant, out: &mut Out<'_>) {
    split_and_emit(t, now, out, |lines, emit| lines.finish(&mut |l| emit(l)));
}

/// Frames, joins and parses the lines `split` yields from the file's line splitter.
fn split_and_emit(
    t: &mut Tracked,
    now: Instant,
    out: &mut Out<'_>,
    split: impl FnOnce(&mut LineSplitter, &mut dyn FnMut(Line<'_>)),
) {
    let mut issues = FrameIssues::default();
    let meta = t.meta.clone();
    let Tracked {
        lines,
        framer,
        multiline,
        ..
    } = t;
    split(lines, &mut |line| {
        framer.push(&line, &mut issues, &mut |f| match multiline {
            Some(m) => m.push(f, now, &mut |r| out.record(&meta, r)),
            None => out.record(&meta, f),
        });
    });
    out.count(&issues);
}

/// Emits what framing and multiline aggregation hold for a file.
pub(super) fn finish_pending(t: &mut Tracked, out: &mut Out<'_>) {
    let meta = t.meta.clone();
    let now = Instant::now();
    if let Some(f) = t.framer.flush() {
        match &mut t.multiline {
            Some(m) => m.push(f, now, &mut |r| out.record(&meta, r)),
            None => out.record(&meta, f),
        }
    }
    if let Some(r) = t.multiline.as_mut().and_then(|m| m.flush()) {
        out.record(&meta, r);
    }
}

pub(super) fn to_batch(groups: Vec<(Arc<FileMeta>, Vec<LogRecord>)>) -> Option<RecordBatch> {
    let resource_logs: Vec<ResourceLogs> = groups
        .into_iter()
        .map(|(meta, log_records)| ResourceLogs {
            resource: Some(meta.resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "strata.file".into(),
                    ..Default::default()
                }),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    match strata_schema::logs::to_batch(&resource_logs) {
        Ok(b) => Some(b),
        Err(e) => {
            // Only a bug can get here: every record is built above from valid parts.
            warn!(error = %e, "cannot build a batch of log records");
            None
        }
    }
}

pub(super) fn file_meta(config: &FileSourceConfig, host: &str, path: &Path) -> Arc<FileMeta> {
    let pod = k8s::pod_log(path);
    let service = match (&pod, config.service.as_str()) {
        (_, s) if !s.is_empty() => s.to_string(),
        (Some(p), _) => p.container.clone(),
        (None, _) => "unknown_service".to_string(),
    };
    let mut attributes = vec![
        string_kv("service.name", service),
        string_kv("host.name", host.to_string()),
    ];
    if let Ok(node) = std::env::var("K8S_NODE_NAME")
        && !node.is_empty()
    {
        attributes.push(string_kv("k8s.node.name", node));
    }
    if let Some(p) = &pod {
        attributes.extend(p.attributes().into_iter().map(|(k, v)| string_kv(k, v)));
    }
    for (k, v) in &config.resource {
        attributes.retain(|kv| &kv.key != k);
        attributes.push(string_kv(k, v.clone()));
    }
    Arc::new(FileMeta {
        path: path.display().to_string(),
        resource: Resource {
            attributes,
            ..Default::default()
        },
    })
}

fn string_kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The node's host name (`host.name` on every record): `K8S_NODE_NAME` when set (in a pod the
/// kernel's host name is the pod's), else the kernel's.
pub(super) fn host_name() -> String {
    if let Ok(node) = std::env::var("K8S_NODE_NAME")
        && !node.is_empty()
    {
        return node;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
