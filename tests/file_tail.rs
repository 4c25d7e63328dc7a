//! End-to-end tests of the agent's file source, with the real `strata` binary on loopback
//! (rotation is in `file_rotation.rs`): `kill -9` of the agent while it ships, files that share their first bytes or start empty, Kubernetes container logs (CRI
//! and Docker, partial lines joined), multiline stack traces, and the loghub samples.
//!
//! Every writer and every wait is bounded in count and time.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::file_source::*;
use common::*;

/// A tiny deterministic generator for the kill times (seed printed for reruns).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kill9_of_the_agent_loses_nothing_and_duplicates_at_most_the_batches_in_flight() {
    const BATCH: u64 = 500;
    const KILLS: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let storage = storage.to_str().unwrap().to_string();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    let mut collector = Collector::new(dir.path(), "c1");
    collector.start(dir.path(), &storage);
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

    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        source(
            "app",
            &[&app],
            &format!("batch_max_records = {BATCH}\nmax_inflight_batches = 2\n"),
        ),
    )
    .unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let start_agent = |n: u64| {
        let mut p = strata(
            &format!("agent-{n}"),
            dir.path(),
            &[
                "--config",
                config.to_str().unwrap(),
                "agent",
                "--data-dir",
                dir.path().join("agent").to_str().unwrap(),
                "--otlp-grpc",
                &format!("127.0.0.1:{}", free_port()),
                "--otlp-http",
                &http,
                "--collectors",
                &collector.flight,
            ],
            &[("STRATA_AGENT__BATCH_MAX_AGE_MS", "50")],
        );
        wait_ready(
            &format!("http://{http}/ready"),
            Duration::from_secs(30),
            &mut p,
        );
        p
    };

    let writer_path = app.clone();
    let writer = std::thread::spawn(move || {
        write_sequence(
            &writer_path,
            40_000,
            4_000,
            Rotation::None,
            Duration::from_secs(30),
        )
    });
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("kill times seed: {seed}");
    let mut rng = XorShift(seed);
    let mut agent = start_agent(0);
    for k in 1..=KILLS {
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        agent.kill9();
        agent = start_agent(k);
    }
    let (n, _) = writer.join().expect("writer");
    eventually(Duration::from_secs(90), "every written line stored", || {
        stored(&q).1 >= n
    });
    let (rows, distinct) = settle(&q, Duration::from_secs(10), Duration::from_secs(1));
    let duplicates = rows - distinct;
    println!(
        "kill -9: {n} lines written, {KILLS} kills; stored {rows} rows, {distinct} distinct, \
         {duplicates} duplicates (bound: {KILLS} kills x {BATCH}-record batches x 2 in flight)"
    );
    assert_eq!(distinct, n, "every line arrives");
    assert!(
        duplicates <= KILLS * BATCH * 2,
        "{duplicates} duplicates over {KILLS} kills"
    );
    assert_eq!(
        scalar(
            &q,
            "SELECT count(*) FROM logs WHERE body LIKE 'seq=________ abab%'"
        ),
        rows
    );
    drop(agent);
}

#[test]
fn a_stalled_collector_stops_the_tailer_not_the_memory() {
    const LINES: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage").to_str().unwrap().to_string();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut collector = Collector::new(dir.path(), "c1");
    collector.start(dir.path(), &storage);
    let config = dir.path().join("agent.toml");
    let app = logs.join("big.log");
    std::fs::write(
        &config,
        source(
            "big",
            &[&app],
            "batch_max_bytes = 1048576\nmax_inflight_batches = 2\n",
        ),
    )
    .unwrap();
    // The collector stops answering before the file appears.
    let collector_proc = collector.proc.as_ref().unwrap();
    collector_proc.signal("STOP");
    let http = format!("127.0.0.1:{}", free_port());
    let mut agent = strata(
        "agent",
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "agent",
            "--data-dir",
            dir.path().join("agent").to_str().unwrap(),
            "--otlp-grpc",
            &format!("127.0.0.1:{}", free_port()),
            "--otlp-http",
            &http,
            "--collectors",
            &collector.flight,
        ],
        &[("STRATA_AGENT__SHIP_TIMEOUT_MS", "1000")],
    );
    wait_ready(
        &format!("http://{http}/ready"),
        Duration::from_secs(30),
        &mut agent,
    );
    let text: String = (0..LINES).map(|i| seq_line(i) + "\n").collect();
    std::fs::write(&app, &text).unwrap();
    let metrics = || get(&format!("http://{http}/metrics")).1;
    eventually(Duration::from_secs(30), "the tailer holds back", || {
        let m = metrics();
        metric(&m, "strata_agent_file_backpressure_total") > 0
            && metric(&m, "strata_agent_file_lag_bytes") > text.len() as u64 / 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let m = metrics();
    let read = metric(&m, "strata_agent_file_bytes_total");
    let rss = agent.rss_bytes();
    println!(
        "stalled collector: read {read} of {} bytes, agent RSS {} MiB",
        text.len(),
        rss >> 20
    );
    assert!(
        read < text.len() as u64 / 2,
        "read {read} bytes while stalled"
    );
    assert!(rss < 200 << 20, "agent RSS {rss} bytes");
    collector.proc.as_ref().unwrap().signal("CONT");
    eventually(Duration::from_secs(120), "every line acknowledged", || {
        metric(&metrics(), "strata_agent_file_acked_records_total") >= LINES
    });
    let m = metrics();
    assert_eq!(metric(&m, "strata_agent_file_records_total"), LINES);
}

#[test]
fn start_position_for_files_found_at_the_first_start_and_deleted_files_are_finished() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let old = logs.join("old.log");
    std::fs::write(&old, "old 1\nold 2\nold 3\n").unwrap();
    let glob = logs.join("*.log");
    let s = with_sources(
        dir.path(),
        "start-at-end",
        &source("logs", &[&glob], "start_at = \"end\""),
    );
    let q = s.query.as_str();
    let metrics = || get(&format!("{}/metrics", s.agent_http)).1;
    eventually(Duration::from_secs(30), "old.log tracked", || {
        metric(&metrics(), "strata_agent_file_tracked_files") == 1
    });
    // Already there at the first start: only what comes next. New files: from their start.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&old)
        .unwrap()
        .write_all(b"old 4\n")
        .unwrap();
    let new = logs.join("new.log");
    std::fs::write(&new, "new 1\nnew 2\n").unwrap();
    eventually(Duration::from_secs(30), "old 4 and new.log", || {
        scalar(q, "SELECT count(*) FROM logs") >= 3
    });
    // A file deleted while it is read is finished, then let go: stop the process, append,
    // delete, let it go on.
    s.proc.signal("STOP");
    let mut f = std::fs::OpenOptions::new().append(true).open(&new).unwrap();
    for i in 3..=1000 {
        writeln!(f, "new {i}").unwrap();
    }
    drop(f);
    std::fs::remove_file(&new).unwrap();
    s.proc.signal("CONT");
    eventually(
        Duration::from_secs(60),
        "the deleted file read to its end",
        || scalar(q, "SELECT count(*) FROM logs WHERE body LIKE 'new %'") >= 1000,
    );
    eventually(Duration::from_secs(30), "the deleted file let go", || {
        let m = metrics();
        metric(&m, "strata_agent_file_released_total") == 1
            && metric(&m, "strata_agent_file_open_files") == 1
    });
    // Truncated in place (no copy next to it): read again from its start, counted.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_len(0))
        .unwrap();
    std::fs::write(&old, "old 5\n").unwrap();
    eventually(
        Duration::from_secs(30),
        "the truncated file read again",
        || scalar(q, "SELECT count(*) FROM logs WHERE body = 'old 5'") == 1,
    );
    assert_eq!(metric(&metrics(), "strata_agent_file_truncations_total"), 1);
    settle(q, Duration::from_secs(10), Duration::from_secs(1));
    let v = sql(
        q,
        "SELECT count(*), count(DISTINCT body), min(body) FROM logs WHERE body LIKE 'old %'",
    );
    assert_eq!(v["rows"], serde_json::json!([[2, 2, "old 4"]]));
    let v = sql(
        q,
        "SELECT count(*), count(DISTINCT body) FROM logs WHERE body LIKE 'new %'",
    );
    assert_eq!(v["rows"], serde_json::json!([[1000, 1000]]));
}

#[test]
fn files_with_the_same_header_and_files_that_start_empty_are_all_read() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // Longer than the fingerprint: the two files are equal in their first 2 KiB.
    let header: String = (0..40)
        .map(|i| format!("2024-05-01 10:00:{:02} INFO same header line {i}\n", i % 60))
        .collect();
    let paths: Vec<PathBuf> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| logs.join(format!("{n}.log")))
        .collect();
    std::fs::write(&paths[0], format!("{header}only in a\n")).unwrap();
    std::fs::write(&paths[1], format!("{header}only in b\n")).unwrap();
    File::create(&paths[2]).unwrap();
    File::create(&paths[3]).unwrap();
    let glob = logs.join("*.log");
    let cfg = source("logs", &[&glob], "");
    let s = with_sources(dir.path(), "same-header-1", &cfg);
    let per_file = |q: &str, name: &str| {
        scalar(
            q,
            &format!(
                "SELECT count(*) FROM logs WHERE attributes['log.file.path']['str'] LIKE '%/{name}.log'"
            ),
        )
    };
    eventually(Duration::from_secs(30), "a and b read", || {
        per_file(&s.query, "a") == 41 && per_file(&s.query, "b") == 41
    });
    // The empty files grow, with the same content, after they were first seen.
    for p in &paths[2..] {
        let mut f = OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(header.as_bytes()).unwrap();
    }
    eventually(Duration::from_secs(30), "c and d read", || {
        per_file(&s.query, "c") == 40 && per_file(&s.query, "d") == 40
    });
    // After a restart, each file resumes where it stopped.
    let mut proc = s.proc;
    assert!(proc.terminate(Duration::from_secs(30)), "clean shutdown");
    for p in &paths {
        let mut f = OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(b"after restart\n").unwrap();
    }
    let s = with_sources(dir.path(), "same-header-2", &cfg);
    eventually(Duration::from_secs(30), "the new lines read", || {
        scalar(
            &s.query,
            "SELECT count(*) FROM logs WHERE body = 'after restart'",
        ) == 4
    });
    settle(&s.query, Duration::from_secs(10), Duration::from_secs(1));
    for (name, n) in [("a", 42), ("b", 42), ("c", 41), ("d", 41)] {
        assert_eq!(per_file(&s.query, name), n, "{name}.log");
    }
    let c = sql(
        &s.query,
        "SELECT count(*) FROM logs WHERE severity_text = 'INFO' AND time < '2024-05-02T00:00:00Z'",
    );
    assert_eq!(
        c["rows"][0][0].as_u64(),
        Some(160),
        "time and severity detected"
    );
}

#[test]
fn kubernetes_container_logs_multiline_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    let cri =
        root.join("pods/shop_checkout-5d8f_0b5e2a8e-1111-4b6c-9d3e-2f6a7c8d9e0f/server/0.log");
    let docker = root.join("pods/shop_web-7c9d_5e1c2a9b-2222-4e5f-9a1b-1234567890ab/nginx/2.log");
    std::fs::create_dir_all(cri.parent().unwrap()).unwrap();
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    // A compressed rotated file next to the live one: never read.
    let mut gz = File::create(app.join("billing.log.1.gz")).unwrap();
    gz.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    let pods_glob = root.join("pods/*/*/*.log");
    let app_glob = app.join("*");
    let json_log = root.join("json/api.log");
    std::fs::create_dir_all(json_log.parent().unwrap()).unwrap();
    let cfg = [
        source("pods", &[&pods_glob], "format = \"auto\""),
        source(
            "billing",
            &[&app_glob],
            "service = \"billing\"\nmax_line_bytes = 1024\n\
             multiline = { start = '^\\d{4}-\\d{2}-\\d{2} ', timeout_ms = 300 }",
        ),
        source("api", &[&json_log], "parser = \"json\""),
    ]
    .concat();
    let s = with_sources(dir.path(), "k8s", &cfg);
    let q = s.query.as_str();

    std::fs::write(
        &cri,
        "2024-05-01T10:00:00.000000001Z stdout P first part, \n\
         2024-05-01T10:00:00.000000002Z stdout P second part, \n\
         2024-05-01T10:00:00.000000003Z stdout F end\n\
         2024-05-01T10:00:01.000000000Z stderr F {\"level\":\"error\"} failed\n",
    )
    .unwrap();
    std::fs::write(
        &docker,
        concat!(
            r#"{"log":"GET /index.html 200\n","stream":"stdout","time":"2024-05-01T10:00:02Z"}"#,
            "\n",
            r#"{"log":"a long line cut by the runtime ","stream":"stdout","time":"2024-05-01T10:00:03Z"}"#,
            "\n",
            r#"{"log":"and its end\n","stream":"stdout","time":"2024-05-01T10:00:03Z"}"#,
            "\n",
        ),
    )
    .unwrap();
    let java = "\
2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster
2015-10-18 18:01:48,963 ERROR [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Error starting MRAppMaster
java.io.IOException: Failed on local exception: java.io.IOException: Connection reset by peer
\tat org.apache.hadoop.net.NetUtils.wrapException(NetUtils.java:772)
\tat org.apache.hadoop.ipc.Client.call(Client.java:1472)
Caused by: java.io.IOException: Connection reset by peer
\tat sun.nio.ch.FileDispatcherImpl.read0(Native Method)
\t... 12 more
2015-10-18 18:01:49,001 WARN [main] org.apache.hadoop.hdfs.LeaseRenewer: Failed to renew lease
java.net.ConnectException: Connection refused
\tat sun.nio.ch.SocketChannelImpl.checkConnect(Native Method)
";
    let mut billing = java.as_bytes().to_vec();
    billing.extend_from_slice(b"2015-10-18 18:01:50,000 INFO [main] caf\xe9 latin-1 bytes\n");
    billing.extend_from_slice(
        format!("2015-10-18 18:01:51,000 INFO [main] {}\n", "y".repeat(5000)).as_bytes(),
    );
    std::fs::write(app.join("billing.log"), billing).unwrap();
    std::fs::write(
        &json_log,
        "{\"ts\":\"2024-05-01T10:00:05Z\",\"level\":\"warn\",\"msg\":\"slow\",\"latency_ms\":812}\nnot json\n",
    )
    .unwrap();

    let expected = 2 + 2 + 5 + 2;
    let in_time = std::panic::catch_unwind(|| {
        eventually(Duration::from_secs(30), "all records stored", || {
            scalar(q, "SELECT count(*) FROM logs") >= expected
        })
    });
    if in_time.is_err() {
        let v = sql(q, "SELECT service_name, body FROM logs ORDER BY time");
        panic!(
            "expected {expected} records, have {v}\nagent metrics:\n{}",
            get(&format!("{}/metrics", s.agent_http)).1
        );
    }
    settle(q, Duration::from_secs(10), Duration::from_secs(1));
    // CRI: three partial lines are one record; Kubernetes metadata from the path.
    let v = sql(
        q,
        "SELECT body, k8s_namespace_name, k8s_pod_name, k8s_container_name, service_name, \
         attributes['log.iostream']['str'], resource_attributes['k8s.pod.uid']['str'], time \
         FROM logs WHERE k8s_container_name = 'server' ORDER BY time",
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0][0], "first part, second part, end");
    assert_eq!(rows[0][1], "shop");
    assert_eq!(rows[0][2], "checkout-5d8f");
    assert_eq!(rows[0][4], "server");
    assert_eq!(rows[0][5], "stdout");
    assert_eq!(rows[0][6], "0b5e2a8e-1111-4b6c-9d3e-2f6a7c8d9e0f");
    assert_eq!(rows[1][5], "stderr");
    // Docker json-file: decoded, partial joined.
    let v = sql(
        q,
        "SELECT body FROM logs WHERE k8s_container_name = 'nginx' ORDER BY time",
    );
    assert_eq!(
        v["rows"],
        serde_json::json!([
            ["GET /index.html 200"],
            ["a long line cut by the runtime and its end"]
        ])
    );
    // Multiline: each stack trace is one record with its lines.
    let v = sql(
        q,
        "SELECT body, severity_number FROM logs WHERE service_name = 'billing' ORDER BY time",
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{v}");
    let error = rows[1][0].as_str().unwrap();
    assert!(error.starts_with("2015-10-18 18:01:48,963 ERROR"));
    assert!(error.ends_with("\t... 12 more"), "{error}");
    assert_eq!(error.lines().count(), 7);
    assert_eq!(rows[1][1], 17);
    assert_eq!(rows[2][0].as_str().unwrap().lines().count(), 3);
    assert_eq!(
        rows[3][0].as_str().unwrap(),
        "2015-10-18 18:01:50,000 INFO [main] caf\u{fffd} latin-1 bytes"
    );
    assert_eq!(
        rows[4][0].as_str().unwrap().len(),
        1024,
        "long line truncated"
    );
    // JSON lines: fields mapped; a line that is not JSON kept whole.
    let v = sql(
        q,
        "SELECT body, severity_text, attributes['latency_ms']['int'] FROM logs \
         WHERE service_name = 'unknown_service' ORDER BY body",
    );
    assert_eq!(
        v["rows"],
        serde_json::json!([["not json", "", null], ["slow", "warn", 812]])
    );
    let metrics = get(&format!("{}/metrics", s.agent_http)).1;
    assert_eq!(
        metric(
            &metrics,
            "strata_agent_file_skipped_total{source=\"billing\",reason=\"compressed\"}"
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "strata_agent_file_issues_total{source=\"billing\",kind=\"long\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &metrics,
            "strata_agent_file_issues_total{source=\"billing\",kind=\"invalid_utf8\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &metrics,
            "strata_agent_file_issues_total{source=\"api\",kind=\"parse\"}"
        ),
        1
    );
}

#[test]
fn thousands_of_files_are_read_with_a_bounded_number_open() {
    const FILES: usize = 2_000;
    const OPEN: i64 = 64;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("many");
    std::fs::create_dir_all(&logs).unwrap();
    for i in 0..FILES {
        std::fs::write(
            logs.join(format!("f{i:05}.log")),
            format!("file {i} line 1\n"),
        )
        .unwrap();
    }
    let glob = logs.join("*.log");
    let s = with_sources(
        dir.path(),
        "many",
        &source("many", &[&glob], &format!("max_open_files = {OPEN}")),
    );
    eventually(
        Duration::from_secs(90),
        "the first line of every file",
        || scalar(&s.query, "SELECT count(*) FROM logs") >= FILES as u64,
    );
    // Every file grows again: closed files are reopened and read.
    for i in (0..FILES).step_by(7) {
        let mut f = OpenOptions::new()
            .append(true)
            .open(logs.join(format!("f{i:05}.log")))
            .unwrap();
        writeln!(f, "file {i} line 2").unwrap();
    }
    let grown = FILES.div_ceil(7) as u64;
    eventually(Duration::from_secs(90), "the second lines", || {
        scalar(
            &s.query,
            "SELECT count(*) FROM logs WHERE body LIKE '% line 2'",
        ) >= grown
    });
    let (rows, distinct) = settle(&s.query, Duration::from_secs(10), Duration::from_secs(1));
    assert_eq!(
        (rows, distinct),
        (FILES as u64 + grown, FILES as u64 + grown)
    );
    let metrics = get(&format!("{}/metrics", s.agent_http)).1;
    let open = metric(&metrics, "strata_agent_file_open_files{source=\"many\"}");
    assert!(open as i64 <= OPEN, "{open} files open");
    assert_eq!(
        metric(&metrics, "strata_agent_file_tracked_files{source=\"many\"}"),
        FILES as u64
    );
}

#[test]
fn every_loghub_sample_parses() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/loghub");
    let mut samples: Vec<PathBuf> = std::fs::read_dir(&shared)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    samples.retain(|p| p.extension().is_some_and(|e| e == "log"));
    if samples.is_empty() {
        println!("skipped: no loghub samples at ../shared/data/loghub (not part of a clone)");
        return;
    }
    samples.sort();
    let dir = tempfile::tempdir().unwrap();
    let glob = shared.join("*.log");
    let s = with_sources(dir.path(), "loghub", &source("loghub", &[&glob], ""));
    let lines: u64 = samples
        .iter()
        .map(|p| {
            std::fs::read(p)
                .unwrap()
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u64
        })
        .sum();
    eventually(Duration::from_secs(60), "every loghub line stored", || {
        scalar(&s.query, "SELECT count(*) FROM logs") >= lines
    });
    let (rows, _) = settle(&s.query, Duration::from_secs(10), Duration::from_secs(1));
    assert_eq!(rows, lines);
    let metrics = get(&format!("{}/metrics", s.agent_http)).1;
    for kind in ["malformed", "parse", "long"] {
        assert_eq!(
            metric(
                &metrics,
                &format!("strata_agent_file_issues_total{{source=\"loghub\",kind=\"{kind}\"}}")
            ),
            0,
            "{kind}"
        );
    }
    // Per sample: records, and how many got a time and a severity from their line.
    let v = sql(
        &s.query,
        "SELECT attributes['log.file.path']['str'] AS f, count(*), \
         sum(CASE WHEN time < observed_time - INTERVAL '1 hour' THEN 1 ELSE 0 END), \
         sum(CASE WHEN severity_number > 0 THEN 1 ELSE 0 END) FROM logs GROUP BY f ORDER BY f",
    );
    for row in v["rows"].as_array().unwrap() {
        println!(
            "loghub {}: {} records, {} timed, {} with severity",
            row[0], row[1], row[2], row[3]
        );
        assert_eq!(row[1].as_u64(), Some(2000), "{row}");
    }
    let timed: u64 = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[2].as_u64().unwrap_or(0))
        .sum();
    assert!(timed >= 8 * 2000, "timestamps detected in {timed} records");
}
