//! The storage lifecycle end to end, on a local directory and on a real S3 server (moto):
//! `strata standalone` ingests spans into many small files, `strata compact --once` merges
//! them (the report says what it did), every query answers the same before and after, and a
//! retention pass makes the old partition disappear.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const REQUESTS: u64 = 12;

/// `strata compact --once --json` with `args` and `envs`; the parsed report.
fn compact(args: &[&str], envs: &[(String, String)]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["compact", "--once", "--json"]).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run strata compact");
    assert!(
        out.status.success(),
        "strata compact failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn lifecycle(dir: &std::path::Path, storage: &str, envs: &[(String, String)]) {
    let env_refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut all = vec![("STRATA_AGENT__BATCH_MAX_AGE_MS", "20")];
    all.extend(env_refs.iter().copied());
    let s = standalone_with(dir, "standalone", None, &all, &["--storage", storage]);
    let total = REQUESTS * SPANS_PER_REQUEST;
    // One request per flush: many small files in one (long closed) hour.
    for r in 0..REQUESTS {
        let (code, body) = post_json(
            &format!("{}/v1/traces", s.agent_http),
            &spans_request(r * SPANS_PER_REQUEST, "checkout", 0),
            &[],
        );
        assert_eq!(code, 200, "{body}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let count = "SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans";
    eventually(Duration::from_secs(30), "every span stored", || {
        sql_scalar(&s.query, "SELECT count(*) FROM spans") == total
    });
    let before = sql(&s.query, count);
    let trace = format!("{:032x}", 7);
    let (code, by_id) = get(&format!("{}/api/v2/traces/{trace}", s.query));
    assert_eq!(code, 200, "{by_id}");

    let compactor_envs: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| {
            (
                k.replace("STRATA_COLLECTOR__", "STRATA_COMPACTOR__"),
                v.clone(),
            )
        })
        .collect();
    let report = compact(
        &[
            "--storage",
            storage,
            "--grace",
            "0s",
            "--delete-delay",
            "0s",
        ],
        &compactor_envs,
    );
    assert_eq!(report["partitions"], 1, "{report}");
    assert!(report["files_in"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(report["files_out"], 1, "{report}");
    assert_eq!(report["rows_out"], Value::from(total), "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(
        report["deleted_inputs"], report["files_in"],
        "inputs deleted at once with --delete-delay 0s: {report}"
    );
    // The same answers from the one compacted file (once the query's snapshot renewed).
    eventually(Duration::from_secs(10), "answers after compaction", || {
        sql(&s.query, count) == before
    });
    let (code, again) = get(&format!("{}/api/v2/traces/{trace}", s.query));
    assert_eq!(code, 200);
    let spans = |v: &str| v.matches("\"spanId\"").count();
    assert_eq!(spans(&again), spans(&by_id), "{again}");
    assert_eq!(spans(&again), 5);
    // A second pass has nothing to do.
    let idle = compact(&["--storage", storage, "--grace", "0s"], &compactor_envs);
    assert_eq!(idle["partitions"], 0, "{idle}");

    // The spans are from 2023: a 7-day retention removes their hour.
    let gone = compact(
        &[
            "--storage",
            storage,
            "--retention",
            "7d",
            "--delete-delay",
            "0s",
        ],
        &compactor_envs,
    );
    assert_eq!(gone["retention_partitions"], 1, "{gone}");
    assert_eq!(gone["deleted_inputs"], 1, "{gone}");
    eventually(
        Duration::from_secs(10),
        "nothing past the retention",
        || sql_scalar(&s.query, "SELECT count(*) FROM spans") == 0,
    );
    let (code, _) = get(&format!("{}/api/v2/traces/{trace}", s.query));
    assert_eq!(code, 404);
}

#[test]
fn compaction_and_retention_on_local_storage() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let storage = dir.join("storage").display().to_string();
    lifecycle(dir, &storage, &[]);
}

#[test]
fn pipeline_compaction_and_retention_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3) = S3Server::start(dir.path()) else {
        return;
    };
    let storage = format!("s3://{}/lifecycle", s3.bucket);
    lifecycle(dir.path(), &storage, &s3.envs("collector"));
}
