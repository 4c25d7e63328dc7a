//! End-to-end check of the load generator against a real `strata standalone` on loopback:
//! every signal, over gRPC and over HTTP, is acknowledged in full and then queryable with
//! exactly the acknowledged row count. This is what the benchmark figures rest on.
//!
//! The `strata` binary comes from the same target directory (`cargo test --workspace` builds
//! it); when only this package was built the test says so and skips.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn strata_binary() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_strata-loadgen")).with_file_name("strata");
    path.exists().then_some(path)
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ureq::get(url)
            .timeout(Duration::from_secs(2))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} not ready");
}

fn count(query: &str, table: &str) -> u64 {
    let body: serde_json::Value = ureq::post(&format!("{query}/api/v1/sql"))
        .timeout(Duration::from_secs(30))
        .send_json(serde_json::json!({ "query": format!("SELECT count(*) FROM {table}") }))
        .expect("SQL")
        .into_json()
        .expect("JSON");
    body["rows"][0][0].as_u64().expect("a count")
}

fn loadgen(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_strata-loadgen"))
        .args(args)
        .args(["--max-seconds", "60"])
        .stderr(Stdio::inherit())
        .output()
        .expect("run strata-loadgen");
    assert!(out.status.success(), "strata-loadgen failed");
    serde_json::from_slice(&out.stdout).expect("loadgen report is JSON")
}

#[test]
fn every_signal_over_grpc_and_http_is_acknowledged_and_stored() {
    let Some(strata) = strata_binary() else {
        eprintln!("SKIPPED: no strata binary next to strata-loadgen; run `cargo test --workspace`");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (grpc, http, api) = (free_port(), free_port(), free_port());
    let log = std::fs::File::create(dir.path().join("strata.log")).expect("log");
    let _strata = Killed(
        Command::new(strata)
            .args(["standalone", "--data-dir"])
            .arg(dir.path())
            .args(["--otlp-grpc", &format!("127.0.0.1:{grpc}")])
            .args(["--otlp-http", &format!("127.0.0.1:{http}")])
            .args(["--http", &format!("127.0.0.1:{api}")])
            .args(["--flight", &format!("127.0.0.1:{}", free_port())])
            .args(["--collector-http", &format!("127.0.0.1:{}", free_port())])
            .env("STRATA_COLLECTOR__FLUSH_MAX_AGE_MS", "300")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn strata"),
    );
    let query = format!("http://127.0.0.1:{api}");
    wait_ready(&format!("{query}/ready"));
    wait_ready(&format!("http://127.0.0.1:{http}/ready"));
    let grpc = format!("http://127.0.0.1:{grpc}");
    let http = format!("http://127.0.0.1:{http}");
    let ids = dir.path().join("ids");
    let runs: [(&str, &str, &str, Vec<&str>); 4] = [
        (
            "traces",
            "grpc",
            "spans",
            vec!["--count", "3000", "--traces-per-request", "4"],
        ),
        (
            "traces",
            "http",
            "spans",
            vec!["--count", "2000", "--seed", "2"],
        ),
        (
            "logs",
            "http",
            "logs",
            vec!["--count", "3000", "--per-request", "500"],
        ),
        (
            "metrics",
            "grpc",
            "metrics",
            vec!["--count", "4000", "--series", "500"],
        ),
    ];
    for (signal, protocol, table, extra) in runs {
        let before = count(&query, table);
        let endpoint = if protocol == "grpc" { &grpc } else { &http };
        let mut args = vec![
            "--signal",
            signal,
            "--protocol",
            protocol,
            "--endpoint",
            endpoint,
            "--concurrency",
            "2",
        ];
        let ids_arg = ids.display().to_string();
        if signal == "traces" {
            args.extend(["--write-ids", &ids_arg]);
        }
        args.extend(extra);
        let report = loadgen(&args);
        let acked = report["acked"].as_u64().expect("acked");
        assert_eq!(
            report["sent"], report["acked"],
            "{signal}/{protocol}: {report}"
        );
        assert_eq!(report["failed"], 0, "{report}");
        assert!(acked >= 2000, "{report}");
        if signal == "logs" {
            assert!(
                report["acked_raw_bytes"].as_u64() > Some(acked * 40),
                "{report}"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut stored = 0;
        while Instant::now() < deadline {
            stored = count(&query, table) - before;
            if stored >= acked {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(stored, acked, "{signal}/{protocol}: stored rows");
    }
    let report = loadgen(&[
        "--lookup-ids",
        &ids.display().to_string(),
        "--query",
        &query,
        "--lookups",
        "20",
    ]);
    assert_eq!(report["found"], 20, "{report}");

    // The remote write generator of the Prometheus comparison: every sample stored, and
    // PromQL sees every series.
    let before = count(&query, "metrics");
    let out = Command::new(env!("CARGO_BIN_EXE_strata-remote-write"))
        .args(["--url", &format!("{http}/api/v1/write")])
        .args([
            "--metric",
            "rw_counter:50",
            "--hours",
            "0.5",
            "--round",
            "7",
        ])
        .args(["--max-seconds", "60"])
        .stderr(Stdio::inherit())
        .output()
        .expect("run strata-remote-write");
    assert!(out.status.success(), "strata-remote-write failed");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["samples"], 50 * 30, "{report}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&query, "metrics") - before < 1500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(count(&query, "metrics") - before, 1500);
    let body: serde_json::Value = ureq::get(&format!("{query}/api/v1/query"))
        .query("query", "count(rw_counter)")
        .query(
            "time",
            &(report["last_ms"].as_f64().expect("last_ms") / 1000.0).to_string(),
        )
        .call()
        .expect("PromQL")
        .into_json()
        .expect("JSON");
    assert_eq!(body["data"]["result"][0]["value"][1], "50", "{body}");
}
