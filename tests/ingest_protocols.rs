//! The ingest protocols besides OTLP, with their real clients against `strata standalone`:
//! Zipkin v2 (the OpenTelemetry SDK's Zipkin JSON exporter and py_zipkin in JSON and
//! protobuf, read back through the Zipkin query API and compared field by field) and
//! Elasticsearch bulk ingest (the official Python client's bulk helpers, and rsyslog's
//! `omelasticsearch` output shipping a file, read back in SQL),
//! each on the OTLP/HTTP port and on a port of its own; bad requests answered in each
//! protocol's terms and counted.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn with_ports(dir: &std::path::Path, name: &str) -> (Standalone, String, String) {
    let mut s = standalone_with(
        dir,
        name,
        None,
        &[],
        &["--zipkin", "127.0.0.1:0", "--elasticsearch", "127.0.0.1:0"],
    );
    let zipkin = logged_addr(&mut s.proc, "zipkin", Duration::from_secs(10)).expect("zipkin addr");
    let es = logged_addr(&mut s.proc, "elasticsearch", Duration::from_secs(10))
        .expect("elasticsearch addr");
    (s, format!("http://{zipkin}"), format!("http://{es}"))
}

fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn zipkin_clients_round_trip_through_the_zipkin_query_api() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, zipkin, _) = with_ports(dir.path(), "zipkin");
    let out = run_python(
        &python,
        "zipkin_clients.py",
        &[&s.agent_http, &zipkin, &s.query],
    );
    let seen: Value = serde_json::from_str(out.trim()).expect("zipkin_clients.py prints JSON");
    println!("{seen}");
    assert_eq!(seen["py_failures"], serde_json::json!([]), "{seen}");
    for client in ["otel_json", "py_zipkin_json", "py_zipkin_proto"] {
        let r = &seen[client];
        assert!(r["sent"].as_u64().unwrap() >= 2, "{client}: {r}");
        assert_eq!(r["diffs"], serde_json::json!([]), "{client}: {r}");
        assert_eq!(r["matched"], r["sent"], "{client}: {r}");
    }
    let services: Vec<&str> = seen["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for s in ["zk-back", "zk-front", "zk-py-json", "zk-py-proto"] {
        assert!(services.contains(&s), "{services:?}");
    }
    assert_eq!(
        seen["span_names"],
        serde_json::json!(["GET /checkout", "call back", "render"])
    );
    // The error trace, whole (4 spans: root, client, server, render).
    assert_eq!(seen["error_search"], serde_json::json!([4]), "{seen}");
    assert_eq!(seen["name_search"], 1, "{seen}");
    let deps = seen["dependencies"].as_array().unwrap();
    assert!(
        deps.iter().any(|d| d["parent"] == "zk-front"
            && d["child"] == "zk-back"
            && d["callCount"] == 1
            && d["errorCount"] == 1),
        "{deps:?}"
    );
    // The same spans in SQL: the error status and the shared trace.
    let n = sql_scalar(
        &s.query,
        "SELECT count(*) FROM spans WHERE service_name = 'zk-back' AND status_code = 2 \
         AND status_message = 'out of stock'",
    );
    assert_eq!(n, 1);
}

#[test]
fn bad_zipkin_and_bulk_requests_are_refused_in_their_terms_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (s, zipkin, es) = with_ports(dir.path(), "bad-input");
    let url = format!("{}/api/v2/spans", s.agent_http);
    let (code, body) = post_bytes(&url, b"{not json", &[("content-type", "application/json")]);
    assert_eq!(code, 400, "{body}");
    let half = br#"[{"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a2fb4a1d1a96d312","name":"ok","timestamp":1,"duration":1},{"traceId":"zz","id":"1"}]"#;
    let (code, body) = post_bytes(
        &format!("{zipkin}/api/v2/spans"),
        half,
        &[("content-type", "application/json")],
    );
    assert_eq!(code, 400);
    assert!(body.contains("1 of 2 spans rejected"), "{body}");
    let (code, _) = post_bytes(&url, b"x", &[("content-type", "application/x-thrift")]);
    assert_eq!(code, 415);
    let (code, body) = post_bytes(
        &format!("{es}/_bulk"),
        b"{\"upsert\":{}}\n{}\n",
        &[("content-type", "application/x-ndjson")],
    );
    assert_eq!(code, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "illegal_argument_exception", "{v}");
    let (code, _) = post_bytes(
        &format!("{}/elastic/_bulk", s.agent_http),
        b"{\"index\":{\"_index\":\"a\"}}\n[1]\n",
        &[("content-type", "application/x-ndjson")],
    );
    assert_eq!(code, 200);
    eventually(
        Duration::from_secs(20),
        "the valid zipkin span stored",
        || sql_scalar(&s.query, "SELECT count(*) FROM spans WHERE name = 'ok'") == 1,
    );
    let metrics = get(&format!("{}/metrics", s.agent_http)).1;
    let zipkin_invalid = metric(
        &metrics,
        "strata_agent_otlp_requests_total{signal=\"traces\",protocol=\"zipkin\",outcome=\"invalid\"}",
    );
    assert_eq!(zipkin_invalid, 1, "{metrics}");
    let refused = metric(
        &metrics,
        "strata_agent_otlp_requests_total{signal=\"traces\",protocol=\"zipkin\",outcome=\"unsupported_media_type\"}",
    );
    assert_eq!(refused, 1);
    let partial = metric(
        &metrics,
        "strata_agent_otlp_requests_total{signal=\"traces\",protocol=\"zipkin\",outcome=\"partial\"}",
    );
    assert_eq!(partial, 1);
    let invalid_logs = metric(
        &metrics,
        "strata_agent_otlp_refused_items_total{signal=\"logs\",reason=\"invalid\"}",
    );
    assert_eq!(invalid_logs, 1, "{metrics}");
}

#[test]
fn elasticsearch_bulk_clients_ship_logs() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, _, es) = with_ports(dir.path(), "elastic");
    let prefixed = format!("{}/elastic", s.agent_http);
    let out = run_python(&python, "elastic_clients.py", &[&prefixed, &es]);
    let seen: Value = serde_json::from_str(out.trim()).expect("elastic_clients.py prints JSON");
    println!("{seen}");
    assert_eq!(seen["version"], "8.17.0");
    assert_eq!(seen["own_version"], "8.17.0");
    assert_eq!(
        (seen["bulk_ok"].as_u64(), seen["bulk_errors"].as_u64()),
        (Some(1000), Some(0))
    );
    assert_eq!(seen["mixed_ok"], 7);
    assert_eq!(
        seen["mixed_errors"],
        serde_json::json!([
            [400, "document_parsing_exception"],
            [400, "document_parsing_exception"],
            [400, "document_parsing_exception"]
        ])
    );
    assert_eq!(seen["streaming_ok"], 500);
    assert_eq!(seen["index_result"], "created");
    assert_eq!(seen["template"], true);
    let count = |index: &str| {
        sql_scalar(
            &s.query,
            &format!(
                "SELECT count(*) FROM logs WHERE attributes['elasticsearch.index']['str'] = '{index}'"
            ),
        )
        .as_u64()
        .unwrap_or(0)
    };
    eventually(Duration::from_secs(30), "every document stored", || {
        count("logs-shop") == 1000 && count("logs-own") == 500 && count("logs-mixed") == 7
    });
    assert_eq!(count("logs-one"), 1);
    // ECS fields in the log model.
    let v = sql(
        &s.query,
        "SELECT count(*), min(severity_number), min(trace_id), min(host_name), \
                min(attributes['http.response.status_code']['int']), min(time) \
         FROM logs WHERE service_name = 'shop' AND severity_text = 'error' \
           AND attributes['elasticsearch.index']['str'] = 'logs-shop'",
    );
    let row = &v["rows"][0];
    assert_eq!(row[0], 333, "{v}");
    assert_eq!(row[1], 17, "{v}");
    assert_eq!(row[2], "4bf92f3577b34da6a3ce929d0e0e4736", "{v}");
    assert_eq!(row[3], "node-1", "{v}");
    assert_eq!(row[4], 202, "{v}");
    assert!(
        row[5]
            .as_str()
            .unwrap_or("")
            .starts_with("2026-12-06T10:00:02"),
        "{v}"
    );
    let body = sql_scalar(
        &s.query,
        "SELECT body FROM logs WHERE attributes['order_id']['int'] = 7 \
           AND attributes['elasticsearch.index']['str'] = 'logs-shop'",
    );
    assert_eq!(body, "order 7 placed");
}

/// rsyslog tails a file (`imfile`) and ships it with its Elasticsearch output in bulk mode,
/// as a syslog relay would: every line arrives once, with the fields of its template.
#[test]
fn rsyslog_ships_a_file_through_its_elasticsearch_output() {
    let Some(rsyslogd) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, _, es) = with_ports(dir.path(), "rsyslog");
    let port = es.rsplit(':').next().unwrap().to_string();
    let app = dir.path().join("app.log");
    let n = 3_000;
    let lines: String = (0..n).map(|i| format!("request {i:05} served\n")).collect();
    std::fs::write(&app, lines).unwrap();
    let work = dir.path().join("rsyslog-work");
    std::fs::create_dir_all(&work).unwrap();
    let errors = dir.path().join("es-errors.json");
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imfile")
module(load="omelasticsearch")
template(name="ecs" type="list" option.jsonf="on") {{
  property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="message" name="msg" format="jsonf")
  property(outname="log.level" name="syslogseverity-text" format="jsonf")
  constant(outname="service.name" value="relay" format="jsonf")
}}
ruleset(name="ship") {{
  action(type="omelasticsearch" server="127.0.0.1" serverport="{port}" template="ecs"
         searchIndex="logs-rsyslog" bulkmode="on" maxbytes="256k"
         queue.type="linkedlist" queue.size="10000" queue.dequeuebatchsize="500"
         action.resumeretrycount="-1" errorfile="{errors}")
}}
input(type="imfile" File="{app}" Tag="app" ruleset="ship")
"#,
            work = work.display(),
            errors = errors.display(),
            app = app.display(),
        ),
    )
    .unwrap();
    let pid = dir.path().join("rsyslog.pid");
    let conf_arg = conf.display().to_string();
    let pid_arg = pid.display().to_string();
    let mut relay = spawn(
        "rsyslogd",
        dir.path(),
        &rsyslogd,
        &["-n", "-f", &conf_arg, "-i", &pid_arg],
    );
    let stored = || {
        sql(
            &s.query,
            "SELECT count(*), count(DISTINCT body) FROM logs \
             WHERE attributes['elasticsearch.index']['str'] = 'logs-rsyslog'",
        )["rows"][0]
            .clone()
    };
    eventually(
        Duration::from_secs(60),
        "every line shipped by rsyslog",
        || {
            assert!(relay.is_running(), "rsyslogd stopped: {}", relay.log_text());
            stored()[1].as_u64() == Some(n)
        },
    );
    assert_eq!(stored(), serde_json::json!([n, n]));
    assert!(
        !errors.exists(),
        "rsyslog wrote errors: {:?}",
        std::fs::read_to_string(&errors)
    );
    let v = sql(
        &s.query,
        "SELECT min(body), max(body), min(service_name), min(severity_text) FROM logs \
         WHERE attributes['elasticsearch.index']['str'] = 'logs-rsyslog'",
    );
    assert_eq!(
        v["rows"][0],
        serde_json::json!([
            "request 00000 served",
            "request 02999 served",
            "relay",
            "notice"
        ]),
        "{v}"
    );
    relay.terminate(Duration::from_secs(5));
}

/// A shared span (Zipkin's client and server halves of one id) is two spans in the trace and
/// one call between the services.
#[test]
fn zipkin_shared_spans_stay_two_and_count_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let (s, zipkin, _) = with_ports(dir.path(), "shared");
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let trace = "5af7183fb1d4cf5f";
    let span = |id: &str, parent: &str, kind: &str, service: &str, shared: bool| {
        serde_json::json!({
            "traceId": trace, "id": id, "parentId": parent, "kind": kind, "name": "op",
            "timestamp": now_us, "duration": 100, "shared": shared,
            "localEndpoint": { "serviceName": service },
        })
    };
    let root = serde_json::json!({
        "traceId": trace, "id": "00000000000000a1", "kind": "SERVER", "name": "root",
        "timestamp": now_us, "duration": 500, "localEndpoint": { "serviceName": "zs-a" },
    });
    let body = serde_json::json!([
        root,
        span(
            "00000000000000b2",
            "00000000000000a1",
            "CLIENT",
            "zs-a",
            false
        ),
        span(
            "00000000000000b2",
            "00000000000000a1",
            "SERVER",
            "zs-b",
            true
        ),
        span(
            "00000000000000c3",
            "00000000000000b2",
            "CLIENT",
            "zs-b",
            false
        ),
    ]);
    let (code, text) = post_bytes(
        &format!("{zipkin}/api/v2/spans"),
        body.to_string().as_bytes(),
        &[("content-type", "application/json")],
    );
    assert_eq!(code, 202, "{text}");
    let url = format!("{}/zipkin/api/v2/trace/{trace}", s.query);
    eventually(Duration::from_secs(20), "the trace stored", || {
        let (code, body) = get(&url);
        code == 200
            && serde_json::from_str::<Value>(&body)
                .is_ok_and(|v| v.as_array().map(Vec::len) == Some(4))
    });
    let got: Value = serde_json::from_str(&get(&url).1).unwrap();
    let shared: Vec<&Value> = got
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"] == "00000000000000b2")
        .collect();
    assert_eq!(shared.len(), 2, "{got}");
    assert!(
        shared
            .iter()
            .any(|s| s["shared"] == true && s["kind"] == "SERVER"),
        "{got}"
    );
    let end = now_us / 1000 + 60_000;
    let (_, deps) = get(&format!(
        "{}/zipkin/api/v2/dependencies?endTs={end}&lookback=3600000",
        s.query
    ));
    let deps: Value = serde_json::from_str(&deps).unwrap();
    assert_eq!(
        deps,
        serde_json::json!([{ "parent": "zs-a", "child": "zs-b", "callCount": 1, "errorCount": 0 }]),
        "{deps}"
    );
}
