//! Which WAL entries are already in storage.
//!
//! Every Parquet file a collector writes names, in its key-value metadata, the WAL entries its
//! rows came from ([`wal_entries`]). A crash after a file was written but before the WAL was
//! cut would otherwise replay those rows into a second file; recovery reads the footers of
//! this collector's files, and of the compactor's outputs (which carry the entries of their
//! inputs), in the partitions that replayed entries fall in, and skips what is already there.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::metadata::ParquetMetaDataReader;

use strata_storage::Storage;
use strata_storage::format::wal_entries;
use strata_storage::layout;

/// Key-value metadata key of a collector file's WAL entries.
pub const METADATA_KEY: &str = wal_entries::KEY;

/// Encodes entry ids as sorted ranges.
pub fn encode(entries: &[u64]) -> String {
    wal_entries::encode(entries)
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
            if !layout::is_file_of(name, collector) && !layout::is_compacted(name) {
                continue;
            }
            match footer_entries(storage.store.as_ref(), &meta.location, meta.size, collector).await
            {
                Some(ids) => persisted.extend(ids),
                // An output that holds none of this collector's rows.
                None if layout::is_compacted(name) => {}
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
async fn footer_entries(
    store: &dyn ObjectStore,
    path: &Path,
    size: u64,
    collector: &str,
) -> Option<HashSet<u64>> {
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
    wal_entries::of_collector(path.filename()?, kv, collector)
}
