//! End to end through real processes on loopback: one agent, three collectors and a query
//! service (the real `strata` binary in each role). The OpenTelemetry Python SDK sends
//! multi-service traces over OTLP/gRPC and OTLP/HTTP, logs and metrics; the test checks that
//! every span of a trace lands in exactly one collector's files, that whole traces come back
//! with their parent links, that logs and metrics come back through SQL, that pyarrow and
//! DuckDB read the files (row counts, bloom filter, sort order), and that bad input gets the
//! protocol's own error without harming the process or the data.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::*;
use serde_json::Value;

struct Cluster {
    _dir: tempfile::TempDir,
    storage: std::path::PathBuf,
    collectors: Vec<Proc>,
    agent: Proc,
    query: Proc,
    grpc: String,
    http: String,
    query_url: String,
}

const MAX_REQUEST: &str = "1048576";

fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let storage_s = storage.display().to_string();
    let env = [
        ("STRATA_COLLECTOR__FLUSH_MAX_AGE_MS", "300"),
        ("STRATA_AGENT__BATCH_MAX_AGE_MS", "100"),
        ("STRATA_AGENT__MAX_REQUEST_BYTES", MAX_REQUEST),
    ];
    let mut collectors = Vec::new();
    let mut flight_addrs = Vec::new();
    for i in 0..3 {
        let flight = format!("127.0.0.1:{}", free_port());
        let http = format!("127.0.0.1:{}", free_port());
        let data = dir.path().join(format!("c{i}"));
        let mut c = strata(
            &format!("collector-{i}"),
            dir.path(),
            &[
                "collector",
                "--id",
                &format!("c{i}"),
                "--data-dir",
                data.to_str().unwrap(),
                "--storage",
                &storage_s,
                "--flight",
                &flight,
                "--http",
                &http,
            ],
            &env,
        );
        wait_ready(
            &format!("http://{http}/ready"),
            Duration::from_secs(30),
            &mut c,
        );
        collectors.push(c);
        flight_addrs.push(flight);
    }
    let grpc = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let agent_dir = dir.path().join("agent");
    let mut agent = strata(
        "agent",
        dir.path(),
        &[
            "agent",
            "--data-dir",
            agent_dir.to_str().unwrap(),
            "--otlp-grpc",
            &grpc,
            "--otlp-http",
            &http,
            "--collectors",
            &flight_addrs.join(","),
        ],
        &env,
    );
    wait_ready(
        &format!("http://{http}/ready"),
        Duration::from_secs(30),
        &mut agent,
    );
    let query_addr = format!("127.0.0.1:{}", free_port());
    let mut query = strata(
        "query",
        dir.path(),
        &["query", "--storage", &storage_s, "--http", &query_addr],
        &[],
    );
    let query_url = format!("http://{query_addr}");
    wait_ready(
        &format!("{query_url}/ready"),
        Duration::from_secs(30),
        &mut query,
    );
    Cluster {
        _dir: dir,
        storage,
        collectors,
        agent,
        query,
        grpc,
        http: format!("http://{http}"),
        query_url,
    }
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn agent_and_three_collectors_with_the_python_sdk() {
    let Some(python) = python() else { return };
    let mut cluster = start_cluster();
    let dir = tempfile::tempdir().unwrap();
    let expected_path = dir.path().join("sent.json");
    run_python(
        &python,
        "send_otlp.py",
        &[
            "--grpc",
            &cluster.grpc,
            "--http",
            &cluster.http,
            "--traces",
            "30",
            "--out",
            expected_path.to_str().unwrap(),
        ],
    );
    let sent: Value =
        serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
    let traces = sent["traces"].as_array().unwrap();
    let total_spans: usize = traces
        .iter()
        .map(|t| t["spans"].as_array().unwrap().len())
        .sum();
    let q = cluster.query_url.clone();

    eventually(
        Duration::from_secs(60),
        "all spans, logs and metrics queryable",
        || {
            as_u64(&sql_scalar(&q, "SELECT count(*) FROM spans")) == total_spans as u64
                && as_u64(&sql_scalar(&q, "SELECT count(*) FROM logs"))
                    == sent["logs"].as_array().unwrap().len() as u64
                && as_u64(&sql_scalar(
                    &q,
                    "SELECT count(*) FROM metrics WHERE metric_name IN ('orders', 'order.amount')",
                )) >= 3
        },
    );

    // Whole traces with correct parent links, through the trace API.
    for t in traces {
        let id = t["trace_id"].as_str().unwrap();
        let (status, body) = get(&format!("{q}/api/traces/{id}"));
        assert_eq!(status, 200, "{body}");
        let got: Value = serde_json::from_str(&body).unwrap();
        let mut spans = BTreeMap::new();
        for rs in got["batches"].as_array().unwrap() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|kv| kv["key"] == "service.name")
                .map(|kv| kv["value"]["stringValue"].as_str().unwrap().to_string())
                .unwrap();
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    assert_eq!(s["traceId"].as_str().unwrap(), id);
                    let parent = s["parentSpanId"].as_str().unwrap_or("").to_string();
                    spans.insert(
                        s["spanId"].as_str().unwrap().to_string(),
                        (
                            parent,
                            s["name"].as_str().unwrap().to_string(),
                            service.clone(),
                        ),
                    );
                }
            }
        }
        let want: BTreeMap<_, _> = t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["span_id"].as_str().unwrap().to_string(),
                    (
                        s["parent_span_id"].as_str().unwrap_or("").to_string(),
                        s["name"].as_str().unwrap().to_string(),
                        s["service"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        assert_eq!(spans, want, "trace {id}");
    }

    // Trace ids are usable as hex strings in SQL; promoted and typed attributes are queryable.
    let first = traces[0]["trace_id"].as_str().unwrap();
    let n = sql_scalar(
        &q,
        &format!("SELECT count(*) FROM spans WHERE trace_id = '{first}'"),
    );
    assert_eq!(
        as_u64(&n),
        traces[0]["spans"].as_array().unwrap().len() as u64
    );
    let errors = sql_scalar(
        &q,
        "SELECT count(*) FROM spans WHERE service_name = 'payment' AND status_code = 2",
    );
    assert_eq!(as_u64(&errors), traces.len().div_ceil(5) as u64);
    let idx = sql_scalar(
        &q,
        &format!(
            "SELECT attributes['order.index']['int'] FROM spans WHERE trace_id = '{first}' AND parent_span_id IS NULL"
        ),
    );
    assert_eq!(idx, Value::from(0));

    // Logs and metrics with the values sent.
    let rows = sql(
        &q,
        "SELECT body, severity_text, service_name, attributes['order.id']['int'] FROM logs",
    )["rows"]
        .clone();
    let got: BTreeSet<(String, String, i64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r[2], "checkout");
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().to_string(),
                r[3].as_i64().unwrap(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, i64)> = sent["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["body"].as_str().unwrap().to_string(),
                l["severity"].as_str().unwrap().to_string(),
                l["order_id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    for method in ["card", "cash"] {
        let v = sql_scalar(
            &q,
            &format!(
                "SELECT max(value_int) FROM metrics WHERE metric_name = 'orders' AND attributes['payment.method']['str'] = '{method}'"
            ),
        );
        assert_eq!(
            v, sent["metrics"]["orders"][method],
            "orders{{method={method}}}"
        );
    }
    let hist = sql(
        &q,
        "SELECT count, sum, metric_type FROM metrics WHERE metric_name = 'order.amount'",
    )["rows"][0]
        .clone();
    assert_eq!(
        as_u64(&hist[0]),
        sent["metrics"]["order_amount_count"].as_u64().unwrap()
    );
    assert!(
        (hist[1].as_f64().unwrap() - sent["metrics"]["order_amount_sum"].as_f64().unwrap()).abs()
            < 1e-6
    );
    assert_eq!(hist[2], "histogram");

    // Independent readers: pyarrow and DuckDB agree on row counts, see the bloom filter and
    // the sort order; every trace is in exactly one collector's files.
    let files: Value = serde_json::from_str(&run_python(
        &python,
        "inspect_parquet.py",
        &[cluster.storage.to_str().unwrap()],
    ))
    .unwrap();
    let mut span_rows = 0;
    let mut owner: HashMap<String, BTreeSet<String>> = HashMap::new();
    for f in files.as_array().unwrap() {
        assert_eq!(f["rows_pyarrow"], f["rows_duckdb"], "{f}");
        let path = f["path"].as_str().unwrap();
        assert!(path.starts_with("tenant=default/signal="), "{path}");
        if path.contains("signal=traces/") {
            span_rows += f["rows_pyarrow"].as_u64().unwrap();
            assert_eq!(f["trace_id_bloom_row_groups"], f["row_groups"], "{f}");
            assert_eq!(f["sorted"], true, "{f}");
            for rg in f["sorting_columns"].as_array().unwrap() {
                assert_eq!(rg, &serde_json::json!(["trace_id", "start_time"]), "{f}");
            }
            assert_eq!(f["kv"]["strata.signal"], "traces");
            let collector = path
                .rsplit('/')
                .next()
                .unwrap()
                .split('-')
                .next()
                .unwrap()
                .to_string();
            for id in f["trace_ids"].as_array().unwrap() {
                owner
                    .entry(id.as_str().unwrap().to_string())
                    .or_default()
                    .insert(collector.clone());
            }
        }
    }
    assert_eq!(span_rows, total_spans as u64);
    assert_eq!(owner.len(), traces.len());
    for (id, collectors) in &owner {
        assert_eq!(
            collectors.len(),
            1,
            "trace {id} is split over {collectors:?}"
        );
    }
    let used: BTreeSet<_> = owner.values().flatten().collect();
    assert_eq!(
        used.len(),
        3,
        "30 traces should reach all three collectors: {used:?}"
    );

    // Bad input, with real clients: the protocol's own errors.
    let bad: Value = serde_json::from_str(&run_python(
        &python,
        "bad_input.py",
        &[&cluster.grpc, &cluster.http, MAX_REQUEST],
    ))
    .unwrap();
    assert_eq!(bad["grpc_malformed"], "INVALID_ARGUMENT", "{bad}");
    assert_eq!(bad["grpc_oversized"], "RESOURCE_EXHAUSTED", "{bad}");
    assert_eq!(bad["grpc_gzip_bomb"], "RESOURCE_EXHAUSTED", "{bad}");
    assert_eq!(bad["grpc_empty"], "OK", "{bad}");
    assert_eq!(bad["http_malformed"]["status"], 400, "{bad}");
    assert_eq!(bad["http_bad_json"]["status"], 400, "{bad}");
    assert_eq!(bad["http_oversized"]["status"], 413, "{bad}");
    assert_eq!(bad["http_gzip_bomb"]["status"], 413, "{bad}");
    assert_eq!(bad["http_bad_gzip"]["status"], 400, "{bad}");
    assert_eq!(bad["http_wrong_type"]["status"], 415, "{bad}");
    assert_eq!(bad["http_bad_tenant"]["status"], 400, "{bad}");
    assert_eq!(bad["http_empty_ok"]["status"], 200, "{bad}");
    let (_, metrics) = get(&format!("{}/metrics", cluster.http));
    assert!(
        metrics.contains("strata_agent_otlp_requests_total{signal=\"traces\",protocol=\"http\",outcome=\"too_large\"}"),
        "{metrics}"
    );
    assert!(cluster.agent.is_running(), "agent died on bad input");
    wait_ready(
        &format!("{}/ready", cluster.http),
        Duration::from_secs(5),
        &mut cluster.agent,
    );
    assert_eq!(
        as_u64(&sql_scalar(&q, "SELECT count(*) FROM spans")),
        total_spans as u64,
        "earlier data intact"
    );

    // Graceful shutdown of every role.
    assert!(
        cluster.agent.terminate(Duration::from_secs(20)),
        "{}",
        cluster.agent.log_text()
    );
    for c in &mut cluster.collectors {
        assert!(c.terminate(Duration::from_secs(20)), "{}", c.log_text());
    }
    assert!(
        cluster.query.terminate(Duration::from_secs(20)),
        "{}",
        cluster.query.log_text()
    );
}
