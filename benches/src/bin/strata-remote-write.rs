//! `strata-remote-write`: writes a deterministic Prometheus workload over remote write 1.0 to
//! one endpoint (Strata or Prometheus), so both can be benchmarked on identical data.
//!
//! The workload is a set of counters: metric `NAME` with `SERIES` series, for every spec
//! `NAME:SERIES` given, each series labelled `job` (10 values), `instance` (100 values) and
//! `id`, sampled every `--interval-ms` over `--hours` ending at `--end-ms`. Counters start at
//! 1e6 and their increments come from a seeded generator, so two runs with the same arguments
//! write the same samples.
//!
//! Samples are written time-major in rounds of `--round` timestamps, each round spread over
//! `--concurrency` senders that own disjoint series: every series is written in time order and
//! no series runs ahead of another by more than one round, which is what a Prometheus head
//! (which refuses samples far older than its newest) needs. A request carries up to
//! `--per-request` samples. 429 and 503 are retried with backoff, as Prometheus's sender
//! does; any other answer but 2xx stops the run with an error. Prints one JSON object:
//! samples, retries, seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use strata_schema::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

#[derive(Debug, Parser)]
struct Args {
    /// Remote write URL, e.g. `http://127.0.0.1:4318/api/v1/write`.
    #[arg(long)]
    url: String,
    /// Metrics to write, as `NAME:SERIES`.
    #[arg(long, required = true)]
    metric: Vec<String>,
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    #[arg(long, default_value_t = 60_000)]
    interval_ms: i64,
    /// Time of the last sample (ms); default: now, rounded down to the interval.
    #[arg(long)]
    end_ms: Option<i64>,
    /// Timestamps per round.
    #[arg(long, default_value_t = 10)]
    round: usize,
    #[arg(long, default_value_t = 2000)]
    per_request: usize,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
}

/// One series: its labels and its counter's current value.
struct Series {
    labels: Vec<Label>,
    value: f64,
    state: u64,
}

impl Series {
    fn next(&mut self) -> f64 {
        // xorshift64*: a cheap deterministic increment in [0, 100).
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        self.value += (r % 100) as f64;
        self.value
    }
}

fn label(name: &str, value: String) -> Label {
    Label {
        name: name.to_string(),
        value,
    }
}

fn workload(args: &Args) -> anyhow::Result<Vec<Series>> {
    let mut out = Vec::new();
    for spec in &args.metric {
        let (name, n) = spec
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--metric wants NAME:SERIES, got {spec}"))?;
        let n: u64 = n.parse()?;
        for i in 0..n {
            // Labels sorted by name, as Prometheus sends them.
            out.push(Series {
                labels: vec![
                    label("__name__", name.to_string()),
                    label("id", i.to_string()),
                    label("instance", format!("host-{:03}:9100", i % 100)),
                    label("job", format!("job-{}", i % 10)),
                ],
                // Far from zero, so `rate`'s zero-point clamp (which Prometheus 2.5x changed)
                // plays no part when comparing answers with Prometheus 2.
                value: 1e6,
                state: args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    ^ (i + 1)
                    ^ ((out.len() as u64) << 32),
            });
        }
    }
    Ok(out)
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Posts one request; like Prometheus's sender, retries 429 and 503 with a growing backoff
/// (100 ms doubling to 2 s) until the deadline. Returns the retries it took.
async fn post(
    client: &HttpClient,
    url: &str,
    body: Vec<u8>,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let body = Bytes::from(body);
    let mut backoff = Duration::from_millis(100);
    let mut retries = 0;
    loop {
        let request = http::Request::post(url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(Full::new(body.clone()))?;
        let response = client.request(request).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(retries);
        }
        let text = response.into_body().collect().await?.to_bytes();
        let retry = status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::SERVICE_UNAVAILABLE;
        if !retry || Instant::now() + backoff > deadline {
            anyhow::bail!("{url}: {status}: {}", String::from_utf8_lossy(&text));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        retries += 1;
    }
}

/// Writes timestamps `times` of every series in `shard`.
async fn send_shard(
    client: HttpClient,
    url: Arc<str>,
    mut shard: Vec<Series>,
    times: Arc<Vec<i64>>,
    per_request: usize,
    deadline: Instant,
) -> anyhow::Result<(Vec<Series>, u64, u64)> {
    let per_series = times.len().max(1);
    let series_per_request = (per_request / per_series).max(1);
    let (mut samples, mut retries) = (0u64, 0u64);
    for chunk in shard.chunks_mut(series_per_request) {
        let timeseries = chunk
            .iter_mut()
            .map(|s| TimeSeries {
                labels: s.labels.clone(),
                samples: times
                    .iter()
                    .map(|&timestamp| Sample {
                        value: s.next(),
                        timestamp,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        samples += (timeseries.len() * times.len()) as u64;
        let body = encode(&WriteRequest {
            timeseries,
            ..Default::default()
        });
        retries += post(&client, &url, body, deadline).await?;
    }
    Ok((shard, samples, retries))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.interval_ms > 0, "--interval-ms must be positive");
    let mut series = workload(&args)?;
    let end = args.end_ms.unwrap_or_else(|| {
        let now = chrono::Utc::now().timestamp_millis();
        now - now.rem_euclid(args.interval_ms)
    });
    let points = ((args.hours * 3_600_000.0) as i64 / args.interval_ms).max(1);
    let all_times: Vec<i64> = (0..points)
        .rev()
        .map(|k| end - k * args.interval_ms)
        .collect();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let url: Arc<str> = Arc::from(args.url.as_str());
    let concurrency = args.concurrency.max(1);
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let started = Instant::now();
    let (mut samples, mut retries) = (0u64, 0u64);
    for round in all_times.chunks(args.round.max(1)) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "gave up after {}s",
            args.max_seconds
        );
        let times = Arc::new(round.to_vec());
        let per_shard = series.len().div_ceil(concurrency);
        let mut tasks = Vec::new();
        while !series.is_empty() {
            let rest = series.split_off(per_shard.min(series.len()));
            let shard = std::mem::replace(&mut series, rest);
            tasks.push(tokio::spawn(send_shard(
                client.clone(),
                url.clone(),
                shard,
                times.clone(),
                args.per_request,
                deadline,
            )));
        }
        for task in tasks {
            let (shard, s, r) = task.await??;
            series.extend(shard);
            samples += s;
            retries += r;
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "samples": samples,
            "retries": retries,
            "seconds": started.elapsed().as_secs_f64(),
            "first_ms": all_times.first(),
            "last_ms": all_times.last(),
        })
    );
    Ok(())
}
