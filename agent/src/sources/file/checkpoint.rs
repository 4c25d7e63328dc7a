//! Checkpoints of a file source: for each file, its identity and the offset up to which its
//! lines were acknowledged by a collector.
//!
//! On disk: `<data_dir>/files/<source>.json`, a `#[serde(tag = "version")]` document, written
//! tmp -> `sync_all` -> rename (then the directory is synced), so a crash leaves the old or the
//! new checkpoint, never a torn one.
//!
//! Invariants:
//! - An offset is only ever stored once every line before it was acknowledged (the caller
//!   applies updates in the order their batches were shipped).
//! - A checkpoint that cannot be read is reported, and the source starts as if its files
//!   were new to it (read from their beginning: duplicates rather than loss).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::identity::{FileKey, Fingerprint};

/// Where one file stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub key: FileKey,
    pub fingerprint: Fingerprint,
    pub offset: u64,
    /// The path it was last seen at (informative).
    pub path: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum Persisted {
    #[serde(rename = "1")]
    V1 { files: Vec<Checkpoint> },
}

/// The checkpoints of one source.
pub struct Checkpoints {
    path: PathBuf,
    entries: BTreeMap<FileKey, Checkpoint>,
}

/// What loading found.
pub enum Loaded {
    /// No checkpoint yet: the very first start of this source.
    First,
    Found(Vec<Checkpoint>),
    /// There is one, but it cannot be read.
    Unreadable(String),
}

impl Checkpoints {
    pub fn path_for(data_dir: &Path, source: &str) -> PathBuf {
        data_dir.join("files").join(format!("{source}.json"))
    }

    /// Reads the checkpoints at `path`.
    pub fn load(path: &Path) -> Loaded {
        match std::fs::read(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Loaded::First,
            Err(e) => Loaded::Unreadable(e.to_string()),
            Ok(bytes) => Self::decode(&bytes),
        }
    }

    /// Reads the checkpoints of a file's bytes.
    pub fn decode(bytes: &[u8]) -> Loaded {
        match serde_json::from_slice::<Persisted>(bytes) {
            Ok(Persisted::V1 { files }) => Loaded::Found(files),
            Err(e) => Loaded::Unreadable(e.to_string()),
        }
    }

    pub fn new(path: PathBuf, entries: impl IntoIterator<Item = Checkpoint>) -> Self {
        Self {
            path,
            entries: entries.into_iter().map(|c| (c.key, c)).collect(),
        }
    }

    pub fn set(&mut self, checkpoint: Checkpoint) {
        self.entries.insert(checkpoint.key, checkpoint);
    }

    pub fn forget(&mut self, key: &FileKey) {
        self.entries.remove(key);
    }

    pub fn get(&self, key: &FileKey) -> Option<&Checkpoint> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes them atomically.
    pub fn save(&self) -> io::Result<()> {
        write(&self.path, &self.encode()?)
    }

    /// The document [`write`] stores.
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let doc = Persisted::V1 {
            files: self.entries.values().cloned().collect(),
        };
        serde_json::to_vec(&doc).map_err(io::Error::other)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// tmp -> `sync_all` -> rename -> sync of the directory.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable once the directory is.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(ino: u64, offset: u64) -> Checkpoint {
        Checkpoint {
            key: FileKey { dev: 1, ino },
            fingerprint: Fingerprint::of(b"first line\n"),
            offset,
            path: format!("/logs/{ino}.log"),
        }
    }

    #[test]
    fn checkpoints_round_trip_and_report_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Checkpoints::path_for(dir.path(), "app");
        assert!(matches!(Checkpoints::load(&path), Loaded::First));
        let mut c = Checkpoints::new(path.clone(), [checkpoint(7, 10)]);
        c.set(checkpoint(8, 20));
        c.set(checkpoint(7, 30));
        c.forget(&FileKey { dev: 1, ino: 8 });
        c.save().expect("save");
        match Checkpoints::load(&path) {
            Loaded::Found(files) => assert_eq!(files, vec![checkpoint(7, 30)]),
            _ => panic!("checkpoint not found"),
        }
        std::fs::write(&path, b"{\"version\":\"1\",\"files\":[{").expect("write");
        assert!(matches!(Checkpoints::load(&path), Loaded::Unreadable(_)));
        std::fs::write(&path, b"{\"version\":\"9\"}").expect("write");
        assert!(matches!(Checkpoints::load(&path), Loaded::Unreadable(_)));
    }
}
