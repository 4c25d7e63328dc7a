//! Strata's write-ahead log: the collector's WAL and the agent's disk buffer.
//!
//! Every record is appended and fsynced before `append` returns. Appends from concurrent
//! requests are group-committed: the writer thread takes every append that is waiting, writes
//! them with one `write`, and makes them durable with one `fdatasync`.
//!
//! Files: `<dir>/wal-<id:020>.seg`, one active segment at a time; a new one starts when the
//! active one passes `segment_bytes`, and at every start. The [`format`] module describes the
//! bytes, [`entry`] the payload both roles store (an envelope and Arrow IPC). The owner deletes
//! a segment once nothing in it is needed ([`Wal::remove_below`], [`Wal::remove`]).
//!
//! Every record has an entry id, `segment << 32 | index in segment`, unique and increasing
//! for the life of the directory and beyond: segment ids only grow (the active segment is
//! never deleted) and a start opens `max(last + 1, unix seconds)`, so even a wiped directory
//! does not hand out an id again. The agent uses entry ids as the idempotency sequence of the
//! batches it ships.
//!
//! Recovery ([`Wal::open`]): segments are read in order; a segment's bad tail (torn write or
//! corruption) is moved aside to `<segment>.corrupt-<unix-seconds>` and the segment truncated
//! to its valid prefix; a segment with a bad header is moved aside whole. Both are counted,
//! and the collector starts and keeps accepting data.

pub mod entry;
pub mod format;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

/// Appends waiting for one group commit, at most.
const GROUP_MAX: usize = 1024;

#[derive(Debug, thiserror::Error, Clone)]
pub enum WalError {
    #[error("WAL disk is full: {0}")]
    NoSpace(String),
    #[error("WAL I/O error: {0}")]
    Io(String),
    #[error("WAL is closed")]
    Closed,
}

impl From<io::Error> for WalError {
    fn from(e: io::Error) -> Self {
        // ENOSPC / EDQUOT: a condition to back off from, not a failure of the collector.
        if matches!(e.raw_os_error(), Some(28) | Some(122)) {
            WalError::NoSpace(e.to_string())
        } else {
            WalError::Io(e.to_string())
        }
    }
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Valid records with their positions, in write order.
    pub records: Vec<(Position, Vec<u8>)>,
    /// Bytes moved aside as torn or corrupt.
    pub corrupt_bytes: u64,
    /// Segments with a bad tail or header.
    pub corrupt_segments: u64,
}

struct Append {
    record: Vec<u8>,
    done: oneshot::Sender<Result<Position, WalError>>,
}

/// Where a record lives: its entry id and the byte offset of its frame in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub id: u64,
    pub offset: u64,
}

/// The entry id of record `index` of segment `segment`.
pub fn entry_id(segment: u64, index: u32) -> u64 {
    segment << 32 | u64::from(index)
}

/// The segment of an entry id.
pub fn segment_of(entry: u64) -> u64 {
    entry >> 32
}

/// Handle to the log; cheap to clone.
#[derive(Clone)]
pub struct Wal {
    tx: mpsc::Sender<Append>,
    dir: PathBuf,
    active: Arc<AtomicU64>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("wal-{id:020}.seg"))
}

fn segment_id(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("wal-")?
        .strip_suffix(".seg")?
        .parse()
        .ok()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Lists segment ids in `dir`, ascending.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| segment_id(&e.path()))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

fn set_aside(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{now}"));
    let mut f = File::create(PathBuf::from(aside))?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl Wal {
    /// Recovers `dir` (created if missing) and starts a new active segment; returns every
    /// valid record in memory.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<(Wal, Recovery)> {
        let mut records = Vec::new();
        let (wal, mut recovery) = Self::open_with(dir, segment_bytes, |position, payload| {
            records.push((position, payload.to_vec()))
        })?;
        recovery.records = records;
        Ok((wal, recovery))
    }

    /// Like [`Wal::open`], but hands each valid record to `visit` (one segment in memory at a
    /// time) instead of collecting them; `Recovery::records` stays empty.
    pub fn open_with(
        dir: &Path,
        segment_bytes: u64,
        mut visit: impl FnMut(Position, &[u8]),
    ) -> io::Result<(Wal, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut recovery = Recovery::default();
        let ids = segments(dir)?;
        for &id in &ids {
            let path = segment_path(dir, id);
            let bytes = fs::read(&path)?;
            match format::decode_segment(&bytes) {
                Ok(decoded) => {
                    for (i, (offset, r)) in decoded.records.iter().enumerate() {
                        let position = Position {
                            id: entry_id(id, i as u32),
                            offset: *offset as u64,
                        };
                        visit(position, r);
                    }
                    if decoded.valid_len < bytes.len() {
                        let bad = &bytes[decoded.valid_len..];
                        warn!(segment = %path.display(), bytes = bad.len(), "WAL segment has a bad tail; setting it aside");
                        set_aside(&path, bad)?;
                        OpenOptions::new()
                            .write(true)
                            .open(&path)?
                            .set_len(decoded.valid_len as u64)?;
                        recovery.corrupt_bytes += bad.len() as u64;
                        recovery.corrupt_segments += 1;
                    }
                }
                Err(e) => {
                    warn!(segment = %path.display(), error = %e, "unreadable WAL segment; setting it aside");
                    set_aside(&path, &bytes)?;
                    fs::remove_file(&path)?;
                    recovery.corrupt_bytes += bytes.len() as u64;
                    recovery.corrupt_segments += 1;
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs());
        let first = ids.last().map_or(now, |id| (id + 1).max(now));
        let segment = Segment::create(dir, first)?;
        let active = Arc::new(AtomicU64::new(first));
        let (tx, rx) = mpsc::channel(GROUP_MAX * 4);
        let writer_dir = dir.to_path_buf();
        let writer_active = active.clone();
        std::thread::Builder::new()
            .name("strata-wal".into())
            .spawn(move || writer(rx, segment, writer_dir, writer_active, segment_bytes))?;
        Ok((
            Wal {
                tx,
                dir: dir.to_path_buf(),
                active,
            },
            recovery,
        ))
    }

    /// Appends `payload` and returns, once it is durable, its entry id.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64, WalError> {
        Ok(self.append_at(payload).await?.id)
    }

    /// Appends `payload` and returns, once it is durable, where it is (for [`Wal::read`]).
    pub async fn append_at(&self, payload: Vec<u8>) -> Result<Position, WalError> {
        let mut record = Vec::with_capacity(payload.len() + 8);
        format::encode_record(&payload, &mut record);
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Append { record, done })
            .await
            .map_err(|_| WalError::Closed)?;
        rx.await.map_err(|_| WalError::Closed)?
    }

    /// The segment new appends go to.
    pub fn active_segment(&self) -> u64 {
        self.active.load(Ordering::Acquire)
    }

    /// Whether any segment below segment `id` (other than the active one) is still on disk.
    pub fn has_segments_below(&self, id: u64) -> io::Result<bool> {
        let limit = id.min(self.active_segment());
        Ok(segments(&self.dir)?.first().is_some_and(|&s| s < limit))
    }

    /// Reads back the record at `position`, checking its checksum (blocking file I/O).
    pub fn read(&self, position: Position) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = File::open(segment_path(&self.dir, segment_of(position.id)))?;
        let mut head = [0u8; format::RECORD_HEADER_LEN];
        file.read_exact_at(&mut head, position.offset)?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > format::MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record length out of range",
            ));
        }
        let mut payload = vec![0u8; len];
        file.read_exact_at(&mut payload, position.offset + head.len() as u64)?;
        if crc32fast::hash(&payload) != u32::from_le_bytes([head[4], head[5], head[6], head[7]]) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record checksum mismatch",
            ));
        }
        Ok(payload)
    }

    /// Segments on disk with their sizes in bytes, ascending (the active one included).
    pub fn segments(&self) -> io::Result<Vec<(u64, u64)>> {
        segments(&self.dir)?
            .into_iter()
            .map(|id| Ok((id, fs::metadata(segment_path(&self.dir, id))?.len())))
            .collect()
    }

    /// Deletes segment `id` unless it is the active one; returns whether it was deleted.
    pub fn remove(&self, id: u64) -> io::Result<bool> {
        if id >= self.active_segment() {
            return Ok(false);
        }
        match fs::remove_file(segment_path(&self.dir, id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Deletes every segment with an id below segment `id` (never the active one); returns
    /// how many.
    pub fn remove_below(&self, id: u64) -> io::Result<usize> {
        let limit = id.min(self.active_segment());
        let mut removed = 0;
        for s in segments(&self.dir)? {
            if s < limit {
                fs::remove_file(segment_path(&self.dir, s))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

struct Segment {
    id: u64,
    file: File,
    len: u64,
    /// Records in this segment.
    records: u32,
}

impl Segment {
    fn create(dir: &Path, id: u64) -> io::Result<Segment> {
        let path = segment_path(dir, id);
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        file.write_all(&format::header())?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(Segment {
            id,
            file,
            len: format::HEADER_LEN as u64,
            records: 0,
        })
    }

    /// Writes and syncs `bytes`; on failure the segment is cut back to where it was, so a
    /// failed group leaves no partial record behind.
    fn commit(&mut self, bytes: &[u8]) -> io::Result<()> {
        let result = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.len) {
                    error!(error = %cut, "cannot cut back WAL segment after a failed write");
                }
                use std::io::Seek;
                let _ = self.file.seek(io::SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }
}

/// The writer thread: group commit until every handle is dropped.
fn writer(
    mut rx: mpsc::Receiver<Append>,
    mut segment: Segment,
    dir: PathBuf,
    active: Arc<AtomicU64>,
    segment_bytes: u64,
) {
    let mut bytes = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(a) => group.push(a),
                Err(_) => break,
            }
        }
        bytes.clear();
        for a in &group {
            bytes.extend_from_slice(&a.record);
        }
        let start = segment.len;
        let result = segment.commit(&bytes).map_err(WalError::from);
        let mut offset = start;
        for a in group {
            let position = Position {
                id: entry_id(segment.id, segment.records),
                offset,
            };
            if result.is_ok() {
                segment.records += 1;
                offset += a.record.len() as u64;
            }
            let _ = a.done.send(result.clone().map(|()| position));
        }
        if result.is_ok()
            && (segment.len >= segment_bytes || segment.records >= u32::MAX - GROUP_MAX as u32)
        {
            match Segment::create(&dir, segment.id + 1) {
                Ok(next) => {
                    segment = next;
                    active.store(segment.id, Ordering::Release);
                }
                Err(e) => {
                    error!(error = %e, "cannot start a new WAL segment; continuing in the current one")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_survive_reopen_and_segments_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, rec) = Wal::open(dir.path(), 64).unwrap();
        assert!(rec.records.is_empty());
        let mut ids = Vec::new();
        for i in 0..5u8 {
            ids.push(segment_of(wal.append(vec![i; 40]).await.unwrap()));
        }
        assert!(ids.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            ids[4] > ids[0],
            "segments rotate past segment_bytes: {ids:?}"
        );
        drop(wal);
        let (wal, rec) = Wal::open(dir.path(), 64).unwrap();
        let payloads: Vec<u8> = rec.records.iter().map(|(_, p)| p[0]).collect();
        assert_eq!(payloads, vec![0, 1, 2, 3, 4]);
        for (pos, p) in &rec.records {
            assert_eq!(&wal.read(*pos).unwrap(), p, "read back at {pos:?}");
        }
        assert_eq!(rec.corrupt_segments, 0);
        assert!(wal.active_segment() > ids[4]);
        assert!(wal.has_segments_below(ids[4]).unwrap());
        let removed = wal.remove_below(ids[4]).unwrap();
        assert!(!wal.has_segments_below(ids[4]).unwrap());
        assert!(removed >= 1);
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), 64).unwrap();
        assert!(rec.records.iter().all(|(e, _)| segment_of(e.id) >= ids[4]));
    }

    #[tokio::test]
    async fn concurrent_appends_are_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 1 << 30).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let wal = wal.clone();
            tasks.push(tokio::spawn(async move {
                wal.append(i.to_le_bytes().to_vec()).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(rec.records.len(), 200);
    }

    #[tokio::test]
    async fn a_torn_tail_is_set_aside_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 1 << 30).unwrap();
        let first = wal.append(b"first".to_vec()).await.unwrap();
        let second = wal.append(b"second".to_vec()).await.unwrap();
        assert_eq!(second, first + 1, "entry ids count records in a segment");
        let seg = segment_of(first);
        drop(wal);
        let path = segment_path(dir.path(), seg);
        let len = fs::metadata(&path).unwrap().len();
        // Cut the last record in half, as a crash mid-write would, and add garbage.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let (wal, rec) = Wal::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(rec.records.len(), 1);
        assert_eq!(rec.records[0].1, b"first");
        assert_eq!(rec.corrupt_segments, 1);
        assert!(rec.corrupt_bytes > 0);
        let aside = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".corrupt-")
            })
            .count();
        assert_eq!(aside, 1);
        // It keeps working after recovery.
        wal.append(b"third".to_vec()).await.unwrap();
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), 1 << 30).unwrap();
        let got: Vec<&[u8]> = rec.records.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(got, vec![b"first".as_slice(), b"third".as_slice()]);
        assert_eq!(rec.corrupt_segments, 0);
    }

    /// A full disk is `NoSpace` (backpressure), and the segment is cut back, not corrupted.
    #[test]
    fn enospc_is_no_space() {
        let Ok(file) = OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("skipped: no /dev/full on this system");
            return;
        };
        let mut segment = Segment {
            id: 1,
            file,
            len: 0,
            records: 0,
        };
        let err = WalError::from(segment.commit(&[0u8; 4096]).unwrap_err());
        assert!(matches!(err, WalError::NoSpace(_)), "{err:?}");
        assert_eq!(segment.len, 0);
    }

    #[tokio::test]
    async fn a_garbage_segment_is_set_aside_whole() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(segment_path(dir.path(), 3), b"garbage garbage").unwrap();
        let (wal, rec) = Wal::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(rec.corrupt_segments, 1);
        assert!(wal.active_segment() > 3);
        assert!(!segment_path(dir.path(), 3).exists());
    }
}
