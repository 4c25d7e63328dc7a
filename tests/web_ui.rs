//! Strata's web UI in a real browser: headless Chromium (Debian's `chromium`, driven by
//! Playwright from the interop venv) searches a three-service trace, opens it and reads the
//! waterfall; every span must be shown under its parent. Also the span details, the trace's
//! log records, the services page (RED figures from span metrics) and the SQL console.
//!
//! Needs `STRATA_TEST_PYTHON` and `STRATA_TEST_CHROMIUM` (both set by `scripts/test`); skipped,
//! loudly, without them unless `STRATA_REQUIRE_BROWSER=1`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const TRACE: &str = "7be2a9c1d8f04e6b9a3c5d7e9f1a2b3c";
const OTHER: &str = "11112222333344445555666677778888";

/// Span id, parent id, service, name, kind, start offset ms, duration ms, failed.
type SpanRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i32,
    u64,
    u64,
    bool,
);

const SPANS: [SpanRow; 6] = [
    (
        "a000000000000001",
        "",
        "frontend",
        "GET /checkout",
        2,
        0,
        120,
        true,
    ),
    (
        "a000000000000002",
        "a000000000000001",
        "frontend",
        "POST /checkout",
        3,
        5,
        100,
        true,
    ),
    (
        "b000000000000003",
        "a000000000000002",
        "checkout",
        "POST /checkout",
        2,
        8,
        95,
        true,
    ),
    (
        "b000000000000004",
        "b000000000000003",
        "checkout",
        "reserve inventory",
        1,
        10,
        6,
        false,
    ),
    (
        "b000000000000005",
        "b000000000000003",
        "checkout",
        "POST /charge",
        3,
        20,
        80,
        true,
    ),
    (
        "c000000000000006",
        "b000000000000005",
        "payment",
        "POST /charge",
        2,
        22,
        75,
        true,
    ),
];

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn traces(t0: u64) -> Value {
    let mut by_service: Vec<(&str, Vec<Value>)> = Vec::new();
    for (id, parent, service, name, kind, start, dur, error) in SPANS {
        let start = t0 + start * 1_000_000;
        let mut span = json!({
            "traceId": TRACE, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
            "startTimeUnixNano": start.to_string(),
            "endTimeUnixNano": (start + dur * 1_000_000).to_string(),
            "attributes": [{"key": "order.id", "value": {"intValue": "33"}}],
        });
        if error {
            span["status"] = json!({"code": 2, "message": "card declined"});
        }
        if id.starts_with('c') {
            span["events"] = json!([{"timeUnixNano": (start + 1000).to_string(), "name": "exception",
                "attributes": [{"key": "exception.type", "value": {"stringValue": "CardDeclined"}}]}]);
        }
        match by_service.iter_mut().find(|(s, _)| *s == service) {
            Some((_, spans)) => spans.push(span),
            None => by_service.push((service, vec![span])),
        }
    }
    // An unrelated, later trace of the frontend, so the result list has two entries.
    by_service[0].1.push(json!({
        "traceId": OTHER, "spanId": "d000000000000001", "name": "GET /home", "kind": 2,
        "startTimeUnixNano": (t0 + 1_000_000_000).to_string(),
        "endTimeUnixNano": (t0 + 1_010_000_000).to_string(),
    }));
    json!({"resourceSpans": by_service.into_iter().map(|(service, spans)| json!({
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "demo"}, "spans": spans}],
    })).collect::<Vec<_>>()})
}

fn logs(t0: u64) -> Value {
    json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "payment"}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": (t0 + 30_000_000).to_string(), "severityNumber": 17, "severityText": "ERROR",
            "body": {"stringValue": "payment failed for order 33: card declined"},
            "traceId": TRACE, "spanId": "c000000000000006",
        }]}],
    }]})
}

#[test]
fn waterfall_shows_every_span_under_its_parent() {
    let Some(python) = python() else { return };
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(
        dir.path(),
        "web-ui",
        None,
        &[
            ("STRATA_AGENT__BATCH_MAX_AGE_MS", "50"),
            ("STRATA_COLLECTOR__SPAN_METRICS__INTERVAL_MS", "200"),
        ],
    );
    let t0 = now_nanos() - 60_000_000_000;
    let (status, body) = post_json(&format!("{}/v1/traces", s.agent_http), &traces(t0), &[]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_json(&format!("{}/v1/logs", s.agent_http), &logs(t0), &[]);
    assert_eq!(status, 200, "{body}");
    eventually(
        Duration::from_secs(30),
        "spans, logs and span metrics stored",
        || {
            sql_scalar(&s.query, "SELECT count(*) FROM spans") == json!(7)
                && sql_scalar(&s.query, "SELECT count(*) FROM logs") == json!(1)
                && sql_scalar(
                    &s.query,
                    "SELECT count(DISTINCT attributes['service']['str']) FROM metrics \
                 WHERE metric_name = 'traces_spanmetrics_calls_total'",
                ) == json!(3)
        },
    );
    // The page and its assets come from the binary, with a same-origin policy.
    let page = ureq::get(&format!("{}/", s.query)).call().unwrap();
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'self'")
    );

    let chromium = chromium.display().to_string();
    let out = run_python(
        &python,
        "ui_waterfall.py",
        &[&s.query, &chromium, TRACE, "frontend"],
    );
    let ui: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(ui["errors"], json!([]), "the page logged errors: {ui}");
    assert_eq!(ui["results"], 2, "{ui}");
    assert_eq!(ui["title"], "frontend: GET /checkout");

    let rows = ui["rows"].as_array().unwrap();
    assert_eq!(rows.len(), SPANS.len(), "every span has a row: {ui}");
    let expected: HashMap<&str, (&str, &str, &str)> = SPANS
        .iter()
        .map(|(id, parent, service, name, ..)| (*id, (*parent, *service, *name)))
        .collect();
    let mut seen: HashMap<String, i64> = HashMap::new();
    for row in rows {
        let id = row["id"].as_str().unwrap();
        let (parent, service, name) = expected[id];
        assert_eq!(
            (row["service"].as_str(), row["name"].as_str()),
            (Some(service), Some(name))
        );
        assert_eq!(row["parent"], parent, "{row}");
        let depth = row["depth"].as_i64().unwrap();
        if parent.is_empty() {
            assert_eq!(depth, 0, "{row}");
        } else {
            // Under its parent: the parent's row came first, one level up, and the label is
            // indented further.
            let parent_depth = seen
                .get(parent)
                .unwrap_or_else(|| panic!("{id} is shown before its parent {parent}"));
            assert_eq!(depth, parent_depth + 1, "{row}");
        }
        assert_eq!(
            row["indent"].as_f64().unwrap(),
            depth as f64 * 16.0,
            "{row}"
        );
        assert!(row["bar"].as_f64().unwrap() > 0.0, "a timing bar: {row}");
        seen.insert(id.to_string(), depth);
    }
    let order: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        [
            "a000000000000001",
            "a000000000000002",
            "b000000000000003",
            "b000000000000004",
            "b000000000000005",
            "c000000000000006"
        ],
        "children follow their parent, by start time"
    );
    let details = ui["details"].as_str().unwrap();
    for text in [
        "payment",
        "card declined",
        "order.id",
        "exception",
        "CardDeclined",
    ] {
        assert!(details.contains(text), "details show {text:?}: {details}");
    }
    assert!(
        ui["logs"]
            .as_str()
            .unwrap()
            .contains("payment failed for order 33"),
        "{ui}"
    );
    assert_eq!(
        ui["services"],
        json!(["checkout", "frontend", "payment"]),
        "{ui}"
    );
    assert!(ui["sql_rows"].as_u64().unwrap() >= 3, "{ui}");
}
