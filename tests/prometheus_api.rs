//! Metrics end to end through `strata standalone`: Prometheus remote write and OTLP metrics in
//! (on the agent's OTLP/HTTP port), the Prometheus HTTP API out, as Grafana's Prometheus
//! datasource calls it: `1+1`, instant and range queries (GET and form POST), series, labels,
//! label values, metadata, exemplars, build info, and errors in Prometheus's own terms.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use strata_schema::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

/// A counter per instance growing by 1/s, sampled every 15 s from `start` for 30 minutes.
fn counters(start: i64) -> WriteRequest {
    let timeseries = ["a", "b"]
        .iter()
        .map(|instance| TimeSeries {
            labels: vec![
                label("__name__", "rw_requests_total"),
                label("job", "api"),
                label("instance", instance),
            ],
            samples: (0..120)
                .map(|i| Sample {
                    value: (i * 15) as f64,
                    timestamp: start + i * 15_000,
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

fn otlp_metrics(t_ns: u64) -> Value {
    let t = t_ns.to_string();
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeMetrics": [{"scope": {"name": "app"}, "metrics": [
            {"name": "http.server.request.duration", "unit": "s", "description": "Request time",
             "histogram": {"aggregationTemporality": 2, "dataPoints": [{
                "timeUnixNano": t, "count": "10", "sum": 3.0,
                "bucketCounts": ["2", "6", "2"], "explicitBounds": [0.1, 0.5],
                "attributes": [{"key": "http.route", "value": {"stringValue": "/cart"}}]}]}},
            {"name": "app.jobs", "unit": "{job}",
             "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [{
                "timeUnixNano": t, "asInt": "42",
                "exemplars": [{"timeUnixNano": t, "asDouble": 1.0,
                   "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}]}},
            {"name": "system.memory.usage", "unit": "By",
             "gauge": {"dataPoints": [{"timeUnixNano": t, "asDouble": 1024.5}]}}
        ]}]
    }]})
}

fn prom(base: &str, path: &str) -> (u16, Value) {
    let (s, body) = get(&format!("{base}{path}"));
    (
        s,
        serde_json::from_str(&body).unwrap_or(json!({"raw": body})),
    )
}

fn ok_data(base: &str, path: &str) -> Value {
    let (s, v) = prom(base, path);
    assert_eq!(s, 200, "{path}: {v}");
    assert_eq!(v["status"], "success", "{path}: {v}");
    v["data"].clone()
}

fn enc(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

#[test]
fn prometheus_api_answers_over_remote_written_and_otlp_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut sa = standalone(
        dir.path(),
        "standalone",
        None,
        &[("STRATA_AGENT__BATCH_MAX_AGE_MS", "50")],
    );
    let q = sa.query.clone();
    let agent = sa.agent_http.clone();

    // Grafana's "Save & test".
    let d = ok_data(&q, "/api/v1/query?query=1%2B1");
    assert_eq!(d["resultType"], "scalar");
    assert_eq!(d["result"][1], "2");
    assert_eq!(
        ok_data(&q, "/api/v1/status/buildinfo")["application"],
        "strata"
    );

    // Remote write in, on the agent's OTLP/HTTP port.
    let now = now_ms();
    let start = now - 30 * 60 * 1000;
    let snappy = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    let (s, body) = post_bytes(
        &format!("{agent}/api/v1/write"),
        &encode(&counters(start)),
        &snappy,
    );
    assert_eq!(s, 204, "{body}");
    // Bad input in remote write's terms.
    let nameless = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("job", "x")],
            samples: vec![Sample {
                value: 1.0,
                timestamp: now,
            }],
            ..Default::default()
        }],
        metadata: vec![],
    };
    let (s, body) = post_bytes(
        &format!("{agent}/api/v1/write"),
        &encode(&nameless),
        &snappy,
    );
    assert_eq!(s, 400, "{body}");
    let (s, _) = post_bytes(
        &format!("{agent}/api/v1/write"),
        b"{}",
        &[("Content-Type", "application/json")],
    );
    assert_eq!(s, 415);
    // OTLP metrics of three types.
    let t_ns = (now as u64 - 60_000) * 1_000_000;
    let (s, body) = post_json(&format!("{agent}/v1/metrics"), &otlp_metrics(t_ns), &[]);
    assert_eq!(s, 200, "{body}");

    eventually(Duration::from_secs(30), "samples queryable", || {
        let (s, v) = prom(
            &q,
            &format!("/api/v1/query?query={}", enc("count(rw_requests_total)")),
        );
        s == 200 && v["data"]["result"][0]["value"][1] == "2"
    });
    eventually(Duration::from_secs(30), "OTLP metrics queryable", || {
        let (s, v) = prom(
            &q,
            &format!("/api/v1/query?query={}", enc("system_memory_usage_bytes")),
        );
        s == 200 && v["data"]["result"][0]["value"][1] == "1024.5"
    });

    // A range query: each counter grows by 1/s, so the sum of rates is 2.
    let end_s = (start + 29 * 60 * 1000) / 1000;
    let start_s = end_s - 600;
    let d = ok_data(
        &q,
        &format!(
            "/api/v1/query_range?query={}&start={start_s}&end={end_s}&step=60",
            enc("sum(rate(rw_requests_total[5m]))")
        ),
    );
    assert_eq!(d["resultType"], "matrix");
    let values = d["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 11, "{d}");
    for v in values {
        let x: f64 = v[1].as_str().unwrap().parse().unwrap();
        assert!((x - 2.0).abs() < 1e-9, "{d}");
    }
    // The same as a form POST, as Grafana sends it.
    let resp = ureq::post(&format!("{q}/api/v1/query_range"))
        .send_form(&[
            (
                "query",
                "sum by (instance) (increase(rw_requests_total[5m]))",
            ),
            ("start", &start_s.to_string()),
            ("end", &end_s.to_string()),
            ("step", "5m"),
            ("limit", "10"),
        ])
        .unwrap();
    let v: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["data"]["result"][0]["metric"], json!({"instance": "a"}));

    // OTLP names as Prometheus's OTLP receiver gives them.
    let d = ok_data(&q, "/api/v1/label/__name__/values");
    for name in [
        "rw_requests_total",
        "http_server_request_duration_seconds_bucket",
        "http_server_request_duration_seconds_count",
        "app_jobs_total",
        "system_memory_usage_bytes",
    ] {
        assert!(
            d.as_array().unwrap().contains(&json!(name)),
            "{name} in {d}"
        );
    }
    // Buckets 2, 6, 2 with bounds 0.1, 0.5: the median (rank 5) is in (0.1, 0.5].
    let d = ok_data(
        &q,
        &format!(
            "/api/v1/query?query={}",
            enc(
                "histogram_quantile(0.5, sum by (le) (http_server_request_duration_seconds_bucket))"
            )
        ),
    );
    let median: f64 = d["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((median - (0.1 + 0.4 * 3.0 / 6.0)).abs() < 1e-9, "{d}");
    let d = ok_data(
        &q,
        &format!("/api/v1/query?query={}", enc("app_jobs_total")),
    );
    assert_eq!(
        d["result"][0]["metric"],
        json!({"__name__": "app_jobs_total", "job": "checkout"})
    );

    // Metadata endpoints.
    let d = ok_data(
        &q,
        &format!("/api/v1/series?match[]={}", enc("rw_requests_total")),
    );
    assert_eq!(d.as_array().unwrap().len(), 2, "{d}");
    let d = ok_data(&q, "/api/v1/labels");
    for l in ["__name__", "job", "instance", "http_route", "le"] {
        assert!(d.as_array().unwrap().contains(&json!(l)), "{l} in {d}");
    }
    let d = ok_data(&q, "/api/v1/label/instance/values");
    assert_eq!(d, json!(["a", "b"]));
    let d = ok_data(&q, "/api/v1/metadata");
    assert_eq!(
        d["http_server_request_duration_seconds"][0]["type"],
        "histogram"
    );
    assert_eq!(
        d["http_server_request_duration_seconds"][0]["help"],
        "Request time"
    );
    assert_eq!(d["app_jobs_total"][0]["type"], "counter");
    let d = ok_data(
        &q,
        &format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            enc("app_jobs_total"),
            now / 1000 - 3600,
            now / 1000 + 60
        ),
    );
    assert_eq!(
        d[0]["exemplars"][0]["labels"]["trace_id"], "5b8efff798038103d269b633813fc60c",
        "{d}"
    );

    // Special values are strings.
    let d = ok_data(
        &q,
        &format!("/api/v1/query?query={}", enc("vector(0/0) or vector(1)")),
    );
    assert_eq!(d["result"][0]["value"][1], "NaN");
    let d = ok_data(&q, &format!("/api/v1/query?query={}", enc("1/0")));
    assert_eq!(d["result"][1], "+Inf");

    // Errors in Prometheus's terms.
    let (s, v) = prom(&q, &format!("/api/v1/query?query={}", enc("sum(")));
    assert_eq!((s, v["errorType"].as_str()), (400, Some("bad_data")), "{v}");
    let (s, v) = prom(
        &q,
        &format!(
            "/api/v1/query?query={}",
            enc("rw_requests_total + on() rw_requests_total")
        ),
    );
    assert_eq!(
        (s, v["errorType"].as_str()),
        (422, Some("execution")),
        "{v}"
    );
    let (s, v) = prom(&q, "/api/v1/query_range?query=up&start=10&end=5&step=1");
    assert_eq!(s, 400, "{v}");
    let (s, v) = prom(&q, "/api/v1/series");
    assert_eq!(s, 400, "{v}");
    let metrics = get(&format!("{q}/metrics")).1;
    assert!(
        metrics.contains("route=\"/api/v1/query\""),
        "query requests are counted"
    );

    assert!(sa.proc.terminate(Duration::from_secs(20)));
}

/// A minimal exporter on a real socket: serves `body(n)` for the n-th scrape, until `stop`.
fn exporter(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf);
                    n += 1;
                    let body = format!(
                        "# HELP exporter_requests_total Requests served.\n# TYPE exporter_requests_total counter\nexporter_requests_total{{path=\"/a\"}} {}\n# TYPE exporter_temp gauge\nexporter_temp 21.5\nexporter_info{{job=\"inner\",version=\"1.2\"}} 1\n",
                        n * 10
                    );
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (port, handle)
}

#[test]
fn the_agent_scrapes_exporters_and_itself() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (port, exporter_thread) = exporter(stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[[agent.scrape]]
job = "node"
targets = ["127.0.0.1:{port}"]
interval_ms = 500
timeout_ms = 400
labels = {{ env = "test" }}

[[agent.scrape]]
job = "strata-agent"
targets = ["{{agent_http}}"]
interval_ms = 500
timeout_ms = 400
"#
    );
    let mut sa = standalone(
        dir.path(),
        "scrape",
        Some(&config),
        &[("STRATA_AGENT__BATCH_MAX_AGE_MS", "50")],
    );
    let q = sa.query.clone();
    let instant = |query: &str| -> Value {
        let (s, v) = prom(&q, &format!("/api/v1/query?query={}", enc(query)));
        assert_eq!(s, 200, "{query}: {v}");
        v["data"]["result"].clone()
    };
    eventually(Duration::from_secs(30), "exporter scraped", || {
        instant("up{job=\"node\"}")[0]["value"][1] == "1"
            && instant("exporter_requests_total")[0]["value"][1] != Value::Null
    });
    let r = instant("exporter_requests_total");
    assert_eq!(
        r[0]["metric"],
        json!({"__name__": "exporter_requests_total", "job": "node",
               "instance": format!("127.0.0.1:{port}"), "path": "/a", "env": "test"})
    );
    let r = instant("exporter_info");
    assert_eq!(r[0]["metric"]["exported_job"], "inner", "{r}");
    eventually(
        Duration::from_secs(30),
        "a rate over several scrapes",
        || {
            instant("rate(exporter_requests_total[10s])")
                .get(0)
                .and_then(|s| s["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v > 0.0)
        },
    );
    let d = ok_data(&q, "/api/v1/metadata?metric=exporter_requests_total");
    assert_eq!(d["exporter_requests_total"][0]["type"], "counter", "{d}");
    assert_eq!(d["exporter_requests_total"][0]["help"], "Requests served.");
    // The agent scrapes its own /metrics.
    eventually(Duration::from_secs(30), "agent self-scrape", || {
        instant("up{job=\"strata-agent\"}")
            .get(0)
            .is_some_and(|s| s["value"][1] == "1")
            && instant("count({job=\"strata-agent\"})")
                .get(0)
                .and_then(|s| s["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|n| n > 10.0)
    });
    // The exporter goes away: `up` drops to 0 and its series are marked stale.
    stop.store(true, Ordering::SeqCst);
    exporter_thread.join().unwrap();
    eventually(
        Duration::from_secs(30),
        "target down and series stale",
        || {
            instant("up{job=\"node\"}")[0]["value"][1] == "0"
                && instant("exporter_temp")
                    .as_array()
                    .is_some_and(|a| a.is_empty())
        },
    );
    let metrics = get(&format!("{}/metrics", sa.agent_http)).1;
    assert!(
        metrics.contains("strata_agent_scrape_scrapes_total{job=\"node\",outcome=\"failed\"}"),
        "failed scrapes are counted"
    );
    assert!(sa.proc.terminate(Duration::from_secs(20)));
}
