//! Writes a storage the way a collector at the default flush (one file per partition every
//! 10 s) would have written it over several hours: many small, sorted span, log and metric
//! files, encoded exactly as the collector encodes a flush. With `--one-file-per-partition`
//! it also writes the same rows as one file per partition, the baseline a compaction is
//! measured against. Prints one JSON object: files, rows and a sample of trace ids.

use anyhow::Context;
use clap::Parser;
use object_store::{ObjectStoreExt, PutPayload};
use strata_bench::{logs, metrics, traces};
use strata_schema::Signal;
use strata_storage::format::{ParquetOptions, encode};
use strata_storage::{S3Options, Storage, layout};

#[derive(Debug, Parser)]
struct Args {
    /// Storage to write (a directory).
    #[arg(long)]
    storage: String,
    /// Also write every partition as one file into this storage.
    #[arg(long)]
    one_file_per_partition: Option<String>,
    /// Hours of data, ending two hours before now.
    #[arg(long, default_value_t = 6)]
    hours: u64,
    /// Span files per hour (360 = one every 10 s).
    #[arg(long, default_value_t = 360)]
    files_per_hour: u64,
    /// Trace export requests (about 100 spans each) per span file.
    #[arg(long, default_value_t = 4)]
    trace_requests_per_file: u64,
    /// Metric series; each file holds one point of every series.
    #[arg(long, default_value_t = 2000)]
    series: u64,
    /// Log records per log file.
    #[arg(long, default_value_t = 500)]
    records_per_file: usize,
    /// Trace ids to print, for lookups.
    #[arg(long, default_value_t = 200)]
    sample_ids: usize,
}

const OPTIONS: ParquetOptions = ParquetOptions {
    row_group_rows: 128 * 1024,
    zstd_level: 3,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let small = Storage::open(&args.storage, &S3Options::default())?;
    let one = match &args.one_file_per_partition {
        Some(s) => Some(Storage::open(s, &S3Options::default())?),
        None => None,
    };
    let now_hour = strata_bench::rng::now_nanos() as i64 / layout::HOUR_NANOS;
    let first_hour = now_hour - 2 - args.hours as i64;
    let trace_shape = traces::TraceShape::default();
    let log_shape = logs::LogShape {
        seed: 3,
        records_per_request: args.records_per_file,
        lines: Vec::new(),
    };
    let (mut spans, mut samples, mut records, mut files) = (0u64, 0u64, 0u64, 0u64);
    let mut ids: Vec<String> = Vec::new();
    let step_nanos = layout::HOUR_NANOS / args.files_per_hour as i64;
    for h in 0..args.hours as i64 {
        let hour = first_hour + h;
        let mut whole: [Vec<arrow::array::RecordBatch>; 3] = Default::default();
        for f in 0..args.files_per_hour as i64 {
            let at = hour * layout::HOUR_NANOS + f * step_nanos;
            let n = (h * args.files_per_hour as i64 + f) as u64;
            // Spans: a flush's worth of traces, moved to this flush's time.
            let mut resource_spans = Vec::new();
            for r in 0..args.trace_requests_per_file {
                let req = traces::request(&trace_shape, n * args.trace_requests_per_file + r);
                if ids.len() < args.sample_ids && n.is_multiple_of(7) {
                    ids.push(req.first_trace_id.clone());
                }
                spans += req.spans;
                resource_spans.extend(req.request.resource_spans);
            }
            shift_spans(&mut resource_spans, at);
            let batch = strata_schema::traces::to_batch(&resource_spans)?;
            // Metrics: one point of every series at this flush's time.
            let shape = metrics::MetricShape {
                seed: 5,
                series: args.series,
                points_per_request: args.series,
                start_nanos: (first_hour * layout::HOUR_NANOS) as u64,
                interval_nanos: step_nanos as u64,
            };
            let m = metrics::request(&shape, n);
            samples += m.points;
            let mbatch = strata_schema::metrics::to_batch(&m.request.resource_metrics)?;
            // Logs, every fourth flush (logs are fewer files here).
            let mut lbatch = None;
            if f % 4 == 0 {
                let mut l = logs::request(&log_shape, n);
                shift_logs(&mut l.request.resource_logs, at);
                records += l.records;
                lbatch = Some(strata_schema::logs::to_batch(&l.request.resource_logs)?);
            }
            for (signal, batch) in [
                (Signal::Traces, Some(batch)),
                (Signal::Metrics, Some(mbatch)),
                (Signal::Logs, lbatch),
            ] {
                let Some(batch) = batch else { continue };
                let collector = format!("c{}", f % 3);
                write(
                    &small,
                    signal,
                    hour,
                    &collector,
                    std::slice::from_ref(&batch),
                )
                .await?;
                files += 1;
                whole[signal as usize].push(batch);
            }
        }
        if let Some(one) = &one {
            for signal in Signal::ALL {
                write(one, signal, hour, "c0", &whole[signal as usize]).await?;
            }
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "files": files, "spans": spans, "samples": samples, "log_records": records,
            "hours": args.hours, "trace_ids": ids,
        })
    );
    Ok(())
}

async fn write(
    storage: &Storage,
    signal: Signal,
    hour: i64,
    collector: &str,
    batches: &[arrow::array::RecordBatch],
) -> anyhow::Result<()> {
    let (bytes, _) = encode(signal, batches, Vec::new(), OPTIONS)?;
    let path = storage.path(&layout::file_path("default", signal, hour, collector));
    storage
        .store
        .put(&path, PutPayload::from(bytes))
        .await
        .with_context(|| format!("writing {path}"))?;
    Ok(())
}

/// Moves every span (and its events) so the earliest starts at `at`.
fn shift_spans(rs: &mut [opentelemetry_proto::tonic::trace::v1::ResourceSpans], at: i64) {
    let min = rs
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let delta = at as u64 as i128 - min as i128;
    let mv = |t: &mut u64| *t = (*t as i128 + delta).max(0) as u64;
    for span in rs
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        mv(&mut span.start_time_unix_nano);
        mv(&mut span.end_time_unix_nano);
        for e in &mut span.events {
            mv(&mut e.time_unix_nano);
        }
    }
}

/// Moves every log record so the earliest is at `at`.
fn shift_logs(rl: &mut [opentelemetry_proto::tonic::logs::v1::ResourceLogs], at: i64) {
    let min = rl
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|l| l.time_unix_nano)
        .min()
        .unwrap_or(0);
    let delta = at as u64 as i128 - min as i128;
    for l in rl
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
    {
        l.time_unix_nano = (l.time_unix_nano as i128 + delta).max(0) as u64;
        l.observed_time_unix_nano = (l.observed_time_unix_nano as i128 + delta).max(0) as u64;
    }
}
