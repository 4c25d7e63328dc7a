use std::io::Write;

use strata_schema::Signal;

use super::*;
use crate::test_sink::Sink;

fn app(sink: Arc<Sink>) -> Router {
    nested(crate::test_sink::receiver(sink, 1 << 20))
}

async fn call(
    app: Router,
    method: &str,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, bytes) = crate::test_sink::call(app, method, path, body, headers).await;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, v)
}

#[tokio::test]
async fn info_and_start_up_checks_answer_as_elasticsearch() {
    let sink = Arc::new(Sink::default());
    for path in ["/elastic", "/elastic/"] {
        let (s, h, v) = call(app(sink.clone()), "GET", path, vec![], &[]).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(h["x-elastic-product"], "Elasticsearch");
        assert_eq!(v["version"]["number"], VERSION);
    }
    let (s, _, v) = call(app(sink.clone()), "GET", "/elastic/_license", vec![], &[]).await;
    assert_eq!(
        (s, v["license"]["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
    let (s, _, _) = call(
        app(sink.clone()),
        "HEAD",
        "/elastic/_index_template/logs",
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, v) = call(
        app(sink.clone()),
        "PUT",
        "/elastic/_index_template/logs",
        b"{}".to_vec(),
        &[],
    )
    .await;
    assert_eq!(
        (s, v["acknowledged"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (s, _, v) = call(
        app(sink.clone()),
        "PUT",
        "/elastic/_ilm/policy/p",
        b"{}".to_vec(),
        &[],
    )
    .await;
    assert_eq!(
        (s, v["acknowledged"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (s, h, v) = call(app(sink.clone()), "GET", "/elastic/_search", vec![], &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(h["x-elastic-product"], "Elasticsearch");
    assert_eq!(v["error"]["type"], "illegal_argument_exception");
}

#[tokio::test]
async fn bulk_stores_good_documents_and_answers_each_item() {
    let sink = Arc::new(Sink::default());
    let body = "{\"index\":{\"_index\":\"app\"}}\n{\"@timestamp\":\"2026-12-06T10:00:00Z\",\"message\":\"a\",\"service.name\":\"x\"}\n\
                {\"create\":{\"_id\":\"k\"}}\n{\"message\":\"b\"}\n\
                {\"index\":{}}\n{\"@timestamp\":\"not a date\"}\n\
                {\"delete\":{\"_id\":\"k\"}}\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.as_bytes()).unwrap();
    let (s, _, v) = call(
        app(sink.clone()),
        "POST",
        "/elastic/logs-web/_bulk",
        gz.finish().unwrap(),
        &[
            ("content-type", "application/x-ndjson"),
            ("content-encoding", "gzip"),
            ("x-scope-orgid", "acme"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["errors"], true);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["index"]["status"], 201);
    assert_eq!(items[0]["index"]["_index"], "app");
    assert_eq!(items[1]["create"]["_id"], "k");
    assert_eq!(items[1]["create"]["_index"], "logs-web");
    assert_eq!(items[2]["index"]["status"], 400);
    assert_eq!(
        items[2]["index"]["error"]["type"],
        "document_parsing_exception"
    );
    assert_eq!(items[3]["delete"]["status"], 400);
    assert_eq!(
        sink.got.lock().unwrap().clone(),
        vec![("acme".to_string(), Signal::Logs, 2)]
    );
}

#[tokio::test]
async fn single_documents_bad_requests_and_overload() {
    let sink = Arc::new(Sink::default());
    let (s, _, v) = call(
        app(sink.clone()),
        "POST",
        "/elastic/app/_doc",
        br#"{"message":"m"}"#.to_vec(),
        &[],
    )
    .await;
    assert_eq!(
        (s, v["result"].as_str()),
        (StatusCode::CREATED, Some("created"))
    );
    let (s, _, v) = call(
        app(sink.clone()),
        "PUT",
        "/elastic/app/_doc/7",
        b"[1]".to_vec(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["type"], "document_parsing_exception");
    let (s, _, v) = call(
        app(sink.clone()),
        "POST",
        "/elastic/_bulk",
        b"{\"bogus\":{}}\n{}\n".to_vec(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["reason"].as_str().unwrap().contains("bogus"));
    let (s, _, _) = call(
        app(sink.clone()),
        "POST",
        "/elastic/_bulk",
        b"\n".to_vec(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(sink.got.lock().unwrap().len(), 1);
    let full = Arc::new(Sink {
        overloaded: true,
        ..Default::default()
    });
    let (s, h, v) = call(
        app(full),
        "POST",
        "/elastic/_bulk",
        b"{\"index\":{\"_index\":\"a\"}}\n{}\n".to_vec(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h[header::RETRY_AFTER], "1");
    assert_eq!(v["error"]["type"], "es_rejected_execution_exception");
}

#[tokio::test]
async fn documents_the_tenant_limits_leave_out_are_refused_item_by_item() {
    use strata_server::limits::{Limits, Overrides, Table};
    let sink = Arc::new(Sink::default());
    let table = Table {
        defaults: Arc::new(Limits {
            max_attribute_value_bytes: 16,
            ..Limits::default()
        }),
        ..Table::default()
    };
    let limits = Arc::new(Overrides::with_table(table, None, Arc::default()));
    let receiver = crate::test_sink::receiver(sink.clone(), 1 << 20);
    let receiver = Arc::new(
        Arc::try_unwrap(receiver)
            .ok()
            .expect("one owner")
            .with_limits(limits),
    );
    // Two resource groups (services), so rows come in group order, not item order.
    let long = "x".repeat(40);
    let body = format!(
        "{{\"index\":{{\"_index\":\"a\"}}}}\n{{\"service.name\":\"s1\",\"k\":\"short\"}}\n\
         {{\"index\":{{\"_index\":\"a\"}}}}\n{{\"service.name\":\"s2\",\"k\":\"short\"}}\n\
         {{\"index\":{{\"_index\":\"a\"}}}}\n{{\"service.name\":\"s1\",\"k\":\"{long}\"}}\n"
    );
    let (s, _, v) = call(
        nested(receiver),
        "POST",
        "/elastic/_bulk",
        body.into_bytes(),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["errors"], true);
    let statuses: Vec<u64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["index"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 201, 400], "{v}");
    assert_eq!(sink.got.lock().unwrap()[0].2, 2);
}
