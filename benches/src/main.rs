//! `strata-loadgen`: sends realistic OTLP traces over gRPC as fast as they are accepted (or at a
//! fixed rate), then optionally measures trace lookups against the query service.
//!
//! Traces are multi-service (frontend -> checkout -> payment ...), `--spans-per-trace` spans
//! each with `--attributes` attributes and an event on every fifth span. Everything is
//! deterministic by `--seed`. It reports sent, acknowledged and refused spans, throughput, and
//! ack latency p50/p99 as one JSON object on stdout.

mod traces;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio::sync::Mutex;

#[derive(Debug, Parser, Clone)]
struct Args {
    /// OTLP/gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Spans to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Spans per trace.
    #[arg(long, default_value_t = 10)]
    spans_per_trace: usize,
    /// Traces per export request.
    #[arg(long, default_value_t = 20)]
    traces_per_request: usize,
    /// Attributes per span.
    #[arg(long, default_value_t = 12)]
    attributes: usize,
    /// Concurrent exporters.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Target spans per second (0: as fast as accepted).
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
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    trace_ids: Mutex<Vec<String>>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
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
        println!("{}", lookups(&args.query, &ids, args.lookups).await?);
        return Ok(());
    }
    let stats = Arc::new(Stats::default());
    let per_request = (args.spans_per_trace * args.traces_per_request) as u64;
    let requests = args.spans.div_ceil(per_request);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_seconds);
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let (args, stats, next) = (args.clone(), stats.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(args.endpoint.clone())
                .await?
                .max_decoding_message_size(64 << 20);
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests || Instant::now() > deadline {
                    break;
                }
                if args.rate > 0 {
                    let due = start
                        + Duration::from_secs_f64((i * per_request) as f64 / args.rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let (request, first_trace) = traces::request(&args, i);
                let n = per_request;
                stats.sent.fetch_add(n, Ordering::Relaxed);
                let t = Instant::now();
                match client.export(request).await {
                    Ok(_) => {
                        latencies.push(t.elapsed());
                        stats.acked.fetch_add(n, Ordering::Relaxed);
                        if i % 97 == worker as u64 % 97 {
                            stats.trace_ids.lock().await.push(first_trace);
                        }
                    }
                    Err(status) => {
                        stats.refused.fetch_add(n, Ordering::Relaxed);
                        if status.code() == tonic::Code::ResourceExhausted
                            || status.code() == tonic::Code::Unavailable
                        {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        } else {
                            eprintln!("export failed: {status}");
                        }
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
        "sent_spans": stats.sent.load(Ordering::Relaxed),
        "acked_spans": acked,
        "refused_spans": stats.refused.load(Ordering::Relaxed),
        "seconds": elapsed,
        "spans_per_second": acked as f64 / elapsed,
        "ack_latency_ms_p50": percentile(&lat, 0.50),
        "ack_latency_ms_p99": percentile(&lat, 0.99),
    });
    if let Some(path) = &args.write_ids {
        std::fs::write(path, stats.trace_ids.lock().await.join("\n"))?;
    }
    println!("{report}");
    Ok(())
}

/// Fetches traces by id (cycling over `ids`) and reports latency percentiles.
async fn lookups(query: &str, ids: &[String], n: usize) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(!ids.is_empty(), "no acknowledged traces to look up");
    let host = query.trim_start_matches("http://");
    let mut lat = Vec::with_capacity(n);
    let mut found = 0;
    for i in 0..n {
        let id = &ids[i % ids.len()];
        let t = Instant::now();
        let status = http_get_status(host, &format!("/api/traces/{id}")).await?;
        lat.push(t.elapsed());
        found += usize::from(status == 200);
    }
    lat.sort();
    Ok(serde_json::json!({
        "lookups": n, "found": found,
        "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
    }))
}

/// A minimal HTTP/1.1 GET (Connection: close) returning the status code; the body is drained.
/// Hand-written to keep an HTTP client stack out of the load generator's timing.
async fn http_get_status(host: &str, path: &str) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let line = String::from_utf8_lossy(&buf[..buf.len().min(32)]).to_string();
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}
