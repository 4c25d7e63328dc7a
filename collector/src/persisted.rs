//! Which WAL entries are already in storage.
//!
//! Every Parquet file a collector writes names, in its key-value metadata under
//! [`METADATA_KEY`], the WAL entries its rows came from (as ranges: `1-5,9,12-14`). A crash
//! after a file was written but before the WAL was cut would otherwise replay those rows into
//! a second file; recovery reads the footers of this collector's files in the partitions that
//! replayed entries fall in, and skips what is already there.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::metadata::ParquetMetaDataReader;

use crate::storage::Storage;

/// Key-value metadata key of a file's WAL entries.
pub const METADATA_KEY: &str = "strata.wal_entries";

/// Encodes entry ids as sorted ranges.
pub fn encode(entries: &[u64]) -> String {
    let mut ids = entries.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// Decodes [`encode`]'s output; `None` if it is malformed.
pub fn decode(s: &str) -> Option<HashSet<u64>> {
    let mut out = HashSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 40 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

/// Reads the entries recorded in `collector`'s files under each partition directory (relative
/// to the storage root). Unreadable files are skipped: their rows are replayed.
pub async fn scan(
    storage: &Storage,
    collector: &str,
    partition_dirs: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, HashSet<u64>>, object_store::Error> {
    let mut out = HashMap::new();
    for dir in partition_dirs {
        let prefix = storage.path(&dir);
        let files: Vec<_> = storage.store.list(Some(&prefix)).try_collect().await?;
        let mut persisted = HashSet::new();
        for meta in files {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if !crate::layout::is_file_of(name, collector) {
                continue;
            }
            match footer_entries(storage.store.as_ref(), &meta.location, meta.size).await {
                Some(ids) => persisted.extend(ids),
                None => {
                    tracing::warn!(file = %meta.location, "no readable WAL entries in footer; its rows will be replayed");
                }
            }
        }
        out.insert(dir, persisted);
    }
    Ok(out)
}

/// The WAL entries named in a Parquet file's footer, reading only the footer: the last 8
/// bytes (metadata length + `PAR1`), then the metadata.
async fn footer_entries(store: &dyn ObjectStore, path: &Path, size: u64) -> Option<HashSet<u64>> {
    if size < 12 {
        return None;
    }
    let tail = store.get_range(path, size - 8..size).await.ok()?;
    if &tail[4..] != b"PAR1" {
        return None;
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 8 > size {
        return None;
    }
    let footer = store.get_range(path, size - 8 - len..size - 8).await.ok()?;
    let metadata = ParquetMetaDataReader::decode_metadata(&footer).ok()?;
    let kv = metadata.file_metadata().key_value_metadata()?;
    kv.iter()
        .find(|k| k.key == METADATA_KEY)
        .and_then(|k| k.value.as_deref())
        .and_then(decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip() {
        let ids = [9u64, 1, 2, 3, 5, 12, 13, 14, 3];
        let s = encode(&ids);
        assert_eq!(s, "1-3,5,9,12-14");
        let back = decode(&s).unwrap();
        assert_eq!(back, ids.iter().copied().collect());
        assert_eq!(decode(""), Some(HashSet::new()));
        assert!(decode("3-1").is_none());
        assert!(decode("x").is_none());
        assert!(decode(&format!("0-{}", u64::MAX)).is_none());
    }
}
