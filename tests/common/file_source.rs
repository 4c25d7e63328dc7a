//! Helpers of the file-source tests: a standalone with `[[agent.files]]` sources, sequence
//! writers that rotate by rename or copytruncate, and checks that every written line is
//! stored exactly once. Every writer and every wait is bounded in count and time.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Standalone, sql, sql_scalar};

/// A `strata standalone` with a configuration file of file sources.
pub fn with_sources(dir: &Path, name: &str, sources: &str) -> Standalone {
    super::standalone(dir, name, Some(sources), &[])
}

/// One `[[agent.files]]` table tuned for tests: fast polling and discovery, short rotate
/// wait.
pub fn source(name: &str, include: &[&Path], extra: &str) -> String {
    source_discovering(name, include, 100, extra)
}

/// [`source`] with globs expanded every `discovery_ms`.
pub fn source_discovering(name: &str, include: &[&Path], discovery_ms: u64, extra: &str) -> String {
    let globs: Vec<String> = include
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    format!(
        "[[agent.files]]\nname = \"{name}\"\ninclude = [{}]\npoll_interval_ms = 20\n\
         discovery_interval_ms = {discovery_ms}\nrotate_wait_ms = 1500\nbatch_max_age_ms = 50\n\
         partial_line_timeout_ms = 500\n{extra}\n",
        globs.join(", ")
    )
}

pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

pub fn scalar(q: &str, query: &str) -> u64 {
    sql_scalar(q, query).as_u64().unwrap_or(0)
}

/// Line `i` of the sequence writers: fixed width, so a torn line cannot pass for a whole one.
pub fn seq_line(i: u64) -> String {
    format!(
        "seq={i:08} {}",
        "x".repeat(40 + (i % 7) as usize * 3).replace('x', "ab")
    )
}

/// The runs of sequence numbers below `n` that are not stored, as `first..=last`: what a
/// failing test prints so that a loss can be told from a lost batch or a lost file.
pub fn missing_runs(q: &str, n: u64) -> Vec<String> {
    let v = sql(
        q,
        &format!(
            "SELECT prev, s FROM (SELECT s, lag(s, 1, -1) OVER (ORDER BY s) AS prev FROM \
             (SELECT DISTINCT CAST(substr(body, 5, 8) AS BIGINT) AS s FROM logs \
              UNION ALL SELECT {n})) WHERE s - prev > 1 ORDER BY s"
        ),
    );
    v["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let (prev, s) = (r[0].as_i64().unwrap_or(0), r[1].as_i64().unwrap_or(0));
            format!("{}..={}", prev + 1, s - 1)
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
pub enum Rotation {
    None,
    Rename,
    CopyTruncate,
}

/// Writes `total` sequence lines to `path` at about `per_sec`, rotating it every second as
/// `rotation` says; bounded by `max_time` too. Returns (lines written, rotations).
pub fn write_sequence(
    path: &Path,
    total: u64,
    per_sec: u64,
    rotation: Rotation,
    max_time: Duration,
) -> (u64, u64) {
    write_rotating(path, total, per_sec, rotation, max_time, |_| {
        Duration::from_secs(1)
    })
}

/// [`write_sequence`], rotating after `every(rotations so far)`.
pub fn write_rotating(
    path: &Path,
    total: u64,
    per_sec: u64,
    rotation: Rotation,
    max_time: Duration,
    every: impl Fn(u64) -> Duration,
) -> (u64, u64) {
    let open = |p: &Path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("open log")
    };
    let mut file = std::io::BufWriter::with_capacity(64 * 1024, open(path));
    let start = Instant::now();
    let mut last_rotation = start;
    let mut rotations = 0;
    let mut i = 0;
    let step = (per_sec / 100).max(1);
    while i < total && start.elapsed() < max_time {
        for _ in 0..step.min(total - i) {
            writeln!(file, "{}", seq_line(i)).expect("write");
            i += 1;
        }
        file.flush().expect("flush");
        if rotation != Rotation::None && last_rotation.elapsed() >= every(rotations) {
            rotations += 1;
            last_rotation = Instant::now();
            let rotated = path.with_extension(format!("log.{rotations}"));
            match rotation {
                Rotation::Rename => {
                    std::fs::rename(path, &rotated).expect("rename");
                    file = std::io::BufWriter::with_capacity(64 * 1024, open(path));
                }
                Rotation::CopyTruncate => {
                    std::fs::copy(path, &rotated).expect("copy");
                    OpenOptions::new()
                        .write(true)
                        .open(path)
                        .and_then(|f| f.set_len(0))
                        .expect("truncate");
                }
                Rotation::None => {}
            }
        }
        // Pace: `i` lines should have taken i / per_sec seconds.
        let due = Duration::from_secs_f64(i as f64 / per_sec as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    (i, rotations)
}

/// (rows, distinct bodies) stored.
pub fn stored(q: &str) -> (u64, u64) {
    let v = sql(q, "SELECT count(*), count(DISTINCT body) FROM logs");
    (
        v["rows"][0][0].as_u64().unwrap_or(0),
        v["rows"][0][1].as_u64().unwrap_or(0),
    )
}

/// Waits until the stored count stops changing for `quiet` (bounded by `within`).
pub fn settle(q: &str, within: Duration, quiet: Duration) -> (u64, u64) {
    let deadline = Instant::now() + within;
    let mut last = stored(q);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = stored(q);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
}

/// Every stored body is one of the written lines `0..n`, each exactly once.
pub fn assert_exact_sequence(q: &str, n: u64) {
    let (rows, distinct) = stored(q);
    assert_eq!(
        (rows, distinct),
        (n, n),
        "rows, distinct bodies of {n} written"
    );
    let well_formed = scalar(
        q,
        "SELECT count(*) FROM logs WHERE body LIKE 'seq=________ abab%'",
    );
    assert_eq!(well_formed, n);
    let v = sql(q, "SELECT min(body), max(body) FROM logs");
    assert_eq!(v["rows"][0][0].as_str(), Some(seq_line(0).as_str()));
    assert_eq!(v["rows"][0][1].as_str(), Some(seq_line(n - 1).as_str()));
}
