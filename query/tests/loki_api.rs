//! Loki's query API over log files written the collector's way: three services, records with
//! and without a trace id, levels from the severity text.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Any};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value;
use strata_query::{QueryConfig, app};
use strata_schema::Signal;
use strata_storage::format::{ParquetOptions, encode};
use strata_storage::layout::{self, HOUR_NANOS};
use tower::ServiceExt;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const SEC: i64 = 1_000_000_000;

/// (service, severity, body, trace id, seconds after t0)
type Rec = (&'static str, &'static str, &'static str, &'static str, i64);

const RECORDS: [Rec; 5] = [
    ("checkout", "INFO", "order 17 placed", TRACE, 1),
    ("payment", "WARN", "card declined for order 17", TRACE, 2),
    (
        "checkout",
        "ERROR",
        "payment timeout for order 17",
        TRACE,
        3,
    ),
    ("checkout", "INFO", "health ok", "", 4),
    ("frontend", "INFO", "GET / 200", "", 5),
];

fn resource_logs(t0: i64, r: &Rec) -> ResourceLogs {
    let (service, severity, body, trace, at) = *r;
    ResourceLogs {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(Any::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: vec![LogRecord {
                time_unix_nano: (t0 + at * SEC) as u64,
                observed_time_unix_nano: (t0 + at * SEC) as u64,
                severity_text: severity.into(),
                body: Some(AnyValue {
                    value: Some(Any::StringValue(body.into())),
                }),
                trace_id: hex::decode(trace).unwrap(),
                span_id: if trace.is_empty() { vec![] } else { vec![7; 8] },
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: axum::Router,
    /// `start=..&end=..` around the records, in nanoseconds.
    range: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let t0 = (now / HOUR_NANOS - 1) * HOUR_NANOS + 60 * SEC;
    let rl: Vec<ResourceLogs> = RECORDS.iter().map(|r| resource_logs(t0, r)).collect();
    let batch = strata_schema::logs::to_batch(&rl).unwrap();
    let options = ParquetOptions {
        row_group_rows: 1024,
        zstd_level: 1,
    };
    let (bytes, _) = encode(Signal::Logs, &[batch], Vec::new(), options).unwrap();
    let path = dir.path().join(layout::file_path(
        "default",
        Signal::Logs,
        t0 / HOUR_NANOS,
        "c1",
    ));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    let config = QueryConfig {
        storage: dir.path().display().to_string(),
        ..Default::default()
    };
    Fixture {
        _dir: dir,
        app: app(config).unwrap(),
        range: format!("start={}&end={}", t0, t0 + 60 * SEC),
    }
}

async fn get(app: &axum::Router, uri: &str, tenant: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::get(uri);
    if let Some(t) = tenant {
        request = request.header("X-Scope-OrgID", t);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Fixture {
    async fn logs(&self, query: &str, extra: &str) -> (StatusCode, Value) {
        let uri = format!(
            "/loki/api/v1/query_range?query={}&{}{extra}",
            enc(query),
            self.range
        );
        get(&self.app, &uri, None).await
    }

    /// The lines of a successful log query, in the order of the answer's streams.
    async fn lines(&self, query: &str, extra: &str) -> Vec<String> {
        let (s, v) = self.logs(query, extra).await;
        assert_eq!(s, StatusCode::OK, "{query}: {v}");
        assert_eq!(v["data"]["resultType"], "streams");
        let mut out = Vec::new();
        for stream in v["data"]["result"].as_array().unwrap() {
            for value in stream["values"].as_array().unwrap() {
                out.push(value[1].as_str().unwrap().to_string());
            }
        }
        out
    }
}

#[tokio::test]
async fn log_queries_answer_in_loki_streams() {
    let f = fixture();
    let (s, v) = f.logs(r#"{service_name="checkout"}"#, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "success");
    let streams = v["data"]["result"].as_array().unwrap();
    // Streams split by level and by trace id, as Loki splits by structured metadata.
    assert_eq!(streams.len(), 3, "{v}");
    let error = streams
        .iter()
        .find(|s| s["stream"]["level"] == "error")
        .unwrap();
    assert_eq!(error["stream"]["service_name"], "checkout");
    assert_eq!(error["stream"]["trace_id"], TRACE);
    assert_eq!(error["stream"]["span_id"], "0707070707070707");
    let entry = &error["values"][0];
    assert_eq!(entry[1], "payment timeout for order 17");
    assert!(entry[0].as_str().unwrap().parse::<i64>().is_ok());
    let untraced = streams
        .iter()
        .find(|s| s["values"][0][1] == "health ok")
        .unwrap();
    assert!(untraced["stream"].get("trace_id").is_none(), "{untraced}");

    // What a trace-to-logs link asks: every service's records of one trace.
    let mut lines = f
        .lines(
            &format!(r#"{{service_name=~"checkout|payment|frontend"}} | trace_id="{TRACE}""#),
            "",
        )
        .await;
    lines.sort();
    assert_eq!(
        lines,
        [
            "card declined for order 17",
            "order 17 placed",
            "payment timeout for order 17"
        ]
    );

    assert_eq!(
        f.lines(r#"{service_name="checkout"} |= "timeout""#, "")
            .await,
        ["payment timeout for order 17"]
    );
    assert_eq!(
        f.lines(
            r#"{service_name=~".+"} |~ "order \\d+" != "placed" !~ "card""#,
            ""
        )
        .await,
        ["payment timeout for order 17"]
    );
    assert_eq!(
        f.lines(r#"{level=~"warn|error"} | service_name!="checkout""#, "")
            .await,
        ["card declined for order 17"]
    );

    // Newest first unless asked otherwise, and at most `limit`.
    assert_eq!(
        f.lines(r#"{service_name=~".+"}"#, "&limit=1").await,
        ["GET / 200"]
    );
    assert_eq!(
        f.lines(r#"{service_name=~".+"}"#, "&limit=1&direction=forward")
            .await,
        ["order 17 placed"]
    );

    // Another tenant sees nothing.
    let uri = format!(
        "/loki/api/v1/query_range?query={}&{}",
        enc(r#"{service_name="checkout"}"#),
        f.range
    );
    let (s, v) = get(&f.app, &uri, Some("other")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["result"], serde_json::json!([]));
}

#[tokio::test]
async fn labels_and_label_values() {
    let f = fixture();
    let (s, v) = get(&f.app, &format!("/loki/api/v1/labels?{}", f.range), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"], serde_json::json!(["level", "service_name"]));

    let uri = format!("/loki/api/v1/label/service_name/values?{}", f.range);
    let (_, v) = get(&f.app, &uri, None).await;
    assert_eq!(
        v["data"],
        serde_json::json!(["checkout", "frontend", "payment"])
    );
    let uri = format!(
        "/loki/api/v1/label/service_name/values?{}&query={}",
        f.range,
        enc(r#"{level="warn"}"#)
    );
    let (_, v) = get(&f.app, &uri, None).await;
    assert_eq!(v["data"], serde_json::json!(["payment"]));
    let uri = format!("/loki/api/v1/label/no_such_label/values?{}", f.range);
    let (s, v) = get(&f.app, &uri, None).await;
    assert_eq!((s, &v["data"]), (StatusCode::OK, &serde_json::json!([])));
}

#[tokio::test]
async fn bad_queries_get_loki_style_errors() {
    let f = fixture();
    for (query, extra, says) in [
        (r#"{service_name="checkout""#, "", "parse error"),
        (r#"{service_name=""}"#, "", "empty-compatible"),
        (
            r#"sum(count_over_time({service_name="checkout"}[5m]))"#,
            "",
            "metric queries",
        ),
        (r#"{service_name="checkout"} | json"#, "", "`json`"),
        (r#"{service_name="checkout"}"#, "&limit=0", "limit"),
        (r#"{service_name="checkout"}"#, "&direction=up", "direction"),
        (r#"{service_name="checkout"}"#, "&end=yesterday", "end"),
    ] {
        let (s, v) = f.logs(query, extra).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query} {extra}: {v}");
        assert_eq!(v["status"], "error");
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(says), "{query} {extra}: {error}");
    }
    let uri = format!(
        "/loki/api/v1/query?query={}",
        enc(r#"{service_name="checkout"}"#)
    );
    let (s, v) = get(&f.app, &uri, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"].as_str().unwrap().contains("instant query"),
        "{v}"
    );
}
