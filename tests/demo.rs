//! The demo (`deploy/demo/run.py`: frontend -> checkout -> payment instrumented with the
//! OpenTelemetry Python SDK, each with its own agent) against this build, then:
//! the Grafana provisioning and every dashboard query (`tests/python/check_dashboards.py`),
//! and the trace APIs on what the demo sent: one request followed across three services,
//! errors found by TraceQL with their true root, Jaeger's dependencies, and the log records
//! that carry the trace's id.
//!
//! Needs the interop venv (`STRATA_TEST_PYTHON`, installed by `scripts/test`); skipped, loudly,
//! without it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::Value;

const ORDERS: usize = 40;

#[test]
fn demo_dashboards_and_trace_apis() {
    let Some(python) = python() else { return };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(&python)
        .arg(root.join("deploy/demo/run.py"))
        .args(["--strata", env!("CARGO_BIN_EXE_strata")])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--requests", &ORDERS.to_string(), "--hold", "600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo");
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready: Value = match rx.recv_timeout(Duration::from_secs(420)) {
        Ok(line) => serde_json::from_str(&line).expect("the demo's ready line is JSON"),
        Err(_) => {
            let _ = demo.kill();
            for name in [
                "collector",
                "query",
                "agent-frontend",
                "frontend",
                "payment",
            ] {
                let log = std::fs::read_to_string(dir.path().join(format!("{name}.log")))
                    .unwrap_or_default();
                eprintln!("--- {name}.log (tail)\n{}", tail(&log, 30));
            }
            panic!("the demo did not get ready");
        }
    };
    let q = ready["query"].as_str().unwrap().to_string();
    assert_eq!(
        ready["failed"],
        (ORDERS / 10) as u64,
        "every 10th order fails: {ready}"
    );

    let out = Command::new(&python)
        .arg(root.join("tests/python/check_dashboards.py"))
        .args(["--query", &q, "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "dashboard check failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Failed orders: TraceQL finds them by the payment span; the root is the frontend's.
    let (s, body) = get(&format!(
        "{q}/api/search?q=%7B%20resource.service.name%20%3D%20%22payment%22%20%26%26%20status%20%3D%20error%20%7D&limit=100"
    ));
    assert_eq!(s, 200, "{body}");
    let found: Value = serde_json::from_str(&body).unwrap();
    let traces = found["traces"].as_array().unwrap();
    assert_eq!(traces.len(), ORDERS / 10, "{body}");
    for t in traces {
        assert_eq!(t["rootServiceName"], "frontend", "{t}");
        assert_eq!(t["rootTraceName"], "GET /checkout", "{t}");
        assert_eq!(t["serviceStats"].as_object().unwrap().len(), 3, "{t}");
    }
    // One failed request, followed across the three services.
    let id = traces[0]["traceID"].as_str().unwrap();
    let (s, body) = get(&format!("{q}/jaeger/api/traces/{id}"));
    assert_eq!(s, 200, "{body}");
    let jaeger: Value = serde_json::from_str(&body).unwrap();
    let trace = &jaeger["data"][0];
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 6, "{body}");
    let by_id: std::collections::HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["spanID"].as_str().unwrap(), s))
        .collect();
    let service = |s: &Value| {
        trace["processes"][s["processID"].as_str().unwrap()]["serviceName"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut chain = Vec::new();
    let mut span = spans.iter().find(|s| service(s) == "payment").unwrap();
    loop {
        chain.push(format!(
            "{}:{}",
            service(span),
            span["operationName"].as_str().unwrap()
        ));
        match span["references"].as_array().and_then(|r| r.first()) {
            Some(r) => span = by_id[r["spanID"].as_str().unwrap()],
            None => break,
        }
    }
    assert_eq!(
        chain,
        [
            "payment:POST /charge",
            "checkout:POST /charge",
            "checkout:POST /checkout",
            "frontend:POST /checkout",
            "frontend:GET /checkout"
        ]
    );
    // The services' log records carry the trace id.
    let logs = sql_scalar(
        &q,
        &format!("SELECT count(DISTINCT service_name) FROM logs WHERE trace_id = '{id}'"),
    );
    assert_eq!(logs, serde_json::json!(3), "log records of trace {id}");

    let (_, body) = get(&format!("{q}/jaeger/api/dependencies"));
    let deps: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        deps["data"],
        serde_json::json!([
            {"parent": "checkout", "child": "payment", "callCount": ORDERS},
            {"parent": "frontend", "child": "checkout", "callCount": ORDERS},
        ])
    );

    drop(demo.stdin.take());
    let stopped = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(demo.try_wait(), Ok(Some(_)))
    });
    if !stopped {
        let _ = demo.kill();
    }
    assert!(stopped, "the demo stops when its input closes");
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
