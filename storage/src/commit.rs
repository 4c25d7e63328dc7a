//! Commit records: the one atomic step that switches a partition from a set of input files to
//! a set of output files (compaction), or to nothing (retention).
//!
//! A record is a small JSON document at
//! `tenant=/signal=/_commits/<YYYY-MM-DDTHH>/<seq>.json` (see [`crate::layout`]). Records of a
//! partition are numbered from 1; a writer that read records up to `n` writes `n + 1` with a
//! create-only put (`If-None-Match: *` on S3, an exclusive create on a local disk). Two
//! compactors that planned on the same records therefore cannot both commit: the second put
//! fails with [`CommitError::Conflict`] and that compactor deletes its outputs.
//!
//! On-disk format: `{"version":"1","commit":{...},"crc32":N}`, where `crc32` is the CRC-32 of
//! the `commit` object as serialized; a record whose checksum or version does not match is
//! [`CommitError::Corrupt`]. Records are immutable. The newest record of a partition is never
//! deleted, so a sequence number is never used twice.

use object_store::path::Path;
use object_store::{PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use strata_schema::Signal;

use crate::Storage;
use crate::layout;

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitKind {
    /// Inputs merged into outputs.
    Compaction,
    /// Inputs past the retention dropped (no outputs).
    Retention,
}

/// One commit of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Position in the partition's sequence, from 1.
    pub seq: u64,
    pub kind: CommitKind,
    /// When it was written, in milliseconds since the epoch; inputs may be deleted once
    /// `delete_delay` has passed since.
    pub created_ms: i64,
    /// Who wrote it.
    pub compactor: String,
    /// Names (in the partition directory) of the files this commit makes invisible.
    pub inputs: Vec<String>,
    /// Names of the files this commit makes visible.
    pub outputs: Vec<String>,
    pub rows_in: u64,
    pub rows_out: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("commit {path} already exists (another compactor committed first)")]
    Conflict { path: Path },
    #[error("commit record {path} is corrupt: {reason}")]
    Corrupt { path: Path, reason: String },
    #[error("commit record {path}: {source}")]
    Store {
        path: Path,
        source: object_store::Error,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum OnDisk {
    #[serde(rename = "1")]
    V1 { commit: Commit, crc32: u32 },
}

/// Path of record `seq` of the partition starting at `hour`.
pub fn record_path(storage: &Storage, tenant: &str, signal: Signal, hour: i64, seq: u64) -> Path {
    storage.path(&format!(
        "{}/{seq:010}.json",
        layout::commits_dir(tenant, signal, hour)
    ))
}

/// The sequence number of a record's file name.
pub fn seq_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The bytes of `commit` as stored.
pub fn encode(commit: &Commit) -> Vec<u8> {
    let body = serde_json::to_vec(commit).unwrap_or_default();
    let record = OnDisk::V1 {
        commit: commit.clone(),
        crc32: crc(&body),
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

/// Parses a stored record found at `path`.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Commit, CommitError> {
    let corrupt = |reason: String| CommitError::Corrupt {
        path: path.clone(),
        reason,
    };
    let OnDisk::V1 { commit, crc32 } =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let body = serde_json::to_vec(&commit).map_err(|e| corrupt(e.to_string()))?;
    if crc(&body) != crc32 {
        return Err(corrupt("checksum mismatch".into()));
    }
    let named = path.filename().and_then(seq_of);
    if named != Some(commit.seq) {
        return Err(corrupt(format!(
            "holds seq {} but is named {:?}",
            commit.seq,
            path.filename()
        )));
    }
    Ok(commit)
}

fn crc(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    h.finalize()
}

/// Writes `commit` as record `commit.seq` of its partition, only if no record of that number
/// exists.
pub async fn write(
    storage: &Storage,
    tenant: &str,
    signal: Signal,
    hour: i64,
    commit: &Commit,
) -> Result<(), CommitError> {
    let path = record_path(storage, tenant, signal, hour, commit.seq);
    let options = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match storage
        .store
        .put_opts(&path, PutPayload::from(encode(commit)), options)
        .await
    {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => Err(CommitError::Conflict { path }),
        Err(source) => Err(CommitError::Store { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(seq: u64) -> Commit {
        Commit {
            seq,
            kind: CommitKind::Compaction,
            created_ms: 1_700_000_000_000,
            compactor: "k1".into(),
            inputs: vec!["c1-a.parquet".into(), "c2-b.parquet".into()],
            outputs: vec!["compacted.x.parquet".into()],
            rows_in: 10,
            rows_out: 9,
        }
    }

    #[test]
    fn records_round_trip_and_detect_damage() {
        let path = Path::from("t/_commits/2023-11-14T22/0000000003.json");
        let bytes = encode(&commit(3));
        assert_eq!(decode(&path, &bytes).unwrap(), commit(3));
        let text = String::from_utf8(bytes.clone()).unwrap();
        let damaged = text.replace("\"rows_out\":9", "\"rows_out\":8");
        assert!(matches!(
            decode(&path, damaged.as_bytes()),
            Err(CommitError::Corrupt { .. })
        ));
        let other = Path::from("t/_commits/2023-11-14T22/0000000004.json");
        assert!(matches!(
            decode(&other, &bytes),
            Err(CommitError::Corrupt { .. })
        ));
        let future = text.replace("\"version\":\"1\"", "\"version\":\"9\"");
        assert!(decode(&path, future.as_bytes()).is_err());
        assert_eq!(seq_of("0000000003.json"), Some(3));
        assert_eq!(seq_of("3.json"), None);
    }

    #[tokio::test]
    async fn a_second_commit_of_one_number_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::open(dir.path().to_str().unwrap(), &crate::S3Options::default()).unwrap();
        write(&storage, "t", Signal::Traces, 5, &commit(1))
            .await
            .unwrap();
        let again = write(&storage, "t", Signal::Traces, 5, &commit(1)).await;
        assert!(
            matches!(again, Err(CommitError::Conflict { .. })),
            "{again:?}"
        );
        write(&storage, "t", Signal::Traces, 5, &commit(2))
            .await
            .unwrap();
    }
}
