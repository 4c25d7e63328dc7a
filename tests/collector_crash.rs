//! Delivery through collector crashes, with real processes on loopback: the agent ships a
//! sustained load of spans with known ids while collectors are killed with SIGKILL and
//! restarted on the same address and data directory; at the end every span is stored exactly
//! once. A collector whose WAL tail was torn starts, counts the damage, and keeps working.
//! Every loop is bounded in count and time.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn request(first: u64) -> Value {
    spans_request(first, "crash", 0)
}

#[test]
fn spans_are_stored_exactly_once_through_collector_kills() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage").display().to_string();
    let mut collectors: Vec<Collector> = (0..3)
        .map(|i| Collector::new(dir.path(), &format!("c{i}")))
        .collect();
    for c in &mut collectors {
        c.start(dir.path(), &storage);
    }
    let (grpc, http) = (free_port(), free_port());
    let flights: Vec<String> = collectors.iter().map(|c| c.flight.clone()).collect();
    let mut agent = strata(
        "agent",
        dir.path(),
        &[
            "agent",
            "--data-dir",
            dir.path().join("agent").to_str().unwrap(),
            "--otlp-grpc",
            &format!("127.0.0.1:{grpc}"),
            "--otlp-http",
            &format!("127.0.0.1:{http}"),
            "--collectors",
            &flights.join(","),
        ],
        &[("STRATA_AGENT__BATCH_MAX_AGE_MS", "50")],
    );
    let otlp = format!("http://127.0.0.1:{http}");
    wait_ready(
        &format!("{otlp}/ready"),
        Duration::from_secs(30),
        &mut agent,
    );

    // Sender: 300 requests of 50 spans, each retried on backpressure until accepted.
    let total: u64 = 300 * SPANS_PER_REQUEST;
    let sender = {
        let otlp = otlp.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut refused = 0;
            for r in 0..300u64 {
                loop {
                    assert!(Instant::now() < deadline, "sender timed out");
                    let (s, _) = post_json(
                        &format!("{otlp}/v1/traces"),
                        &request(r * SPANS_PER_REQUEST),
                        &[],
                    );
                    if s == 200 {
                        break;
                    }
                    refused += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            refused
        })
    };
    // Killer: SIGKILL a collector every 400 ms, restart it 200 ms later (at most 12 kills).
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    while !sender.is_finished() && kills < 12 {
        std::thread::sleep(Duration::from_millis(400));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let c = &mut collectors[(rng % 3) as usize];
        c.kill9();
        kills += 1;
        std::thread::sleep(Duration::from_millis(200));
        c.start(dir.path(), &storage);
    }
    let refused = sender.join().unwrap();
    eprintln!("sent {total} spans, {kills} collector kills, {refused} refused requests retried");
    assert!(
        kills >= 3,
        "the load ended before the collectors were killed enough"
    );

    let qport = free_port();
    let mut query = strata(
        "query",
        dir.path(),
        &[
            "query",
            "--storage",
            &storage,
            "--http",
            &format!("127.0.0.1:{qport}"),
        ],
        &[],
    );
    let q = format!("http://127.0.0.1:{qport}");
    wait_ready(&format!("{q}/ready"), Duration::from_secs(30), &mut query);
    let count = |sql_text: &str| sql_scalar(&q, sql_text).as_u64().unwrap_or(0);
    eventually(Duration::from_secs(90), "every span stored", || {
        count("SELECT count(DISTINCT span_id) FROM spans") == total
    });
    assert_eq!(
        count("SELECT count(*) FROM spans"),
        total,
        "a span was stored twice"
    );
    let (_, metrics) = get(&format!("{otlp}/metrics"));
    assert!(
        !metrics.contains("strata_agent_dropped_rows_total{"),
        "{metrics}"
    );

    // A torn WAL tail: stop a collector hard, cut its newest segment, start it again.
    drop(agent);
    let c = &mut collectors[0];
    c.kill9();
    let wal = c.data.join("wal");
    let newest = std::fs::read_dir(&wal)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    std::fs::write(&newest, bytes).unwrap();
    c.start(dir.path(), &storage);
    let (_, metrics) = get(&format!("http://{}/metrics", c.http));
    assert!(
        metrics.contains("strata_collector_recovery_errors_total{what=\"wal\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("strata_collector_wal_corrupt_bytes_total 7"),
        "{metrics}"
    );
    assert_eq!(
        count("SELECT count(*) FROM spans"),
        total,
        "stored data intact"
    );
}
