//! Per-tenant limits end to end on `strata standalone --limits-file`: ingest rates answered
//! with 429 / `RESOURCE_EXHAUSTED` and the wait, active series and attribute value length
//! refused per item, query slots, time, memory (everything a query allocates, scalar functions
//! included) and answer size; one tenant at its limit does not hold up another; a changed file
//! takes effect on SIGHUP; every refusal is counted by tenant and reason.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const LIMITS: &str = r#"
[defaults]
max_concurrent_queries = 8

[tenants.flood]
ingest_rows_per_second = 10
ingest_burst_rows = 100

[tenants.series]
max_active_series = 3

[tenants.small]
max_attribute_value_bytes = 64
max_query_memory_bytes = 100_000_000
max_answer_bytes = 10_000

[tenants.one]
max_concurrent_queries = 1
max_query_seconds = 3
"#;

/// (status, body, Retry-After) of an OTLP/JSON export for `tenant`.
fn export(base: &str, path: &str, tenant: &str, body: &Value) -> (u16, String, Option<String>) {
    let req = ureq::post(&format!("{base}{path}"))
        .timeout(Duration::from_secs(30))
        .set("x-scope-orgid", tenant);
    let r = match req.send_json(body.clone()) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {path}: {e}"),
    };
    let retry = r.header("retry-after").map(str::to_string);
    (r.status(), r.into_string().unwrap_or_default(), retry)
}

fn query_as(base: &str, tenant: &str, sql: &str) -> (u16, Value) {
    let (s, body) = post_json(
        &format!("{base}/api/v1/sql"),
        &json!({ "query": sql }),
        &[("x-scope-orgid", tenant)],
    );
    (
        s,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// Gauges of `series` points with distinct label values `first..first + n`.
fn gauges(first: usize, n: usize) -> Value {
    let points: Vec<Value> = (first..first + n)
        .map(|i| {
            json!({"asDouble": 1.0, "timeUnixNano": "1700000000000000000",
                   "attributes": [{"key": "k", "value": {"stringValue": format!("v{i}")}}]})
        })
        .collect();
    json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "g", "gauge": {"dataPoints": points}}]}]}]})
}

/// The value of the first sample line of `name` with all of `labels`, or 0.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn peak_rss(proc: &Proc) -> u64 {
    let pid = proc.pid().unwrap();
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap()
        * 1024
}

fn write_limits(dir: &Path, text: &str) -> String {
    let path = dir.join("limits.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn tenants_are_held_to_their_limits_and_only_to_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let limits = write_limits(dir.path(), LIMITS);
    let s = standalone_with(dir.path(), "limits", None, &[], &["--limits-file", &limits]);
    let traces = "/v1/traces";

    // Rate: 100 rows at once, then 10 a second. The third request of 50 waits ~5 s.
    for i in 0..2 {
        let (st, body, _) = export(
            &s.agent_http,
            traces,
            "flood",
            &spans_request(i * 50, "f", 0),
        );
        assert_eq!(st, 200, "{body}");
    }
    let (st, body, retry) = export(&s.agent_http, traces, "flood", &spans_request(100, "f", 0));
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("ingest rate"), "{body}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((4..=6).contains(&retry), "Retry-After {retry}");
    // Another tenant is not held up by the flooding one.
    let t0 = Instant::now();
    for i in 0..20 {
        let (st, body, _) = export(
            &s.agent_http,
            traces,
            "calm",
            &spans_request(i * 50, "c", 0),
        );
        assert_eq!(st, 200, "{body}");
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

    // Series: three may be active; points of a fourth and fifth are refused, known ones not.
    let metrics = "/v1/metrics";
    let (st, body, _) = export(&s.agent_http, metrics, "series", &gauges(0, 5));
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], "2", "{body}");
    assert!(body.contains("active series"), "{body}");
    let (_, body, _) = export(&s.agent_http, metrics, "series", &gauges(0, 3));
    assert_eq!(body, "{}");

    // Attribute values: a span carrying a 128-byte value is refused, the tenant's others stored.
    let (st, body, _) = export(&s.agent_http, traces, "small", &spans_request(0, "s", 8));
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "50", "{body}");
    let (_, body, _) = export(&s.agent_http, traces, "small", &spans_request(50, "s", 0));
    assert_eq!(body, "{}");
    eventually(Duration::from_secs(20), "small's spans stored", || {
        query_as(&s.query, "small", "SELECT count(*) FROM spans").1["rows"][0][0] == 50
    });
    eventually(Duration::from_secs(20), "calm's spans stored", || {
        query_as(&s.query, "calm", "SELECT count(*) FROM spans").1["rows"][0][0] == 1000
    });

    // A scalar function that would blow up past the query's memory (100 MB for `small`) is
    // stopped before it allocates, and so is everything else a query allocates: an aggregate
    // growing past 100 MB.
    let before = peak_rss(&s.proc);
    let (st, v) = query_as(
        &s.query,
        "small",
        "SELECT repeat(name, 100000000) FROM spans LIMIT 1",
    );
    assert_eq!(st, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("repeat()"), "{v}");
    let (st, v) = query_as(
        &s.query,
        "small",
        "SELECT length(string_agg(CAST(value AS VARCHAR), ',')) FROM generate_series(1, 40000000)",
    );
    assert_eq!(st, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("memory"), "{v}");
    let grown = peak_rss(&s.proc).saturating_sub(before);
    assert!(grown < 300 << 20, "peak RSS grew by {} MiB", grown >> 20);
    // Under the node's default memory (1 GiB) the 200 MB row is made, and the answer's size
    // limit (64 MiB) keeps it from being sent; the query stays within its memory.
    let (st, v) = query_as(
        &s.query,
        "calm",
        "SELECT repeat(name, 100000000) FROM spans LIMIT 1",
    );
    assert_eq!(st, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("answer"), "{v}");
    let grown = peak_rss(&s.proc).saturating_sub(before);
    assert!(grown < 1200 << 20, "peak RSS grew by {} MiB", grown >> 20);
    // The same queries within bounds still answer.
    let (st, v) = query_as(
        &s.query,
        "calm",
        "SELECT length(repeat(name, 1000)) FROM spans LIMIT 1",
    );
    assert_eq!((st, v["rows"][0][0].clone()), (200, json!(2000)), "{v}");

    // Answer size: 10 kB for `small`.
    let (st, v) = query_as(&s.query, "small", "SELECT * FROM generate_series(1, 5000)");
    assert_eq!(st, 413, "{v}");
    let (st, _) = query_as(&s.query, "calm", "SELECT * FROM generate_series(1, 5000)");
    assert_eq!(st, 200);

    // Query slots and time: `one` runs one query at a time, for at most 3 s.
    let spawn_slow = || {
        let base = s.query.clone();
        std::thread::spawn(move || {
            query_as(
                &base,
                "one",
                "SELECT count(*) FROM generate_series(1, 100000000000) a",
            )
        })
    };
    let mut slow = Some(spawn_slow());
    eventually(
        Duration::from_secs(10),
        "the slow query to hold the slot",
        || {
            // A probe can take the slot first, and the slow query is then the one refused:
            // send it again.
            if slow.as_ref().is_some_and(|h| h.is_finished()) {
                let (st, v) = slow.take().unwrap().join().unwrap();
                assert_eq!(st, 429, "the slow query ended early: {v}");
                slow = Some(spawn_slow());
                return false;
            }
            query_as(&s.query, "one", "SELECT 1").0 == 429
        },
    );
    // ... while other tenants' queries go on.
    assert_eq!(query_as(&s.query, "calm", "SELECT 1").0, 200);
    let (st, v) = slow.take().unwrap().join().unwrap();
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["errorType"], "timeout", "{v}");
    assert_eq!(query_as(&s.query, "one", "SELECT 1").0, 200);

    // A new file on SIGHUP: `flood` may now send a lot; a broken file changes nothing.
    write_limits(
        dir.path(),
        "[tenants.flood]\ningest_rows_per_second = 100000\n",
    );
    s.proc.signal("HUP");
    eventually(Duration::from_secs(10), "the new limits", || {
        export(&s.agent_http, traces, "flood", &spans_request(200, "f", 0)).0 == 200
    });
    write_limits(
        dir.path(),
        "[tenants.flood]\ningest_rows_per_second = \"lots\"\n",
    );
    s.proc.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    let (st, _, _) = export(&s.agent_http, traces, "flood", &spans_request(250, "f", 0));
    assert_eq!(st, 200);

    // Every refusal is counted by tenant and reason.
    let (_, agent) = get(&format!("{}/metrics", s.agent_http));
    let refused = "strata_agent_limits_refused_requests_total";
    assert!(
        sample(
            &agent,
            refused,
            &["tenant=\"flood\"", "reason=\"rate_rows\""]
        ) >= 1.0,
        "{agent}"
    );
    let items = "strata_agent_limits_refused_items_total";
    assert_eq!(
        sample(&agent, items, &["tenant=\"series\"", "reason=\"series\""]),
        2.0
    );
    assert_eq!(
        sample(
            &agent,
            items,
            &["tenant=\"small\"", "reason=\"value_length\""]
        ),
        50.0
    );
    assert!(
        sample(
            &agent,
            "strata_agent_limits_reloads_total",
            &["outcome=\"failed\""]
        ) >= 1.0
    );
    let (_, query) = get(&format!("{}/metrics", s.query));
    let refused = "strata_query_limits_refused_requests_total";
    for (tenant, reason) in [
        ("calm", "answer_size"),
        ("small", "query_memory"),
        ("small", "answer_size"),
        ("one", "concurrent_queries"),
        ("one", "query_time"),
    ] {
        let labels = [
            format!("tenant=\"{tenant}\""),
            format!("reason=\"{reason}\""),
        ];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert!(
            sample(&query, refused, &labels) >= 1.0,
            "{tenant} {reason}:\n{query}"
        );
    }
}
