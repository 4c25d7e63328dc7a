//! Delivery through agent-side failures, with real processes on loopback:
//! - every collector down: the agent keeps acknowledging into its disk buffer, is killed with
//!   SIGKILL, restarts, and ships everything once the collectors return;
//! - a corrupted agent buffer segment: the agent starts, counts the damage, keeps working;
//! - a response lost after the collector stored the batch (a proxy cuts the connection at the
//!   collector's response headers): the retry is recognised, nothing is stored twice;
//! - a stalled collector (SIGSTOP) under load: the agent answers 429 once its buffer is full,
//!   its memory stays under the limit, and it recovers when the collector resumes.
//!
//! Each scenario prints sent / stored / duplicated / refused and its recovery time. Every loop
//! is bounded in count and time.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn request(first: u64, pad: usize) -> Value {
    spans_request(first, "delivery", pad)
}

struct Agent {
    http: String,
    grpc: String,
    data: PathBuf,
    proc: Option<Proc>,
    starts: usize,
}

impl Agent {
    fn new(dir: &Path) -> Self {
        Agent {
            http: format!("127.0.0.1:{}", free_port()),
            grpc: format!("127.0.0.1:{}", free_port()),
            data: dir.join("agent"),
            proc: None,
            starts: 0,
        }
    }

    fn start(&mut self, dir: &Path, collectors: &[String], envs: &[(&str, &str)]) {
        self.starts += 1;
        let mut all = vec![
            ("STRATA_AGENT__BATCH_MAX_AGE_MS", "50"),
            ("STRATA_AGENT__BREAKER_OPEN_MS", "200"),
            ("STRATA_AGENT__BREAKER_MAX_OPEN_MS", "1000"),
            ("STRATA_AGENT__SHIP_TIMEOUT_MS", "2000"),
        ];
        all.extend_from_slice(envs);
        let mut p = strata(
            &format!("agent-{}", self.starts),
            dir,
            &[
                "agent",
                "--data-dir",
                self.data.to_str().unwrap(),
                "--otlp-grpc",
                &self.grpc,
                "--otlp-http",
                &self.http,
                "--collectors",
                &collectors.join(","),
            ],
            &all,
        );
        wait_ready(
            &format!("http://{}/ready", self.http),
            Duration::from_secs(30),
            &mut p,
        );
        self.proc = Some(p);
    }

    fn send(&self, first: u64, pad: usize) -> u16 {
        post_json(
            &format!("http://{}/v1/traces", self.http),
            &request(first, pad),
            &[],
        )
        .0
    }

    /// Sends `requests` requests of the spans from `*next` on, each of which must be accepted.
    fn send_all(&self, next: &mut u64, requests: usize) {
        for _ in 0..requests {
            assert_eq!(self.send(*next, 0), 200);
            *next += SPANS_PER_REQUEST;
        }
    }

    fn metrics(&self) -> String {
        get(&format!("http://{}/metrics", self.http)).1
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0
}

fn start_query(dir: &Path, storage: &str) -> (Proc, String) {
    let port = free_port();
    let mut q = strata(
        "query",
        dir,
        &[
            "query",
            "--storage",
            storage,
            "--http",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/ready"), Duration::from_secs(30), &mut q);
    (q, base)
}

fn count(q: &str, sql_text: &str) -> u64 {
    sql_scalar(q, sql_text).as_u64().unwrap_or(0)
}

/// Waits until `total` distinct spans are stored; returns how long that took. Asserts that
/// none is stored twice.
fn all_stored_once(q: &str, total: u64, within: Duration) -> Duration {
    let start = Instant::now();
    eventually(within, "every acknowledged span stored", || {
        count(q, "SELECT count(DISTINCT span_id) FROM spans") == total
    });
    let took = start.elapsed();
    let stored = count(q, "SELECT count(*) FROM spans");
    assert_eq!(stored, total, "{} spans stored twice", stored - total);
    took
}

fn newest_segment(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 8))
        .max()
        .expect("a buffer segment with data")
}

/// Two collectors, an agent shipping to both, and the query service, all started.
struct Cluster {
    storage: String,
    collectors: [Collector; 2],
    flights: Vec<String>,
    agent: Agent,
    query: (Proc, String),
}

fn two_collectors(dir: &Path) -> Cluster {
    let storage = dir.join("storage").display().to_string();
    let mut collectors = [Collector::new(dir, "c0"), Collector::new(dir, "c1")];
    for c in &mut collectors {
        c.start(dir, &storage);
    }
    let flights: Vec<String> = collectors.iter().map(|c| c.flight.clone()).collect();
    let mut agent = Agent::new(dir);
    agent.start(dir, &flights, &[]);
    let query = start_query(dir, &storage);
    Cluster {
        storage,
        collectors,
        flights,
        agent,
        query,
    }
}

/// Scenarios 2, 3 and the agent half of 5.
#[test]
fn agent_buffers_on_disk_through_outage_crash_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let Cluster {
        storage,
        mut collectors,
        flights,
        mut agent,
        query: (_query, q),
    } = two_collectors(dir.path());

    let mut next = 0u64;
    agent.send_all(&mut next, 20);
    all_stored_once(&q, next, Duration::from_secs(60));

    // Scenario 2 + 3: every collector down; the agent keeps acknowledging into its disk
    // buffer; then the agent itself is killed with data in the buffer.
    for c in &mut collectors {
        c.kill9();
    }
    let outage_from = next;
    for _ in 0..60 {
        assert_eq!(
            agent.send(next, 0),
            200,
            "the disk buffer takes data while collectors are down"
        );
        next += SPANS_PER_REQUEST;
    }
    let m = agent.metrics();
    assert!(metric(&m, "strata_agent_buffer_entries") > 0.0, "{m}");
    agent.proc.take().unwrap().kill9();
    let buffered = std::fs::read_dir(agent.data.join("buffer"))
        .unwrap()
        .count();
    assert!(buffered > 0, "the buffer is on disk");

    agent.start(dir.path(), &flights, &[]);
    let m = agent.metrics();
    let replayed = metric(&m, "strata_agent_buffer_replayed_rows_total");
    assert!(replayed >= 1.0, "{m}");
    let back = Instant::now();
    for c in &mut collectors {
        c.start(dir.path(), &storage);
    }
    let took = all_stored_once(&q, next, Duration::from_secs(90));
    eprintln!(
        "scenario 2+3 (all collectors down, agent SIGKILLed, restarted): sent {} spans, \
         acknowledged during the outage {}, replayed from disk {replayed}, stored {next}, \
         duplicated 0, refused 0; recovery {:.1} s after the collectors returned",
        next,
        next - outage_from,
        (back.elapsed().max(took)).as_secs_f64()
    );

    // Scenario 5, agent side: garbage after the last record of the newest segment.
    for c in &mut collectors {
        c.kill9();
    }
    agent.send_all(&mut next, 10);
    agent.proc.take().unwrap().kill9();
    let seg = newest_segment(&agent.data.join("buffer"));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    std::fs::write(&seg, bytes).unwrap();
    agent.start(dir.path(), &flights, &[]);
    let m = agent.metrics();
    assert_eq!(
        metric(&m, "strata_agent_buffer_corrupt_bytes_total"),
        7.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "strata_agent_buffer_corrupt_segments_total"),
        1.0
    );
    let aside = std::fs::read_dir(agent.data.join("buffer"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        })
        .count();
    assert_eq!(aside, 1, "the bad tail is set aside");
    // It keeps accepting, and what was whole before the damage arrives.
    for c in &mut collectors {
        c.start(dir.path(), &storage);
    }
    agent.send_all(&mut next, 5);
    all_stored_once(&q, next, Duration::from_secs(90));
    let m = agent.metrics();
    assert_eq!(
        metric(&m, "strata_agent_buffer_lost_rows_total"),
        0.0,
        "{m}"
    );
    assert_eq!(metric(&m, "strata_agent_dropped_rows_total"), 0.0, "{m}");
}

/// A TCP proxy that cuts the connection when the collector starts its `DoPut` response (the
/// first HTTP/2 HEADERS frame from the server), `drops` times; then it forwards faithfully.
fn lost_ack_proxy(upstream: String, drops: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let left = Arc::new(AtomicUsize::new(drops));
    let cut = Arc::new(AtomicUsize::new(0));
    let cut_out = cut.clone();
    std::thread::spawn(move || {
        // Bounded: at most 200 connections over the test's life.
        for client in listener.incoming().take(200) {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || pump(c2, s2));
            let (left, cut) = (left.clone(), cut.clone());
            std::thread::spawn(move || pump_responses(server, client, left, cut));
        }
    });
    (addr, cut_out)
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Server-to-client bytes, parsed into HTTP/2 frames (9-byte header: length:24 type:8
/// flags:8 stream:32); the first HEADERS frame (type 1) is the response to a `DoPut`, sent
/// after the collector stored the batch.
fn pump_responses(
    mut from: TcpStream,
    mut to: TcpStream,
    left: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16384];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut forward = 0;
        while pending.len() - forward >= 9 {
            let h = &pending[forward..forward + 9];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            if h[3] == 1
                && left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                    .is_ok()
            {
                cut.fetch_add(1, Ordering::SeqCst);
                let _ = to.write_all(&pending[..forward]);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
            if pending.len() - forward < 9 + len {
                break;
            }
            forward += 9 + len;
        }
        if to.write_all(&pending[..forward]).is_err() {
            break;
        }
        pending.drain(..forward);
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Scenario 4.
#[test]
fn a_lost_acknowledgement_does_not_store_twice() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage").display().to_string();
    let mut collector = Collector::new(dir.path(), "c0");
    collector.start(dir.path(), &storage);
    let (proxy, cut) = lost_ack_proxy(collector.flight.clone(), 3);
    let mut agent = Agent::new(dir.path());
    // A breaker that does not open: the retries must go to the same collector.
    agent.start(
        dir.path(),
        &[proxy],
        &[("STRATA_AGENT__BREAKER_FAILURES", "100")],
    );
    let (_query, q) = start_query(dir.path(), &storage);
    let mut next = 0;
    for _ in 0..20 {
        assert_eq!(agent.send(next, 0), 200);
        next += SPANS_PER_REQUEST;
        std::thread::sleep(Duration::from_millis(30));
    }
    let took = all_stored_once(&q, next, Duration::from_secs(60));
    assert_eq!(
        cut.load(Ordering::SeqCst),
        3,
        "the proxy cut three acknowledgements"
    );
    let m = collector.metrics();
    let dups = metric(
        &m,
        "strata_collector_received_batches_total{outcome=\"duplicate\"}",
    );
    assert!(
        dups >= 3.0,
        "the retries were recognised as duplicates: {m}"
    );
    eprintln!(
        "scenario 4 (lost acknowledgements): sent {next} spans, 3 acks cut, stored {next}, \
         duplicated 0 (the collector recognised {dups} retried batches), refused 0; all stored \
         {:.1} s after the last send",
        took.as_secs_f64()
    );
}

/// Scenario 6.
#[test]
fn a_stalled_collector_turns_into_backpressure_within_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage").display().to_string();
    let mut collector = Collector::new(dir.path(), "c0");
    collector.start(dir.path(), &storage);
    let mut agent = Agent::new(dir.path());
    let memory_limit: u64 = 48 << 20;
    agent.start(
        dir.path(),
        std::slice::from_ref(&collector.flight),
        &[
            ("STRATA_AGENT__MEMORY_LIMIT_BYTES", "50331648"),
            ("STRATA_AGENT__MAX_REQUEST_BYTES", "4194304"),
            ("STRATA_AGENT__BUFFER_MAX_BYTES", "16777216"),
            ("STRATA_AGENT__BUFFER_SEGMENT_BYTES", "2097152"),
        ],
    );
    let idle_rss = agent.proc.as_ref().unwrap().rss_bytes();
    let (_query, q) = start_query(dir.path(), &storage);

    collector.proc.as_ref().unwrap().signal("STOP");
    let mut next = 0u64;
    let (mut accepted, mut refused, mut peak_rss) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    // Load until the buffer pushes back for a while (at most 3000 requests).
    let mut refusals_in_a_row = 0;
    for _ in 0..3000 {
        if Instant::now() > deadline || refusals_in_a_row >= 20 {
            break;
        }
        match agent.send(next, 16) {
            200 => {
                accepted += SPANS_PER_REQUEST;
                next += SPANS_PER_REQUEST;
                refusals_in_a_row = 0;
            }
            429 | 503 => {
                refused += SPANS_PER_REQUEST;
                refusals_in_a_row += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            s => panic!("unexpected status {s}"),
        }
        peak_rss = peak_rss.max(agent.proc.as_ref().unwrap().rss_bytes());
    }
    assert!(refusals_in_a_row >= 20, "the agent never pushed back");
    let m = agent.metrics();
    assert!(
        metric(&m, "strata_agent_buffer_refusals_total") > 0.0,
        "{m}"
    );
    // Resident memory stays under the configured limit (plus the process's own baseline).
    if peak_rss > 0 {
        assert!(
            peak_rss < memory_limit + idle_rss + (16 << 20),
            "agent RSS {peak_rss} over its limit {memory_limit} (idle {idle_rss})"
        );
    }
    // The collector resumes: the agent drains and accepts again.
    collector.proc.as_ref().unwrap().signal("CONT");
    let resumed = Instant::now();
    let mut recovered = None;
    for _ in 0..600 {
        if agent.send(next, 16) == 200 {
            accepted += SPANS_PER_REQUEST;
            recovered = Some(resumed.elapsed());
            break;
        }
        refused += SPANS_PER_REQUEST;
        std::thread::sleep(Duration::from_millis(100));
    }
    let recovered = recovered.expect("the agent accepts again after the collector resumed");
    let took = all_stored_once(&q, accepted, Duration::from_secs(120));
    eprintln!(
        "scenario 6 (stalled collector): sent {} spans, accepted {accepted}, stored {accepted}, \
         duplicated 0, refused {refused} (429/503); agent RSS idle {} MiB, peak {} MiB \
         (memory limit {} MiB); accepting again {:.1} s after the collector resumed, all \
         stored {:.1} s after that",
        accepted + refused,
        idle_rss >> 20,
        peak_rss >> 20,
        memory_limit >> 20,
        recovered.as_secs_f64(),
        took.as_secs_f64()
    );
}

/// A collector that dies for good: its breaker opens and its keys (and its queued batches that
/// were never sent) go to the next collector on the ring; every span is stored once, and a
/// trace whose spans ended up on both collectors is still returned whole.
#[test]
fn a_dead_collectors_keys_fail_over_to_the_next_on_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let Cluster {
        storage,
        mut collectors,
        flights: _,
        agent,
        query: (_query, q),
    } = two_collectors(dir.path());
    let mut next = 0u64;
    agent.send_all(&mut next, 10);
    all_stored_once(&q, next, Duration::from_secs(60));
    // Every trace so far has 5 spans; c1 dies, and the same traces get 5 more spans each.
    collectors[1].kill9();
    let died = Instant::now();
    for first in (0..next).step_by(SPANS_PER_REQUEST as usize) {
        let mut body = request(first, 0);
        for span in body["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array_mut()
            .unwrap()
        {
            let id = u64::from_str_radix(span["spanId"].as_str().unwrap(), 16).unwrap();
            span["spanId"] = json!(format!("{:016x}", id + 1_000_000));
        }
        let (s, _) = post_json(&format!("http://{}/v1/traces", agent.http), &body, &[]);
        assert_eq!(s, 200);
    }
    let took = all_stored_once(&q, 2 * next, Duration::from_secs(60));
    let m = agent.metrics();
    let opened = metric(
        &m,
        &format!(
            "strata_agent_breaker_opened_total{{collector=\"{}\"}}",
            collectors[1].flight
        ),
    );
    assert!(opened >= 1.0, "{m}");
    // Traces that lived on c1 now have spans on both collectors: returned whole.
    let files: Vec<String> = walk(Path::new(&storage));
    assert!(
        files.iter().any(|f| f.contains("/c1-")),
        "c1 wrote files before it died"
    );
    for t in 1u64..=40 {
        let (s, body) = get(&format!("{q}/api/traces/{t:032x}"));
        assert_eq!(s, 200, "{body}");
        assert_eq!(body.matches("\"spanId\"").count(), 10, "trace {t:x} whole");
    }
    let moved = |reason: &str| {
        metric(
            &m,
            &format!("strata_agent_rerouted_batches_total{{reason=\"{reason}\"}}"),
        )
    };
    eprintln!(
        "failover (one of two collectors dead): sent {} spans, stored {} once, refused 0; \
         batches moved: {} never sent, {} sent without answer; everything stored {:.1} s \
         after the collector died",
        2 * next,
        2 * next,
        moved("failover"),
        moved("abandoned"),
        (died.elapsed().min(took + Duration::from_secs(60))).as_secs_f64()
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
