//! `strata standalone` end to end, with no Python needed: OTLP/HTTP JSON in, trace lookup and
//! SQL (JSON, Arrow IPC, CSV) out, tenants kept apart, partial success, read-only SQL, and a
//! graceful shutdown that writes what is still buffered.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";

fn span(span_id: &str, parent: &str, name: &str, start: u64) -> Value {
    json!({
        "traceId": TRACE, "spanId": span_id, "parentSpanId": parent, "name": name, "kind": 2,
        "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 1_500_000).to_string(),
        "attributes": [
            {"key": "http.request.method", "value": {"stringValue": "GET"}},
            {"key": "http.response.status_code", "value": {"intValue": "200"}},
            {"key": "retry", "value": {"boolValue": true}},
            {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}}
        ],
        "events": [{"timeUnixNano": (start + 10).to_string(), "name": "cache miss"}],
        "status": {"code": 1}
    })
}

fn request(service: &str, spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test", "version": "1"}, "spans": spans}]
    }]})
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn standalone_ingests_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let [grpc, http, query, flight, chttp] = free_ports();
    let mut p = strata(
        "standalone",
        dir.path(),
        &[
            "standalone",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--otlp-grpc",
            &format!("127.0.0.1:{grpc}"),
            "--otlp-http",
            &format!("127.0.0.1:{http}"),
            "--http",
            &format!("127.0.0.1:{query}"),
            "--flight",
            &format!("127.0.0.1:{flight}"),
            "--collector-http",
            &format!("127.0.0.1:{chttp}"),
        ],
        &[
            ("STRATA_COLLECTOR__FLUSH_MAX_AGE_MS", "200"),
            ("STRATA_AGENT__BATCH_MAX_AGE_MS", "50"),
            ("STRATA_COLLECTOR__SPAN_METRICS__INTERVAL_MS", "200"),
        ],
    );
    let q = format!("http://127.0.0.1:{query}");
    let otlp = format!("http://127.0.0.1:{http}");
    wait_ready(&format!("{otlp}/ready"), Duration::from_secs(30), &mut p);
    wait_ready(&format!("{q}/ready"), Duration::from_secs(30), &mut p);

    let t0 = now_nanos();
    let root = "eee19b7ec3c1b174";
    let (s, body) = post_json(
        &format!("{otlp}/v1/traces"),
        &request("frontend", vec![span(root, "", "GET /", t0)]),
        &[],
    );
    assert_eq!((s, body.as_str()), (200, "{}"));
    // Partial success: the span with a 2-byte trace id is rejected, the other one accepted.
    let mut bad = span("0000000000000001", "", "bad", t0);
    bad["traceId"] = json!("abcd");
    let (s, body) = post_json(
        &format!("{otlp}/v1/traces"),
        &request(
            "backend",
            vec![span("eee19b7ec3c1b175", root, "SELECT", t0 + 100), bad],
        ),
        &[],
    );
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], json!("1"), "{body}");
    // Another tenant.
    let (s, _) = post_json(
        &format!("{otlp}/v1/traces"),
        &request("other", vec![span("eee19b7ec3c1b176", "", "x", t0)]),
        &[("X-Scope-OrgID", "acme")],
    );
    assert_eq!(s, 200);

    eventually(Duration::from_secs(30), "trace visible", || {
        get(&format!("{q}/api/traces/{TRACE}")).0 == 200
    });
    eventually(Duration::from_secs(30), "both spans visible", || {
        sql_scalar(
            &q,
            &format!("SELECT count(*) FROM spans WHERE trace_id = '{TRACE}'"),
        ) == json!(2)
    });
    // Tempo search finds the trace by its child and reports the true root.
    let (s, body) = get(&format!(
        "{q}/api/search?q=%7Bresource.service.name%3D%22backend%22%7D&start={}&end={}",
        t0 / 1_000_000_000 - 60,
        t0 / 1_000_000_000 + 60
    ));
    assert_eq!(s, 200, "{body}");
    let found: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found["traces"][0]["traceID"], TRACE, "{body}");
    assert_eq!(found["traces"][0]["rootServiceName"], "frontend", "{body}");
    // The collector derived RED metrics from the stored spans; PromQL reads them.
    eventually(Duration::from_secs(30), "span metrics queryable", || {
        let (_, body) = get(&format!(
            "{q}/api/v1/query?query=sum%20by%20(service)(traces_spanmetrics_calls_total)"
        ));
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        result.len() == 2 && result.iter().all(|r| r["value"][1] == json!("1"))
    });
    let (_, body) = get(&format!("{q}/api/traces/{}", TRACE.to_uppercase()));
    let trace: Value = serde_json::from_str(&body).unwrap();
    let rs = trace["batches"].as_array().unwrap();
    assert_eq!(rs.len(), 2, "{body}");
    let all: Vec<&Value> = rs
        .iter()
        .flat_map(|r| r["scopeSpans"][0]["spans"].as_array().unwrap())
        .collect();
    let child = all.iter().find(|s| s["name"] == "SELECT").unwrap();
    assert_eq!(child["parentSpanId"], root);
    assert_eq!(child["traceId"], TRACE);
    assert_eq!(child["events"][0]["name"], "cache miss");
    assert_eq!(
        child["attributes"][3]["value"]["arrayValue"]["values"][1]["intValue"],
        json!("1"),
        "typed nested attribute kept: {child}"
    );

    // Promoted columns and typed attributes in SQL.
    let row = sql(
        &q,
        &format!("SELECT service_name, http_method, attributes['http.response.status_code']['int'], attributes['retry']['bool'], duration_nanos FROM spans WHERE span_id = '{root}'"),
    )["rows"][0]
        .clone();
    assert_eq!(row, json!(["frontend", "GET", 200, true, 1_500_000]));

    // Tenants are apart.
    assert_eq!(
        sql_scalar(
            &q,
            "SELECT count(*) FROM spans WHERE service_name = 'other'"
        ),
        json!(0)
    );
    let (s, body) = post_json(
        &format!("{q}/api/v1/sql"),
        &json!({"query": "SELECT count(*) AS n FROM spans"}),
        &[("X-Scope-OrgID", "acme")],
    );
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["rows"][0][0],
        json!(1)
    );

    // Other answer formats.
    let r = ureq::post(&format!("{q}/api/v1/sql"))
        .set("Accept", "application/vnd.apache.arrow.stream")
        .send_json(json!({"query": "SELECT span_id FROM spans ORDER BY span_id"}))
        .unwrap();
    assert_eq!(r.content_type(), "application/vnd.apache.arrow.stream");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut bytes).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0xff, 0xff, 0xff, 0xff],
        "Arrow IPC stream continuation marker"
    );
    let csv = ureq::post(&format!("{q}/api/v1/sql"))
        .set("Accept", "text/csv")
        .send_json(json!({"query": "SELECT span_id, name FROM spans ORDER BY span_id"}))
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(
        csv,
        format!("span_id,name\n{root},GET /\neee19b7ec3c1b175,SELECT\n")
    );

    // Bad queries: 400 with the error text; the service keeps serving.
    for bad in [
        "SELEC 1",
        "SELECT nope FROM spans",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO spans (name) VALUES ('x')",
        "COPY (SELECT 1) TO 'out.parquet'",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/'",
        "SELECT * FROM 'Cargo.toml'",
        "SET datafusion.execution.batch_size = 1",
        "DROP TABLE spans",
    ] {
        let (s, body) = post_json(&format!("{q}/api/v1/sql"), &json!({"query": bad}), &[]);
        assert_eq!(s, 400, "{bad}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "error");
        assert!(!v["error"].as_str().unwrap().is_empty(), "{bad}");
    }
    let (s, _) = post_json(&format!("{q}/api/v1/sql"), &json!({"sql": 1}), &[]);
    assert_eq!(s, 400);
    assert_eq!(get(&format!("{q}/api/traces/not-a-trace")).0, 400);
    assert_eq!(get(&format!("{q}/api/traces/{}", "1".repeat(32))).0, 404);
    let (_, metrics) = get(&format!("{q}/metrics"));
    assert!(metrics.contains("strata_query_requests_total"), "{metrics}");

    // Data sent right before SIGTERM is written by the graceful shutdown.
    let late = "00000000000000000000000000000abc";
    let mut s2 = span("00000000000000aa", "", "late", t0);
    s2["traceId"] = json!(late);
    assert_eq!(
        post_json(
            &format!("{otlp}/v1/traces"),
            &request("late", vec![s2]),
            &[]
        )
        .0,
        200
    );
    assert!(p.terminate(Duration::from_secs(30)), "{}", p.log_text());
    // A query service alone over the same storage sees it.
    let q2port = free_port();
    let storage = dir.path().join("data/storage");
    let mut q2 = strata(
        "query-after",
        dir.path(),
        &[
            "query",
            "--storage",
            storage.to_str().unwrap(),
            "--http",
            &format!("127.0.0.1:{q2port}"),
        ],
        &[],
    );
    let q2url = format!("http://127.0.0.1:{q2port}");
    wait_ready(&format!("{q2url}/ready"), Duration::from_secs(30), &mut q2);
    assert_eq!(
        get(&format!("{q2url}/api/traces/{late}")).0,
        200,
        "span accepted before shutdown was not persisted"
    );
    assert!(q2.terminate(Duration::from_secs(10)));
}

#[test]
fn no_subcommand_prints_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for role in ["standalone", "agent", "collector", "query"] {
        assert!(text.contains(role), "{text}");
    }
}
