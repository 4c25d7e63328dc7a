//! The Tempo and Jaeger APIs over Parquet files written the collector's way: three services,
//! one trace spread over two collectors' files and two hour partitions.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Any};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::Value;
use strata_query::api::tempo::{TempoTrace, TraceByIdResponse};
use strata_query::{QueryConfig, app};
use strata_schema::Signal;
use strata_storage::format::{ParquetOptions, encode};
use strata_storage::layout::{self, HOUR_NANOS};
use tower::ServiceExt;

const CHECKOUT: &str = "0af7651916cd43dd8448eb211c80319c";
const HOME: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const MS: i64 = 1_000_000;

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

struct S {
    trace: &'static str,
    id: u64,
    parent: u64,
    service: &'static str,
    name: &'static str,
    kind: i32,
    start: i64,
    dur: i64,
    error: bool,
    status_code: i64,
}

fn span(s: &S) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", Any::StringValue(s.service.into())),
                kv("host.name", Any::StringValue("node-1".into())),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: hex::decode(s.trace).unwrap(),
                span_id: s.id.to_be_bytes().to_vec(),
                parent_span_id: if s.parent == 0 {
                    vec![]
                } else {
                    s.parent.to_be_bytes().to_vec()
                },
                name: s.name.into(),
                kind: s.kind,
                start_time_unix_nano: s.start as u64,
                end_time_unix_nano: (s.start + s.dur) as u64,
                attributes: vec![
                    kv("http.status_code", Any::IntValue(s.status_code)),
                    kv("http.route", Any::StringValue(s.name.into())),
                ],
                status: s.error.then(|| Status {
                    code: 2,
                    message: "card declined".into(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Writes `spans` as one Parquet file per hour partition, named for `collector`.
fn write(dir: &std::path::Path, collector: &str, spans: &[S]) {
    let mut by_hour: std::collections::BTreeMap<i64, Vec<ResourceSpans>> = Default::default();
    for s in spans {
        by_hour
            .entry(s.start / HOUR_NANOS)
            .or_default()
            .push(span(s));
    }
    for (hour, rs) in by_hour {
        let batch = strata_schema::traces::to_batch(&rs).unwrap();
        let (bytes, _) = encode(
            Signal::Traces,
            &[batch],
            Vec::new(),
            ParquetOptions {
                row_group_rows: 1024,
                zstd_level: 1,
            },
        )
        .unwrap();
        let path = dir.join(layout::file_path(
            "default",
            Signal::Traces,
            hour,
            collector,
        ));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: axum::Router,
    /// Start of the checkout trace, in Unix seconds.
    t0: i64,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // Two hours ago, at the start of an hour plus ten minutes.
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let t0 = (now / HOUR_NANOS - 2) * HOUR_NANOS + 10 * 60 * 1_000 * MS;
    let s = |trace, id, parent, service, name, kind, start, dur| S {
        trace,
        id,
        parent,
        service,
        name,
        kind,
        start: t0 + start,
        dur,
        error: false,
        status_code: 200,
    };
    write(
        dir.path(),
        "collector-a",
        &[
            s(CHECKOUT, 1, 0, "frontend", "GET /checkout", 2, 0, 300 * MS),
            s(
                CHECKOUT,
                2,
                1,
                "frontend",
                "POST checkout",
                3,
                10 * MS,
                250 * MS,
            ),
            s(HOME, 10, 0, "frontend", "GET /home", 2, 5_000 * MS, 20 * MS),
        ],
    );
    write(
        dir.path(),
        "collector-b",
        &[
            s(
                CHECKOUT,
                3,
                2,
                "checkout",
                "POST /checkout",
                2,
                20 * MS,
                200 * MS,
            ),
            S {
                error: true,
                status_code: 502,
                ..s(CHECKOUT, 4, 3, "payment", "charge", 2, 30 * MS, 150 * MS)
            },
            // An asynchronous follow-up an hour later, in the next hour partition.
            s(
                CHECKOUT,
                5,
                3,
                "checkout",
                "send receipt",
                4,
                3_600_000 * MS,
                5 * MS,
            ),
        ],
    );
    let config = QueryConfig {
        storage: dir.path().display().to_string(),
        ..Default::default()
    };
    Fixture {
        app: app(config).unwrap(),
        _dir: dir,
        t0: t0 / 1_000_000_000,
    }
}

async fn get(app: &axum::Router, uri: &str, accept: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut req = Request::get(uri);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

async fn json(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (s, body) = get(app, uri, None).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{uri}: {e}: {}", String::from_utf8_lossy(&body)));
    (s, v)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn span_count(rs: &[ResourceSpans]) -> usize {
    rs.iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

#[tokio::test]
async fn trace_by_id_in_json_and_protobuf() {
    let f = fixture();
    let (s, v) = json(&f.app, &format!("/api/traces/{CHECKOUT}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let spans: usize = v["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["scopeSpans"].as_array().unwrap())
        .map(|s| s["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(spans, 5, "every file and partition contributes");

    let (s, body) = get(
        &f.app,
        &format!("/api/v2/traces/{CHECKOUT}"),
        Some("application/protobuf"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let r = TraceByIdResponse::decode(body.as_slice()).unwrap();
    assert_eq!(span_count(&r.trace.unwrap().resource_spans), 5);
    let (_, body) = get(
        &f.app,
        &format!("/api/traces/{CHECKOUT}"),
        Some("application/protobuf"),
    )
    .await;
    assert_eq!(
        span_count(&TempoTrace::decode(body.as_slice()).unwrap().resource_spans),
        5
    );

    let (s, v) = json(
        &f.app,
        &format!("/api/v2/traces/{}", CHECKOUT.to_uppercase()),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "COMPLETE");
    assert!(v["trace"]["resourceSpans"].is_array());

    // A time hint that covers only the first hour leaves the late span out.
    let hinted = format!(
        "/api/traces/{CHECKOUT}?start={}&end={}",
        f.t0 - 60,
        f.t0 + 600
    );
    let (_, body) = get(&f.app, &hinted, Some("application/protobuf")).await;
    assert_eq!(
        span_count(&TempoTrace::decode(body.as_slice()).unwrap().resource_spans),
        4
    );

    let (s, v) = json(&f.app, &format!("/api/v2/traces/{}", "e".repeat(32))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = json(&f.app, "/api/traces/not-hex").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("not a trace id"));
}

#[tokio::test]
async fn traceql_search_reports_true_roots_and_durations() {
    let f = fixture();
    let range = format!("start={}&end={}", f.t0 - 60, f.t0 + 600);
    let search = |q: &str| format!("/api/search?q={}&{range}", enc(q));

    let (s, v) = json(
        &f.app,
        &search(r#"{ resource.service.name = "payment" && status = error }"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let traces = v["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "{v}");
    let t = &traces[0];
    assert_eq!(t["traceID"], CHECKOUT);
    assert_eq!(t["rootServiceName"], "frontend");
    assert_eq!(t["rootTraceName"], "GET /checkout");
    // The receipt span an hour later is outside the range but part of the trace.
    assert_eq!(t["durationMs"], 3_600_005);
    assert_eq!(t["startTimeUnixNano"], (f.t0 * 1_000_000_000).to_string());
    assert_eq!(t["spanSets"][0]["matched"], 1);
    assert_eq!(t["spanSets"][0]["spans"][0]["name"], "charge");
    assert_eq!(t["serviceStats"]["payment"]["errorCount"], 1);
    assert_eq!(t["serviceStats"]["checkout"]["spanCount"], 2);

    for (q, want) in [
        ("{}", vec![HOME, CHECKOUT]),
        (r#"{ span.http.status_code >= 500 }"#, vec![CHECKOUT]),
        (
            r#"{ .http.route =~ "GET /.*" && kind = server }"#,
            vec![HOME, CHECKOUT],
        ),
        (
            r#"{ name = "GET /home" } || { status = error }"#,
            vec![HOME, CHECKOUT],
        ),
        (r#"{ name = "GET /home" } && { status = error }"#, vec![]),
        (
            r#"{ name = "charge" } && { name = "GET /checkout" }"#,
            vec![CHECKOUT],
        ),
        (
            r#"{ duration > 100ms && resource.service.name != "frontend" }"#,
            vec![CHECKOUT],
        ),
        (r#"{ trace:duration < 1s }"#, vec![HOME]),
        (r#"{ trace:rootName = "GET /checkout" }"#, vec![CHECKOUT]),
        (
            r#"{ resource.host.name = "node-1" && span.missing = nil }"#,
            vec![HOME, CHECKOUT],
        ),
        (r#"{ span.http.status_code != 200 }"#, vec![CHECKOUT]),
    ] {
        let (s, v) = json(&f.app, &search(q)).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        let got: Vec<&str> = v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{q}");
    }

    // Tag search, limit and trace duration bounds.
    let (_, v) = json(
        &f.app,
        &format!("/api/search?tags={}&{range}", enc("service.name=payment")),
    )
    .await;
    assert_eq!(v["traces"][0]["traceID"], CHECKOUT);
    let (_, v) = json(
        &f.app,
        &format!("/api/search?tags={}&{range}", enc("http.status_code=502")),
    )
    .await;
    assert_eq!(v["traces"].as_array().unwrap().len(), 1);
    let (_, v) = json(&f.app, &format!("/api/search?minDuration=1s&{range}")).await;
    assert_eq!(v["traces"].as_array().unwrap().len(), 1);
    let (_, v) = json(&f.app, &format!("/api/search?limit=1&{range}")).await;
    assert_eq!(v["traces"][0]["traceID"], HOME);

    for bad in [
        search("{ name = checkout }"),
        search("{ name = \"a\" } | count() > 1"),
        format!("/api/search?limit=many&{range}"),
        format!("/api/search?minDuration=slow&{range}"),
        format!("/api/search?tags=oops&{range}"),
    ] {
        let (s, v) = json(&f.app, &bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn tags_values_echo_and_buildinfo() {
    let f = fixture();
    let range = format!("start={}&end={}", f.t0 - 60, f.t0 + 600);
    let (_, v) = json(&f.app, &format!("/api/search/tags?{range}")).await;
    let names: Vec<&str> = v["tagNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "host.name",
            "http.route",
            "http.status_code",
            "service.name"
        ]
    );
    let (_, v) = json(&f.app, &format!("/api/v2/search/tags?{range}")).await;
    assert_eq!(v["scopes"][0]["name"], "span");
    assert_eq!(
        v["scopes"][0]["tags"],
        serde_json::json!(["http.route", "http.status_code"])
    );
    assert_eq!(
        v["scopes"][1]["tags"],
        serde_json::json!(["host.name", "service.name"])
    );
    assert_eq!(v["scopes"][2]["name"], "intrinsic");
    let (_, v) = json(
        &f.app,
        &format!("/api/v2/search/tags?scope=resource&{range}"),
    )
    .await;
    assert_eq!(v["scopes"].as_array().unwrap().len(), 1);
    let (s, _) = json(&f.app, &format!("/api/v2/search/tags?scope=nope&{range}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (_, v) = json(
        &f.app,
        &format!("/api/search/tag/service.name/values?{range}"),
    )
    .await;
    assert_eq!(
        v["tagValues"],
        serde_json::json!(["checkout", "frontend", "payment"])
    );
    let q = enc(r#"{ resource.service.name = "payment" }"#);
    let (_, v) = json(
        &f.app,
        &format!("/api/v2/search/tag/span.http.status_code/values?q={q}&{range}"),
    )
    .await;
    assert_eq!(
        v["tagValues"],
        serde_json::json!([{"type": "int", "value": "502"}])
    );
    let (_, v) = json(&f.app, &format!("/api/v2/search/tag/name/values?{range}")).await;
    assert_eq!(v["tagValues"].as_array().unwrap().len(), 5);
    let (_, v) = json(&f.app, &format!("/api/v2/search/tag/status/values?{range}")).await;
    assert_eq!(
        v["tagValues"][2],
        serde_json::json!({"type": "keyword", "value": "error"})
    );
    // A half-typed query narrows nothing.
    let q = enc(r#"{ resource.service.name = "#);
    let (s, v) = json(
        &f.app,
        &format!("/api/v2/search/tag/resource.service.name/values?q={q}&{range}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["tagValues"].as_array().unwrap().len(), 3);

    let (s, body) = get(&f.app, "/api/echo", None).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, b"echo".as_slice()));
    let (_, v) = json(&f.app, "/api/status/buildinfo").await;
    assert!(v["version"].as_str().unwrap().starts_with("2.1.0+strata"));
}

#[tokio::test]
async fn jaeger_api_in_jaeger_shapes() {
    let f = fixture();
    let (s, v) = json(&f.app, "/jaeger/api/services").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"],
        serde_json::json!(["checkout", "frontend", "payment"])
    );
    assert_eq!(v["total"], 3);
    assert_eq!(v["errors"], Value::Null);
    let (_, v) = json(&f.app, "/jaeger/api/services/frontend/operations").await;
    assert_eq!(
        v["data"],
        serde_json::json!(["GET /checkout", "GET /home", "POST checkout"])
    );
    let (_, v) = json(
        &f.app,
        "/jaeger/api/operations?service=frontend&spanKind=client",
    )
    .await;
    assert_eq!(
        v["data"],
        serde_json::json!([{"name": "POST checkout", "spanKind": "client"}])
    );

    let us = |secs: i64| secs * 1_000_000;
    let range = format!("start={}&end={}", us(f.t0 - 60), us(f.t0 + 600));
    let tags = enc(r#"{"error":"true"}"#);
    let (s, v) = json(
        &f.app,
        &format!("/jaeger/api/traces?service=payment&tags={tags}&{range}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let trace = &v["data"][0];
    assert_eq!(trace["traceID"], CHECKOUT);
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 5);
    let charge = spans
        .iter()
        .find(|s| s["operationName"] == "charge")
        .unwrap();
    assert_eq!(charge["references"][0]["spanID"], format!("{:016x}", 3));
    let pid = charge["processID"].as_str().unwrap();
    assert_eq!(trace["processes"][pid]["serviceName"], "payment");

    let (_, v) = json(
        &f.app,
        &format!(
            "/jaeger/api/traces?service=frontend&operation={}&{range}",
            enc("GET /home")
        ),
    )
    .await;
    assert_eq!(v["data"][0]["traceID"], HOME);
    let (_, v) = json(
        &f.app,
        &format!("/jaeger/api/traces?service=frontend&minDuration=280ms&{range}"),
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (_, v) = json(
        &f.app,
        &format!("/jaeger/api/traces?traceID={HOME}&traceID={CHECKOUT}"),
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);

    let (s, v) = json(&f.app, &format!("/jaeger/api/traces/{CHECKOUT}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 5);
    let (s, v) = json(&f.app, &format!("/jaeger/api/traces/{}", "f".repeat(16))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["errors"][0]["code"], 404);
    let (s, v) = json(&f.app, "/jaeger/api/traces?operation=x").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["errors"][0]["msg"].as_str().unwrap().contains("service"));

    let end_ms = (f.t0 + 7_200) * 1_000;
    let (_, v) = json(
        &f.app,
        &format!(
            "/jaeger/api/dependencies?endTs={end_ms}&lookback={}",
            3 * 3_600_000
        ),
    )
    .await;
    assert_eq!(
        v["data"],
        serde_json::json!([
            {"parent": "checkout", "child": "payment", "callCount": 1},
            {"parent": "frontend", "child": "checkout", "callCount": 1},
        ])
    );
}
