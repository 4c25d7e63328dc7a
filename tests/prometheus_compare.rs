//! Strata against a real Prometheus: the same samples are remote-written into both, then the
//! same PromQL queries (instant and range) must give the same series and values within
//! float tolerance.
//!
//! The Prometheus binary comes from `STRATA_TEST_PROMETHEUS` or `PATH` (`scripts/test`
//! installs Debian's `prometheus` package). Without it the test is skipped and says so,
//! unless `STRATA_REQUIRE_PROMETHEUS=1`, which makes a missing binary a failure.
//!
//! Debian ships Prometheus 2.x, whose range and lookback windows are closed on the left
//! while Prometheus 3 (and Strata) leave them open; sample times are therefore kept off the
//! evaluation grid (odd milliseconds, evaluation at whole seconds) so the two agree.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use strata_schema::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

const STALE: u64 = 0x7ff0_0000_0000_0002;

fn prometheus_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_TEST_PROMETHEUS") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("prometheus"))
            .find(|p| p.is_file())
    })
}

/// A Prometheus server, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(bin: &PathBuf, dir: &std::path::Path) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1h\nscrape_configs: []\n",
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let prometheus = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    eventually(Duration::from_secs(60), "prometheus ready", || {
        ureq::get(&format!("{}/-/ready", prometheus.url))
            .timeout(Duration::from_secs(2))
            .call()
            .is_ok_and(|r| r.status() == 200)
    });
    prometheus
}

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

/// A small deterministic generator (no clock, no thread-local state).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn series(labels: &[(&str, &str)], samples: Vec<(i64, f64)>) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(k, v)| label(k, v)).collect(),
        samples: samples
            .into_iter()
            .map(|(t, v)| Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        ..Default::default()
    }
}

/// 50 minutes of counters (one with a reset), gauges, a classic histogram, and series that
/// end with and without a staleness marker. Sample times sit at odd milliseconds.
fn data(t0: i64) -> WriteRequest {
    let mut rng = Lcg(42);
    let n = 200; // 50 minutes at 15 s.
    let mut out = Vec::new();
    for (k, instance) in ["a", "b", "c"].iter().enumerate() {
        for code in ["200", "500"] {
            let mut v = 0.0;
            let samples = (0..n)
                .map(|i| {
                    v += (rng.next() * 20.0).floor() + if code == "200" { 10.0 } else { 1.0 };
                    if *instance == "c" && i == 120 {
                        v = 3.0;
                    }
                    (t0 + i * 15_000 + 101 + 7 * k as i64, v)
                })
                .collect();
            out.push(series(
                &[
                    ("__name__", "cmp_requests_total"),
                    ("job", "api"),
                    ("instance", instance),
                    ("code", code),
                ],
                samples,
            ));
        }
    }
    for (k, room) in ["x", "y", "z"].iter().enumerate() {
        let samples = (0..n)
            .map(|i| {
                let v = 20.0 + 5.0 * ((i as f64) / 17.0 + k as f64).sin() + rng.next()
                    - 0.5
                    - 10.0 * k as f64;
                (t0 + i * 15_000 + 211 + 13 * k as i64, v)
            })
            .collect();
        out.push(series(
            &[("__name__", "cmp_temperature"), ("room", room)],
            samples,
        ));
    }
    let bounds = ["0.1", "0.5", "1", "+Inf"];
    for (k, instance) in ["a", "b"].iter().enumerate() {
        let mut counts = [0.0f64; 4];
        let mut sum = 0.0;
        let mut by_bound: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 4];
        let (mut sums, mut totals) = (Vec::new(), Vec::new());
        for i in 0..n {
            let t = t0 + i * 15_000 + 307 + 11 * k as i64;
            for _ in 0..5 {
                let x = rng.next() * 1.5;
                sum += x;
                for (b, bound) in [0.1, 0.5, 1.0, f64::INFINITY].iter().enumerate() {
                    if x <= *bound {
                        counts[b] += 1.0;
                    }
                }
            }
            for b in 0..4 {
                by_bound[b].push((t, counts[b]));
            }
            sums.push((t, sum));
            totals.push((t, counts[3]));
        }
        for (b, samples) in by_bound.into_iter().enumerate() {
            out.push(series(
                &[
                    ("__name__", "cmp_latency_seconds_bucket"),
                    ("instance", instance),
                    ("le", bounds[b]),
                ],
                samples,
            ));
        }
        out.push(series(
            &[
                ("__name__", "cmp_latency_seconds_sum"),
                ("instance", instance),
            ],
            sums,
        ));
        out.push(series(
            &[
                ("__name__", "cmp_latency_seconds_count"),
                ("instance", instance),
            ],
            totals,
        ));
    }
    // Ends 20 minutes early with a staleness marker; the other just stops 10 minutes early.
    let mut stale: Vec<(i64, f64)> = (0..120)
        .map(|i| (t0 + i * 15_000 + 419, i as f64))
        .collect();
    stale.push((t0 + 120 * 15_000 + 419, f64::from_bits(STALE)));
    out.push(series(
        &[("__name__", "cmp_short"), ("instance", "a")],
        stale,
    ));
    out.push(series(
        &[("__name__", "cmp_short"), ("instance", "b")],
        (0..160)
            .map(|i| (t0 + i * 15_000 + 421, -(i as f64)))
            .collect(),
    ));
    WriteRequest {
        timeseries: out,
        metadata: vec![],
    }
}

const QUERIES: &[&str] = &[
    "cmp_requests_total",
    "cmp_temperature offset 7m",
    "cmp_short",
    "rate(cmp_requests_total[5m])",
    "irate(cmp_requests_total[2m])",
    "increase(cmp_requests_total[10m])",
    "delta(cmp_temperature[10m])",
    "idelta(cmp_temperature[3m])",
    "deriv(cmp_temperature[10m])",
    "predict_linear(cmp_temperature[15m], 600)",
    "resets(cmp_requests_total[30m])",
    "changes(cmp_short[10m])",
    "avg_over_time(cmp_temperature[10m])",
    "min_over_time(cmp_temperature[7m])",
    "max_over_time(cmp_temperature[7m])",
    "sum_over_time(cmp_temperature[5m])",
    "count_over_time(cmp_short[10m])",
    "quantile_over_time(0.9, cmp_temperature[10m])",
    "stddev_over_time(cmp_temperature[10m])",
    "stdvar_over_time(cmp_temperature[10m])",
    "last_over_time(cmp_short[20m])",
    "present_over_time(cmp_short[5m])",
    "absent_over_time(cmp_short{instance=\"a\"}[5m])",
    "sum by (code) (rate(cmp_requests_total[5m]))",
    "avg without (instance) (rate(cmp_requests_total[5m]))",
    "max by (job) (cmp_requests_total)",
    "min(cmp_temperature)",
    "count(cmp_requests_total)",
    "stddev(cmp_temperature)",
    "stdvar by (job) (rate(cmp_requests_total[5m]))",
    "topk(2, cmp_temperature)",
    "bottomk by (code) (1, rate(cmp_requests_total[5m]))",
    "quantile(0.3, cmp_temperature)",
    "count_values(\"code_count\", count by (code) (cmp_requests_total))",
    "group by (instance) (cmp_requests_total)",
    "histogram_quantile(0.9, sum by (le) (rate(cmp_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(cmp_latency_seconds_bucket[10m]))",
    "rate(cmp_latency_seconds_sum[5m]) / rate(cmp_latency_seconds_count[5m])",
    "cmp_requests_total / ignoring(code) group_left sum without (code) (cmp_requests_total)",
    "sum by (instance) (cmp_requests_total) / on(instance) group_right sum by (instance, code) (cmp_requests_total)",
    "cmp_temperature > 18",
    "cmp_temperature > bool 18",
    "cmp_requests_total{code=\"500\"} and on(instance) cmp_requests_total{instance=~\"a|b\"}",
    "cmp_short or cmp_temperature",
    "cmp_requests_total unless on(instance) cmp_short",
    "2 * cmp_temperature - 1",
    "-cmp_temperature ^ 2 % 7",
    "abs(cmp_temperature)",
    "ceil(cmp_temperature)",
    "floor(cmp_temperature)",
    "round(cmp_temperature, 0.5)",
    "clamp(cmp_temperature, 0, 20)",
    "clamp_min(cmp_temperature, 10)",
    "sqrt(abs(cmp_temperature))",
    "exp(cmp_temperature / 10)",
    "ln(abs(cmp_temperature) + 1)",
    "sgn(cmp_temperature)",
    "timestamp(cmp_short)",
    "label_replace(cmp_temperature, \"place\", \"room-$1\", \"room\", \"(.*)\")",
    "label_join(cmp_requests_total, \"id\", \"/\", \"instance\", \"code\")",
    "absent(cmp_nothing{job=\"x\"})",
    "scalar(sum(cmp_temperature))",
    "vector(1) + time()",
    "hour(vector(time()))",
    "max_over_time(rate(cmp_requests_total[5m])[20m:1m])",
    "avg_over_time(sum(cmp_temperature)[15m:2m])",
    "rate(cmp_requests_total[5m] @ end())",
    "cmp_temperature @ start()",
    "sort_desc(sum by (instance) (cmp_requests_total))",
];

/// A query answer as comparable data: series (labels as text) to points.
fn normalize(v: &Value) -> Result<BTreeMap<String, Vec<(f64, String)>>, String> {
    if v["status"] != "success" {
        return Err(v.to_string());
    }
    let data = &v["data"];
    let mut out = BTreeMap::new();
    let point = |p: &Value| {
        (
            p[0].as_f64().unwrap_or(f64::NAN),
            p[1].as_str().unwrap_or("").to_string(),
        )
    };
    match data["resultType"].as_str() {
        Some("scalar") => {
            out.insert("scalar".into(), vec![point(&data["result"])]);
        }
        Some("vector") | Some("matrix") => {
            for s in data["result"].as_array().into_iter().flatten() {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(s["metric"].clone()).unwrap_or_default();
                let key = serde_json::to_string(&labels).unwrap();
                let points = if s["value"].is_array() {
                    vec![point(&s["value"])]
                } else {
                    s["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(point)
                        .collect()
                };
                out.insert(key, points);
            }
        }
        other => return Err(format!("unexpected result type {other:?}")),
    }
    Ok(out)
}

fn same_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => {
            (x.is_nan() && y.is_nan())
                || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300)
                || (x - y).abs() < 1e-12
        }
        _ => false,
    }
}

fn compare(what: &str, prom: &Value, strata: &Value) -> Result<usize, String> {
    let (p, s) = (normalize(prom)?, normalize(strata)?);
    if p.keys().ne(s.keys()) {
        return Err(format!(
            "{what}: series differ\n  prometheus: {:?}\n  strata:     {:?}",
            p.keys().collect::<Vec<_>>(),
            s.keys().collect::<Vec<_>>()
        ));
    }
    let mut points = 0;
    for (key, pp) in &p {
        let sp = &s[key];
        if pp.len() != sp.len() {
            return Err(format!(
                "{what}: {key}: {} points vs {}",
                pp.len(),
                sp.len()
            ));
        }
        for (a, b) in pp.iter().zip(sp) {
            if (a.0 - b.0).abs() > 1e-6 || !same_value(&a.1, &b.1) {
                return Err(format!("{what}: {key}: prometheus {a:?}, strata {b:?}"));
            }
            points += 1;
        }
    }
    Ok(points)
}

fn query(base: &str, path: &str, params: &[(&str, String)]) -> Value {
    let mut req = ureq::get(&format!("{base}{path}")).timeout(Duration::from_secs(60));
    for (k, v) in params {
        req = req.query(k, v);
    }
    match req.call() {
        Ok(r) => serde_json::from_str(&r.into_string().unwrap()).unwrap(),
        Err(ureq::Error::Status(_, r)) => {
            serde_json::from_str(&r.into_string().unwrap()).unwrap_or(Value::Null)
        }
        Err(e) => panic!("{path}: {e}"),
    }
}

#[test]
fn strata_answers_like_prometheus_on_the_same_remote_written_data() {
    let Some(bin) = prometheus_binary() else {
        assert!(
            std::env::var("STRATA_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
            "STRATA_REQUIRE_PROMETHEUS=1 but no prometheus binary was found"
        );
        println!(
            "SKIPPED: no prometheus binary (set STRATA_TEST_PROMETHEUS or install Debian's prometheus)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prometheus = start_prometheus(&bin, dir.path());
    let mut sa = standalone(
        dir.path(),
        "standalone",
        None,
        &[("STRATA_AGENT__BATCH_MAX_AGE_MS", "50")],
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Whole minutes, so evaluation times at whole seconds never meet a sample.
    let t0 = (now - 52 * 60 * 1000) / 60_000 * 60_000;
    let body = encode(&data(t0));
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    for target in [&prometheus.url, &sa.agent_http] {
        let (s, msg) = post_bytes(&format!("{target}/api/v1/write"), &body, &headers);
        assert_eq!(s, 204, "remote write to {target}: {msg}");
    }
    let total = data(t0)
        .timeseries
        .iter()
        .filter(|t| !t.samples.is_empty())
        .count();
    eventually(
        Duration::from_secs(60),
        "every series stored in Strata",
        || {
            let v = query(
                &sa.query,
                "/api/v1/query",
                &[
                    ("query", "count({__name__=~\"cmp_.+\"})".into()),
                    ("time", format!("{}", (t0 + 40 * 60_000) / 1000)),
                ],
            );
            v["data"]["result"][0]["value"][1].as_str() == Some(&(total - 1).to_string())
        },
    );

    // Evaluation at :30 seconds, off the 1m subquery grid.
    let end = (t0 + 49 * 60_000 + 30_000) / 1000;
    let start = end - 30 * 60;
    let mut failures = Vec::new();
    let mut points = 0;
    for q in QUERIES {
        for (what, path, params) in [
            (
                "instant",
                "/api/v1/query",
                vec![("query", q.to_string()), ("time", end.to_string())],
            ),
            (
                "instant-earlier",
                "/api/v1/query",
                vec![
                    ("query", q.to_string()),
                    ("time", (end - 17 * 60 - 3).to_string()),
                ],
            ),
            (
                "range",
                "/api/v1/query_range",
                vec![
                    ("query", q.to_string()),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("step", "60".to_string()),
                ],
            ),
        ] {
            let p = query(&prometheus.url, path, &params);
            let s = query(&sa.query, path, &params);
            match compare(&format!("{what} {q}"), &p, &s) {
                Ok(n) => points += n,
                Err(e) => failures.push(e),
            }
        }
    }
    println!(
        "compared {} queries (instant at two times and range) with Prometheus {}: {points} points, {} differences",
        QUERIES.len(),
        bin.display(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        points > 5_000,
        "the queries returned data ({points} points)"
    );
    assert!(sa.proc.terminate(Duration::from_secs(20)));
}
