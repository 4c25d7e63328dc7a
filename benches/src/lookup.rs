//! Trace lookups against the query service: `GET /api/traces/{id}` for known ids, with
//! latency percentiles.

use std::time::Instant;

use crate::percentile;

/// Fetches traces by id (cycling over `ids`) and reports latency percentiles.
pub async fn run(query: &str, ids: &[String], n: usize) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(!ids.is_empty(), "no acknowledged traces to look up");
    let host = query.trim_start_matches("http://");
    let mut lat = Vec::with_capacity(n);
    let mut found = 0;
    for i in 0..n {
        let id = &ids[i % ids.len()];
        let t = Instant::now();
        let status = http_get_status(host, &format!("/api/traces/{id}")).await?;
        lat.push(t.elapsed());
        found += usize::from(status == 200);
    }
    lat.sort();
    Ok(serde_json::json!({
        "lookups": n, "found": found,
        "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
    }))
}

/// A minimal HTTP/1.1 GET (Connection: close) returning the status code; the body is drained.
/// Hand-written so that a client's connection pool does not blur per-lookup latency.
async fn http_get_status(host: &str, path: &str) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let line = String::from_utf8_lossy(&buf[..buf.len().min(32)]).to_string();
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}
