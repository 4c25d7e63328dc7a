//! The Parquet layout in storage, Hive-style so that DataFusion prunes files by path:
//!
//! ```text
//! tenant=<tenant>/signal=<traces|logs|metrics>/date=YYYY-MM-DD/hour=HH/<collector>-<ulid>.parquet
//! ```
//!
//! The hour is the UTC hour of the row's time column (a span's start time). A file's name is
//! unique (collector id + ULID), so collectors never overwrite each other's files. The
//! compactor's outputs are named `compacted.<ulid>.parquet` (a collector id cannot hold a
//! `.`), and the commit records of a signal's partitions live beside them, out of the
//! partitions' own directories:
//!
//! ```text
//! tenant=<tenant>/signal=<signal>/_commits/YYYY-MM-DDTHH/<seq, 10 digits>.json
//! ```

use chrono::{DateTime, Utc};
use strata_schema::Signal;

/// Nanoseconds in one hour; partitions are whole UTC hours.
pub const HOUR_NANOS: i64 = 3_600_000_000_000;

/// Partition columns in path order, as DataFusion sees them below a tenant's signal directory.
pub const TIME_PARTITION_COLUMNS: [&str; 2] = ["date", "hour"];

/// Directory of one tenant's signal, relative to the storage root.
pub fn signal_dir(tenant: &str, signal: Signal) -> String {
    format!("tenant={tenant}/signal={}", signal.as_str())
}

/// Directory of the partition starting at `hour` (hours since the epoch).
pub fn partition_dir(tenant: &str, signal: Signal, hour: i64) -> String {
    format!("{}/{}", signal_dir(tenant, signal), partition_name(hour))
}

/// The partition directories of `hour` (hours since the epoch): `date=YYYY-MM-DD/hour=HH`.
pub fn partition_name(hour: i64) -> String {
    let start = DateTime::<Utc>::from_timestamp(hour.saturating_mul(3600), 0).unwrap_or_default();
    format!(
        "date={}/hour={}",
        start.format("%Y-%m-%d"),
        start.format("%H")
    )
}

/// The hour (since the epoch) of the `date=`/`hour=` partition a path lies in, if it has one.
pub fn hour_of_partition(path: &str) -> Option<i64> {
    let mut date = None;
    let mut hour = None;
    for part in path.split('/') {
        if let Some(d) = part.strip_prefix("date=") {
            date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
        } else if let Some(h) = part.strip_prefix("hour=") {
            hour = h.parse::<u32>().ok().filter(|h| *h < 24);
        }
    }
    let start = date?.and_hms_opt(hour?, 0, 0)?.and_utc().timestamp();
    Some(start.div_euclid(3600))
}

/// Name of the directory of a signal's commit records.
pub const COMMITS_DIR: &str = "_commits";
/// File-name prefix of the compactor's outputs.
pub const COMPACTED_PREFIX: &str = "compacted.";

/// Directory of the commit records of the partition starting at `hour`, relative to the root.
pub fn commits_dir(tenant: &str, signal: Signal, hour: i64) -> String {
    format!(
        "{}/{COMMITS_DIR}/{}",
        signal_dir(tenant, signal),
        hour_key(hour)
    )
}

/// `YYYY-MM-DDTHH` of the hour `hour` (hours since the epoch).
pub fn hour_key(hour: i64) -> String {
    let start = DateTime::<Utc>::from_timestamp(hour.saturating_mul(3600), 0).unwrap_or_default();
    start.format("%Y-%m-%dT%H").to_string()
}

/// The hour of an `YYYY-MM-DDTHH` key.
pub fn hour_of_key(key: &str) -> Option<i64> {
    let (date, hour) = key.split_once('T')?;
    let hour: u32 = hour.parse().ok().filter(|h| *h < 24)?;
    let start = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(hour, 0, 0)?
        .and_utc()
        .timestamp();
    Some(start.div_euclid(3600))
}

/// A new, unique name of a compactor output.
pub fn compacted_name() -> String {
    format!(
        "{COMPACTED_PREFIX}{}.parquet",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// Whether `name` is a compactor output's name.
pub fn is_compacted(name: &str) -> bool {
    name.starts_with(COMPACTED_PREFIX) && name.ends_with(".parquet")
}

/// The tenant of a path below the storage root (`tenant=<t>/...`).
pub fn tenant_of(segment: &str) -> Option<&str> {
    segment.strip_prefix("tenant=")
}

/// Relative path of a new file for the partition starting at `hour` (hours since the epoch).
pub fn file_path(tenant: &str, signal: Signal, hour: i64, collector: &str) -> String {
    format!(
        "{}/{}",
        partition_dir(tenant, signal, hour),
        file_name(collector)
    )
}

/// A new, unique file name of `collector`.
fn file_name(collector: &str) -> String {
    format!(
        "{collector}-{}.parquet",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// Checks the id of a writer (a collector's prefixes its files; a compactor's is in its commit
/// records): non-empty ASCII letters, digits, `-` and `_`, so no name it makes holds a `.`
/// (the compactor's outputs are told apart by theirs) or a `/`.
pub fn validate_writer_id(kind: &str, id: &str) -> Result<(), String> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("{kind} id {id:?} must be non-empty [A-Za-z0-9_-]"));
    }
    Ok(())
}

/// Whether `name` is a file name of `collector`.
pub fn is_file_of(name: &str, collector: &str) -> bool {
    name.strip_prefix(collector)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest.ends_with(".parquet"))
}

/// The partition hour of a timestamp in nanoseconds.
pub fn hour_of(nanos: i64) -> i64 {
    nanos.div_euclid(HOUR_NANOS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_hive_style() {
        let nanos = 1_700_000_000_000_000_000i64; // 2023-11-14T22:13:20Z
        let p = file_path("acme", Signal::Traces, hour_of(nanos), "c1");
        assert!(
            p.starts_with("tenant=acme/signal=traces/date=2023-11-14/hour=22/c1-"),
            "{p}"
        );
        assert!(p.ends_with(".parquet"));
        assert_ne!(p, file_path("acme", Signal::Traces, hour_of(nanos), "c1"));
        assert_eq!(hour_of_partition(&p), Some(hour_of(nanos)));
        assert_eq!(
            hour_of_partition("tenant=acme/signal=traces/x.parquet"),
            None
        );
        assert_eq!(hour_of_partition("date=2023-11-14/hour=24/x.parquet"), None);
    }

    #[test]
    fn file_names_belong_to_their_collector() {
        let p = file_path("t", Signal::Logs, 0, "c1");
        let name = p.rsplit('/').next().unwrap();
        assert!(is_file_of(name, "c1"));
        assert!(!is_file_of(name, "c"));
        assert!(!is_file_of(name, "c10"));
    }

    #[test]
    fn commit_keys_name_their_hour() {
        let hour = hour_of(1_700_000_000_000_000_000);
        assert_eq!(hour_key(hour), "2023-11-14T22");
        assert_eq!(hour_of_key("2023-11-14T22"), Some(hour));
        assert_eq!(hour_of_key("2023-11-14T24"), None);
        assert_eq!(
            commits_dir("a", Signal::Metrics, hour),
            "tenant=a/signal=metrics/_commits/2023-11-14T22"
        );
        let name = compacted_name();
        assert!(is_compacted(&name) && !is_file_of(&name, "compacted"));
        assert!(!is_compacted("c1-01h.parquet"));
    }

    #[test]
    fn negative_times_fall_in_earlier_hours() {
        assert_eq!(hour_of(-1), -1);
        assert_eq!(hour_of(0), 0);
    }
}
