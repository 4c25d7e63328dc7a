//! Trace lookups against the query service: `GET /api/traces/{id}` for known ids, with
//! latency percentiles.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::percentile;

/// Fetches traces by id (cycling over `ids`) and reports latency percentiles. Each lookup opens
/// its own connection (no idle pool), as a person opening a trace from a dashboard would.
pub async fn run(query: &str, ids: &[String], n: usize) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(!ids.is_empty(), "no acknowledged traces to look up");
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    let base = query.trim_end_matches('/');
    let mut lat = Vec::with_capacity(n);
    let mut found = 0;
    for i in 0..n {
        let uri: http::Uri = format!("{base}/api/traces/{}", ids[i % ids.len()]).parse()?;
        let t = Instant::now();
        let response = client.get(uri).await?;
        let status = response.status();
        response.into_body().collect().await?;
        lat.push(t.elapsed());
        found += usize::from(status == http::StatusCode::OK);
    }
    lat.sort();
    Ok(serde_json::json!({
        "lookups": n, "found": found,
        "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
    }))
}
