//! `strata-loadgen`: sends realistic OTLP traces, logs or metrics over gRPC or HTTP as fast as
//! they are accepted (or at a fixed rate), then optionally measures trace lookups against the
//! query service.
//!
//! The data comes from the deterministic generators of the `strata_bench` library (see its
//! modules for the shapes). It reports sent, acknowledged and refused items (spans, log records
//! or metric points), throughput, ack latency p50/p99, and for logs the raw bytes of the lines,
//! as one JSON object on stdout. A refused request is not retried: it counts as refused, and its
//! sender backs off for 50 ms. Every run ends by itself: at `--count` items or
//! `--max-seconds`, whichever comes first.

mod lookup;
mod send;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use strata_bench::{logs, metrics, traces};
use tokio::sync::Mutex;

use send::{Outcome, Payload, Sender};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SignalArg {
    Traces,
    Logs,
    Metrics,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Parser, Clone)]
struct Args {
    /// What to send.
    #[arg(long, value_enum, default_value = "traces")]
    signal: SignalArg,
    /// OTLP/gRPC or OTLP/HTTP.
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    /// Endpoint: `http://HOST:PORT` of the agent's OTLP/gRPC or OTLP/HTTP listener.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Items (spans, log records, metric points) to send in all.
    #[arg(long, alias = "spans", default_value_t = 1_000_000)]
    count: u64,
    /// Spans per trace, `N` or an inclusive range `MIN-MAX`.
    #[arg(long, default_value = "5-50")]
    spans_per_trace: String,
    /// Traces per export request.
    #[arg(long, default_value_t = 8)]
    traces_per_request: usize,
    /// Attributes per span.
    #[arg(long, default_value_t = 12)]
    attributes: usize,
    /// Log records or metric points per export request.
    #[arg(long, default_value_t = 1000)]
    per_request: u64,
    /// Metric series.
    #[arg(long, default_value_t = 10_000)]
    series: u64,
    /// Replay the lines of these files as log bodies instead of generated ones; at most
    /// `--count` lines are sent, each once.
    #[arg(long)]
    log_file: Vec<std::path::PathBuf>,
    /// Concurrent exporters.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Target items per second (0: as fast as accepted).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write a sample of acknowledged trace ids (one per line) to this file.
    #[arg(long)]
    write_ids: Option<std::path::PathBuf>,
    /// Instead of sending, look up the trace ids listed in this file.
    #[arg(long)]
    lookup_ids: Option<std::path::PathBuf>,
    /// Query service URL, for --lookup-ids.
    #[arg(long, default_value = "http://127.0.0.1:3200")]
    query: String,
    /// Lookups to make with --lookup-ids.
    #[arg(long, default_value_t = 200)]
    lookups: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
    /// gRPC over TLS, verifying the server against this PEM CA file.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Bearer token sent with every gRPC request.
    #[arg(long)]
    token: Option<String>,
}

/// What every exporter generates from: built once from the arguments.
enum Workload {
    Traces(traces::TraceShape),
    Logs(logs::LogShape),
    Metrics(metrics::MetricShape),
}

/// One request: its payload, items, raw bytes (logs) and a trace id to look up later.
struct Generated {
    payload: Payload,
    items: u64,
    raw_bytes: u64,
    trace_id: Option<String>,
}

impl Workload {
    fn from_args(args: &Args) -> anyhow::Result<Self> {
        Ok(match args.signal {
            SignalArg::Traces => {
                let (min, max) = match args.spans_per_trace.split_once('-') {
                    Some((a, b)) => (a.trim().parse()?, b.trim().parse()?),
                    None => {
                        let n = args.spans_per_trace.trim().parse()?;
                        (n, n)
                    }
                };
                anyhow::ensure!(min >= 1 && min <= max, "bad --spans-per-trace");
                Self::Traces(traces::TraceShape {
                    seed: args.seed,
                    min_spans: min,
                    max_spans: max,
                    traces_per_request: args.traces_per_request.max(1),
                    attributes: args.attributes,
                })
            }
            SignalArg::Logs => {
                let mut lines = Vec::new();
                for path in &args.log_file {
                    let bytes = std::fs::read(path)?;
                    lines.extend(
                        String::from_utf8_lossy(&bytes)
                            .lines()
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                    );
                }
                Self::Logs(logs::LogShape {
                    seed: args.seed,
                    records_per_request: args.per_request.max(1) as usize,
                    lines,
                })
            }
            SignalArg::Metrics => Self::Metrics(metrics::MetricShape {
                seed: args.seed,
                series: args.series.max(1),
                points_per_request: args.per_request.max(1),
                start_nanos: strata_bench::rng::now_nanos(),
                interval_nanos: 15_000_000_000,
            }),
        })
    }

    /// Items per request when every request holds the same number (logs, metrics).
    fn fixed_items(&self) -> Option<u64> {
        match self {
            Self::Traces(_) => None,
            Self::Logs(shape) => Some(shape.records_per_request as u64),
            Self::Metrics(shape) => Some(shape.points_per_request),
        }
    }

    fn generate(&self, i: u64) -> Generated {
        match self {
            Self::Traces(shape) => {
                let r = traces::request(shape, i);
                Generated {
                    items: r.spans,
                    raw_bytes: 0,
                    trace_id: Some(r.first_trace_id),
                    payload: Payload::Traces(r.request),
                }
            }
            Self::Logs(shape) => {
                let r = logs::request(shape, i);
                Generated {
                    items: r.records,
                    raw_bytes: r.raw_bytes,
                    trace_id: None,
                    payload: Payload::Logs(r.request),
                }
            }
            Self::Metrics(shape) => {
                let r = metrics::request(shape, i);
                Generated {
                    items: r.points,
                    raw_bytes: 0,
                    trace_id: None,
                    payload: Payload::Metrics(r.request),
                }
            }
        }
    }
}

#[derive(Default)]
struct Stats {
    /// Items of variable-size requests handed out so far.
    scheduled: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    acked_raw_bytes: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    trace_ids: Mutex<Vec<String>>,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.lookup_ids {
        let text = std::fs::read_to_string(path)?;
        let ids: Vec<String> = text
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect();
        println!("{}", lookup::run(&args.query, &ids, args.lookups).await?);
        return Ok(());
    }
    let workload = Workload::from_args(&args)?;
    let mut args = args;
    if let Workload::Logs(shape) = &workload
        && !shape.lines.is_empty()
    {
        args.count = args.count.min(shape.lines.len() as u64);
    }
    let workload = Arc::new(workload);
    let stats = Arc::new(Stats::default());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (args, stats, next, workload) =
            (args.clone(), stats.clone(), next.clone(), workload.clone());
        tasks.push(tokio::spawn(async move {
            let sender = Sender::connect(
                &args.endpoint,
                matches!(args.protocol, Protocol::Http),
                args.ca.as_deref(),
                args.token.as_deref(),
            )
            .await?;
            let mut latencies = Vec::new();
            loop {
                if Instant::now() > deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                // Fixed-size requests stop by index, so exactly requests 0..n are sent.
                if workload.fixed_items().is_some_and(|n| i * n >= args.count) {
                    break;
                }
                let generated = workload.generate(i);
                let before = match workload.fixed_items() {
                    Some(n) => i * n,
                    None => stats
                        .scheduled
                        .fetch_add(generated.items, Ordering::Relaxed),
                };
                if before >= args.count {
                    break;
                }
                if args.rate > 0 {
                    let due = start + Duration::from_secs_f64(before as f64 / args.rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                stats.sent.fetch_add(generated.items, Ordering::Relaxed);
                let t = Instant::now();
                match sender.send(generated.payload).await {
                    Outcome::Acked => {
                        latencies.push(t.elapsed());
                        stats.acked.fetch_add(generated.items, Ordering::Relaxed);
                        stats
                            .acked_raw_bytes
                            .fetch_add(generated.raw_bytes, Ordering::Relaxed);
                        if let Some(id) = generated.trace_id.filter(|_| i % 97 == 0) {
                            stats.trace_ids.lock().await.push(id);
                        }
                    }
                    Outcome::Refused => {
                        stats.refused.fetch_add(generated.items, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Outcome::Failed(e) => {
                        stats.failed.fetch_add(generated.items, Ordering::Relaxed);
                        eprintln!("export failed: {e}");
                    }
                }
            }
            stats.latencies.lock().await.extend(latencies);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat = stats.latencies.lock().await.clone();
    lat.sort();
    let acked = stats.acked.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "signal": format!("{:?}", args.signal).to_lowercase(),
        "protocol": format!("{:?}", args.protocol).to_lowercase(),
        "sent": stats.sent.load(Ordering::Relaxed),
        "acked": acked,
        "refused": stats.refused.load(Ordering::Relaxed),
        "failed": stats.failed.load(Ordering::Relaxed),
        "acked_raw_bytes": stats.acked_raw_bytes.load(Ordering::Relaxed),
        "seconds": elapsed,
        "per_second": acked as f64 / elapsed,
        "ack_latency_ms_p50": percentile(&lat, 0.50),
        "ack_latency_ms_p99": percentile(&lat, 0.99),
    });
    if let Some(path) = &args.write_ids {
        std::fs::write(path, stats.trace_ids.lock().await.join("\n"))?;
    }
    println!("{report}");
    Ok(())
}
