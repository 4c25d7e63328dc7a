//! End-to-end tests of the agent's file source through rotation, with the real `strata`
//! binary on loopback: rename and copytruncate under a fast writer, rotation faster than the
//! discovery interval (followed through file events), and files rotated or truncated while
//! the agent was down.
//!
//! Every writer and every wait is bounded in count and time.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use common::file_source::*;
use common::*;

#[test]
fn rename_rotation_under_a_fast_writer_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    let s = with_sources(dir.path(), "rename", &source("app", &[&app], ""));
    let (n, rotations) = write_sequence(
        &app,
        30_000,
        5_000,
        Rotation::Rename,
        Duration::from_secs(20),
    );
    assert!(rotations >= 4, "{rotations} rotations");
    eventually(Duration::from_secs(90), "every written line stored", || {
        stored(&s.query).1 >= n
    });
    let (rows, distinct) = settle(&s.query, Duration::from_secs(10), Duration::from_secs(1));
    println!(
        "rename: {n} lines written over {rotations} rotations; {rows} rows, {distinct} distinct"
    );
    assert_exact_sequence(&s.query, n);
    // Rotated files were read to their end, then let go.
    eventually(Duration::from_secs(30), "rotated files released", || {
        metric(
            &get(&format!("{}/metrics", s.agent_http)).1,
            "strata_agent_file_released_total",
        ) >= rotations
    });
    drop(s.proc);
}

/// Rotation every 50-100 ms under a writer of 10,000 lines a second, with the default
/// discovery interval of 1 s: most files live and are rotated away between two discoveries.
/// With file events every line arrives exactly once; polling alone (`watch = false`, the
/// control) loses the files it never saw.
#[test]
fn rotation_faster_than_discovery_is_followed_through_file_events() {
    let every = |r: u64| Duration::from_millis(50 + (r * 37) % 51);
    let run = |name: &str, watch: bool| {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let app = logs.join("app.log");
        let s = with_sources(
            dir.path(),
            name,
            &source_discovering("app", &[&app], 1000, &format!("watch = {watch}")),
        );
        let (n, rotations) = write_rotating(
            &app,
            20_000,
            10_000,
            Rotation::Rename,
            Duration::from_secs(20),
            every,
        );
        assert_eq!(n, 20_000);
        (dir, s, n, rotations)
    };
    let (_dir, s, n, rotations) = run("fast-rotation", true);
    assert!(rotations >= 15, "{rotations} rotations");
    eventually(Duration::from_secs(60), "every written line stored", || {
        stored(&s.query).1 >= n
    });
    let (rows, distinct) = settle(&s.query, Duration::from_secs(10), Duration::from_secs(1));
    println!(
        "fast rotation, events: {n} lines over {rotations} rotations; {rows} rows, {distinct} distinct"
    );
    if (rows, distinct) != (n, n) {
        println!("missing: {:?}", missing_runs(&s.query, n));
    }
    assert_exact_sequence(&s.query, n);
    drop(s);
    let (_dir, s, n, rotations) = run("fast-rotation-polling", false);
    let (rows, distinct) = settle(&s.query, Duration::from_secs(10), Duration::from_secs(2));
    println!(
        "fast rotation, polling only: {n} lines over {rotations} rotations; {rows} rows, {distinct} distinct"
    );
    assert!(
        distinct < n,
        "polling alone cannot see files rotated between discoveries"
    );
    drop(s);
}

#[test]
fn copytruncate_rotation_has_no_duplicates_and_counts_truncations() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    let s = with_sources(dir.path(), "copytruncate", &source("app", &[&app], ""));
    let (n, rotations) = write_sequence(
        &app,
        30_000,
        5_000,
        Rotation::CopyTruncate,
        Duration::from_secs(20),
    );
    assert!(rotations >= 4, "{rotations} rotations");
    let (rows, distinct) = settle(&s.query, Duration::from_secs(90), Duration::from_secs(3));
    let metrics = get(&format!("{}/metrics", s.agent_http)).1;
    let truncations = metric(&metrics, "strata_agent_file_truncations_total");
    let unread = metric(&metrics, "strata_agent_file_truncated_unread_bytes_total");
    let recovered = metric(
        &metrics,
        "strata_agent_file_truncated_recovered_bytes_total",
    );
    let lost = n - distinct;
    println!(
        "copytruncate: {n} lines written, {rotations} rotations; stored {rows} rows, {distinct} \
         distinct; lost {lost} lines; agent counted {truncations} truncations, read {recovered} \
         bytes from the copies, {unread} bytes known unread"
    );
    assert_eq!(rows, distinct, "no line is stored twice");
    // Whatever was stored is what was written.
    assert_eq!(
        scalar(
            &s.query,
            "SELECT count(*) FROM logs WHERE body LIKE 'seq=________ abab%'"
        ),
        rows
    );
    assert!(truncations >= 1 && truncations <= rotations);
    // The writer wrote nothing between copy and truncate: when the tailer saw every
    // truncation, it finished each old content from its copy and lost nothing.
    if truncations == rotations {
        assert_eq!(
            lost,
            0,
            "lost lines although every truncation was seen: {:?}\n{}",
            missing_runs(&s.query, n),
            s.proc
                .log_text()
                .lines()
                .filter(|l| l.contains("truncated"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    } else {
        println!(
            "the tailer missed {} truncations (machine too busy)",
            rotations - truncations
        );
    }
    drop(s.proc);
}

#[test]
fn files_copytruncated_or_renamed_while_the_agent_was_down_are_finished() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    let cfg = source("app", &[&app], "");
    let append = |from: u64, to: u64| {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&app)
            .unwrap();
        for i in from..to {
            writeln!(f, "{}", seq_line(i)).unwrap();
        }
    };
    append(0, 1000);
    let s = with_sources(dir.path(), "down-1", &cfg);
    eventually(Duration::from_secs(30), "the first lines", || {
        stored(&s.query).1 == 1000
    });
    let mut proc = s.proc;
    assert!(proc.terminate(Duration::from_secs(30)), "clean shutdown");
    // While the agent is down: more lines, then logrotate copytruncate, then new lines.
    append(1000, 1500);
    std::fs::copy(&app, logs.join("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&app)
        .and_then(|f| f.set_len(0))
        .unwrap();
    append(1500, 1700);
    let s = with_sources(dir.path(), "down-2", &cfg);
    eventually(Duration::from_secs(30), "every line", || {
        stored(&s.query).1 >= 1700
    });
    settle(&s.query, Duration::from_secs(10), Duration::from_secs(1));
    assert_exact_sequence(&s.query, 1700);
    let m = get(&format!("{}/metrics", s.agent_http)).1;
    assert_eq!(metric(&m, "strata_agent_file_truncations_total"), 1);
    assert!(metric(&m, "strata_agent_file_truncated_recovered_bytes_total") > 0);
    // Down again: more lines, then a rename rotation out of the glob and a new file. The
    // renamed file is found by its inode and finished.
    let mut proc = s.proc;
    assert!(proc.terminate(Duration::from_secs(30)), "clean shutdown");
    append(1700, 1800);
    std::fs::rename(&app, logs.join("app.log.2")).unwrap();
    append(1800, 1900);
    let s = with_sources(dir.path(), "down-3", &cfg);
    eventually(Duration::from_secs(30), "every line", || {
        stored(&s.query).1 >= 1900
    });
    settle(&s.query, Duration::from_secs(10), Duration::from_secs(1));
    assert_exact_sequence(&s.query, 1900);
    eventually(Duration::from_secs(30), "the renamed file let go", || {
        metric(
            &get(&format!("{}/metrics", s.agent_http)).1,
            "strata_agent_file_released_total",
        ) == 1
    });
}
