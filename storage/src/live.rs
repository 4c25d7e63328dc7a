//! Which files are live, and a cached resolver of a signal's live set.
//!
//! The rule, per partition, over the files listed there and its commit records:
//! - a file named by some record's `inputs` is not live (compacted away or past retention);
//! - a compactor output (`compacted.*`) is live only if some record names it in `outputs`
//!   (an output of a pass that crashed or lost a conflict is never seen);
//! - every other file (a collector's) is live.
//!
//! Readers resolve the records first and list the files second. A commit that lands between
//! the two leaves the reader with the view before it: its outputs are not in the records the
//! reader has, so they are hidden, and its inputs are still there (inputs are deleted only
//! `delete_delay` after the commit). So a reader never sees a row twice and never misses one,
//! provided `delete_delay` is longer than a snapshot's age plus the longest query.
//!
//! [`LiveFiles`] keeps one [`Snapshot`] per signal directory for at most `max_staleness`, and
//! records (immutable) for as long as they are listed, so a query costs no listing at all
//! while its snapshot is fresh.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::commit::{self, Commit, CommitError};
use crate::layout;

/// Records read at once while resolving.
const CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("listing {path}: {source}")]
    List {
        path: Path,
        source: object_store::Error,
    },
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// One partition (hour) of a signal as resolved.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    /// Every `.parquet` file listed in the partition, live or not.
    pub files: Vec<ObjectMeta>,
    /// Its commit records, by sequence number.
    pub commits: Vec<Arc<Commit>>,
}

impl Partition {
    /// The highest sequence number committed (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.commits.last().map_or(0, |c| c.seq)
    }

    /// The live files, by the rule of this module.
    pub fn live(&self) -> impl Iterator<Item = &ObjectMeta> {
        let mut consumed = HashSet::new();
        let mut produced = HashSet::new();
        for c in &self.commits {
            consumed.extend(c.inputs.iter().map(String::as_str));
            produced.extend(c.outputs.iter().map(String::as_str));
        }
        self.files.iter().filter(move |m| {
            let name = m.location.filename().unwrap_or_default();
            !consumed.contains(name) && (!layout::is_compacted(name) || produced.contains(name))
        })
    }
}

/// A signal directory's files and records at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Partitions by hour (hours since the epoch), with files or records.
    pub partitions: BTreeMap<i64, Partition>,
    /// `.parquet` files outside any `date=/hour=` partition (always live).
    pub unpartitioned: Vec<ObjectMeta>,
}

impl Snapshot {
    /// Every live file.
    pub fn live(&self) -> impl Iterator<Item = &ObjectMeta> {
        self.partitions
            .values()
            .flat_map(Partition::live)
            .chain(self.unpartitioned.iter())
    }

    /// The live files of the partitions in `hours` (inclusive), and the unpartitioned ones.
    pub fn live_in(
        &self,
        hours: std::ops::RangeInclusive<i64>,
    ) -> impl Iterator<Item = &ObjectMeta> {
        self.partitions
            .range(hours)
            .flat_map(|(_, p)| p.live())
            .chain(self.unpartitioned.iter())
    }
}

/// Resolves and caches the live sets of signal directories of one store.
#[derive(Debug)]
pub struct LiveFiles {
    store: Arc<dyn ObjectStore>,
    max_staleness: Duration,
    snapshots: Mutex<HashMap<Path, (Instant, Arc<Snapshot>)>>,
    records: Mutex<HashMap<Path, Arc<Commit>>>,
}

impl LiveFiles {
    /// A resolver over `store` whose snapshots are reused for at most `max_staleness`.
    pub fn new(store: Arc<dyn ObjectStore>, max_staleness: Duration) -> Self {
        Self {
            store,
            max_staleness,
            snapshots: Mutex::new(HashMap::new()),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// The snapshot of `dir` (a `tenant=/signal=` directory), from the cache while fresh.
    pub async fn snapshot(&self, dir: &Path) -> Result<Arc<Snapshot>, LiveError> {
        if !self.max_staleness.is_zero()
            && let Some((at, snap)) = lock(&self.snapshots).get(dir)
            && at.elapsed() < self.max_staleness
        {
            return Ok(snap.clone());
        }
        let at = Instant::now();
        let snap = Arc::new(self.resolve(dir).await?);
        lock(&self.snapshots).insert(dir.clone(), (at, snap.clone()));
        Ok(snap)
    }

    /// Resolves `dir` now, bypassing the snapshot cache (records still come from memory).
    pub async fn resolve(&self, dir: &Path) -> Result<Snapshot, LiveError> {
        let commits_dir = dir.clone().join(layout::COMMITS_DIR);
        // Records first, files second: see the module note.
        let listed: Vec<ObjectMeta> = list(self.store.as_ref(), &commits_dir).await?;
        let wanted: Vec<Path> = listed
            .into_iter()
            .map(|m| m.location)
            .filter(|p| p.filename().and_then(commit::seq_of).is_some())
            .collect();
        let missing: Vec<Path> = {
            let cache = lock(&self.records);
            wanted
                .iter()
                .filter(|p| !cache.contains_key(*p))
                .cloned()
                .collect()
        };
        let read: Vec<(Path, Commit)> = stream::iter(missing)
            .map(|path| async move {
                let bytes = self
                    .store
                    .get(&path)
                    .await
                    .map_err(|source| CommitError::Store {
                        path: path.clone(),
                        source,
                    })?
                    .bytes()
                    .await
                    .map_err(|source| CommitError::Store {
                        path: path.clone(),
                        source,
                    })?;
                let c = commit::decode(&path, &bytes)?;
                Ok::<_, LiveError>((path, c))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut snapshot = Snapshot::default();
        {
            let mut cache = lock(&self.records);
            for (path, c) in read {
                cache.insert(path, Arc::new(c));
            }
            let keep: HashSet<&Path> = wanted.iter().collect();
            cache.retain(|p, _| keep.contains(p) || !p.as_ref().starts_with(commits_dir.as_ref()));
            for path in &wanted {
                let hour = path
                    .parts()
                    .rev()
                    .nth(1)
                    .and_then(|k| layout::hour_of_key(k.as_ref()));
                if let (Some(hour), Some(c)) = (hour, cache.get(path)) {
                    snapshot
                        .partitions
                        .entry(hour)
                        .or_default()
                        .commits
                        .push(c.clone());
                }
            }
        }
        for p in snapshot.partitions.values_mut() {
            p.commits.sort_by_key(|c| c.seq);
        }
        let commits_prefix = format!("{commits_dir}/");
        for meta in list(self.store.as_ref(), dir).await? {
            let path = meta.location.as_ref();
            if !path.ends_with(".parquet") || path.starts_with(&commits_prefix) {
                continue;
            }
            match layout::hour_of_partition(path) {
                Some(hour) => snapshot
                    .partitions
                    .entry(hour)
                    .or_default()
                    .files
                    .push(meta),
                None => snapshot.unpartitioned.push(meta),
            }
        }
        Ok(snapshot)
    }

    /// Forgets the cached snapshot of `dir`, so the next [`Self::snapshot`] resolves it.
    pub fn invalidate(&self, dir: &Path) {
        lock(&self.snapshots).remove(dir);
    }
}

async fn list(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<ObjectMeta>, LiveError> {
    store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|source| LiveError::List {
            path: prefix.clone(),
            source,
        })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use object_store::PutPayload;
    use object_store::memory::InMemory;
    use strata_schema::Signal;

    use super::*;
    use crate::commit::CommitKind;
    use crate::{S3Options, Storage};

    fn names(
        files: impl Iterator<Item = impl std::ops::Deref<Target = ObjectMeta>>,
    ) -> Vec<String> {
        let mut v: Vec<String> = files
            .map(|m| m.location.filename().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn commits_switch_inputs_to_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path().to_str().unwrap(), &S3Options::default()).unwrap();
        let hour = 470_000;
        let put = |name: &str| {
            let path = storage.path(&format!(
                "{}/{name}",
                layout::partition_dir("t", Signal::Logs, hour)
            ));
            let store = storage.store.clone();
            async move {
                store
                    .put(&path, PutPayload::from_static(b"x"))
                    .await
                    .unwrap()
            }
        };
        put("c1-a.parquet").await;
        put("c2-b.parquet").await;
        put("compacted.o.parquet").await;
        let live = LiveFiles::new(storage.store.clone(), Duration::from_secs(3600));
        let sdir = storage.path(&layout::signal_dir("t", Signal::Logs));
        let snap = live.resolve(&sdir).await.unwrap();
        // An output nobody committed is invisible.
        assert_eq!(names(snap.live()), ["c1-a.parquet", "c2-b.parquet"]);
        assert_eq!(snap.partitions[&hour].last_seq(), 0);
        let cached = live.snapshot(&sdir).await.unwrap();
        commit::write(
            &storage,
            "t",
            Signal::Logs,
            hour,
            &Commit {
                seq: 1,
                kind: CommitKind::Compaction,
                created_ms: 0,
                compactor: "k".into(),
                inputs: vec!["c1-a.parquet".into(), "c2-b.parquet".into()],
                outputs: vec!["compacted.o.parquet".into()],
                rows_in: 2,
                rows_out: 2,
            },
        )
        .await
        .unwrap();
        put("c1-late.parquet").await;
        // The cached snapshot is kept while fresh; a resolution sees the commit.
        assert_eq!(
            names(live.snapshot(&sdir).await.unwrap().live()),
            names(cached.live())
        );
        let snap = live.resolve(&sdir).await.unwrap();
        assert_eq!(
            names(snap.live()),
            ["c1-late.parquet", "compacted.o.parquet"]
        );
        assert_eq!(snap.partitions[&hour].last_seq(), 1);
        assert_eq!(
            names(snap.live_in(hour + 1..=hour + 2)),
            Vec::<String>::new()
        );
        live.invalidate(&sdir);
        assert_eq!(names(live.snapshot(&sdir).await.unwrap().live()).len(), 2);
    }

    #[tokio::test]
    async fn a_corrupt_record_fails_resolution() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let dir = Path::from("tenant=t/signal=traces");
        store
            .put(
                &dir.clone()
                    .join("_commits")
                    .join("2025-01-01T00")
                    .join("0000000001.json"),
                PutPayload::from_static(b"{not json"),
            )
            .await
            .unwrap();
        let live = LiveFiles::new(store, Duration::ZERO);
        assert!(matches!(
            live.resolve(&dir).await,
            Err(LiveError::Commit(CommitError::Corrupt { .. }))
        ));
    }
}
