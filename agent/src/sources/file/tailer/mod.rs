//! The reading side of a file source, on a thread of its own: finds files, follows them
//! through rotation and truncation, and turns their lines into batches of log records.
//!
//! Each round: the globs are expanded again when the discovery interval has passed; every
//! file due for a poll is read (at most one chunk, so one busy file cannot starve the others,
//! and the batch never grows much past its limit); records waiting in multiline aggregation
//! past their timeout are emitted; files deleted or rotated out of the globs, read to their end
//! and quiet for `rotate_wait`, are let go. A batch goes downstream when full or old enough,
//! with the checkpoint of every file that moved since the last one.
//!
//! A file found shorter than what was read, or whose first bytes changed, was truncated or
//! rewritten in place: before it is read again from its start, the rest of its old content is
//! read from the copy `copytruncate` left next to it, when there is one ([`find_copy`]), a chunk
//! per poll like any read. The first bytes of the new content are taken when the truncation is
//! found, so that a second truncation while the old content is finished is found too; only a
//! file truncated again while it was still empty at the first one cannot be told apart. A file whose checkpoint no longer matches at start is looked for
//! the same way (copytruncated while the agent was down). A file rotated away while it was
//! closed (past `max_open_files`) is looked for by its inode in its directory and finished.
//!
//! Invariants:
//! - A fingerprint shorter than `fingerprint_bytes` is extended from the same read that yields
//!   the data, never from a second read: the fingerprint always describes the bytes read.
//! - The checkpoint sent with a batch is, per file, the offset before which every byte is in
//!   that batch or an earlier one (records still being joined are not yet past it).
//! - Sending blocks when the batches in flight are at their limit: the tailer stops reading
//!   rather than holding more in memory.
//! - At most `max_open_files` files are open, except deleted files being finished (they cannot
//!   be reopened); other files beyond it are closed while idle and reopened when they grow,
//!   after their identity is checked again.

mod copytruncate;
mod records;
mod watch;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::checkpoint::Checkpoint;
use super::config::{FileSourceConfig, StartAt};
use super::framing::Framer;
use super::identity::{FileKey, Fingerprint, compressed_magic, compressed_name, read_prefix};
use super::lines::LineSplitter;
use super::metrics::SourceMetrics;
use super::multiline::Multiline;
use super::parse::MessageParser;
use copytruncate::{Recovery, find_copy, recover, start_over};
use records::{Out, feed, file_meta, finish_line, finish_pending, host_name, to_batch};
use watch::Watch;

/// What the tailer hands downstream, in order.
pub(super) struct Outgoing {
    pub batch: Option<RecordBatch>,
    pub records: u64,
    pub updates: Vec<Update>,
}

/// A change of the checkpoints, applied once everything sent before it was acknowledged.
pub(super) enum Update {
    Set(Checkpoint),
    Forget(FileKey),
}

/// What [`Tailer::reopen`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen {
    Opened,
    /// Found with unread bytes, but every open file still has data to read.
    NoRoom,
    /// Not found, nothing unread, or not openable.
    Nothing,
}

/// Largest read from one file in one poll.
const CHUNK: usize = 1 << 20;

/// Per-file values every record of the file shares.
struct FileMeta {
    path: String,
    resource: Resource,
}

struct Tracked {
    key: FileKey,
    path: PathBuf,
    meta: Arc<FileMeta>,
    file: Option<File>,
    fingerprint: Fingerprint,
    lines: LineSplitter,
    framer: Framer,
    multiline: Option<Multiline>,
    /// Size at the last poll.
    size: u64,
    last_growth: Instant,
    next_poll: Instant,
    idle: Duration,
    /// Since when the path no longer leads to this file (deleted or rotated away).
    gone_since: Option<Instant>,
    reported: Option<Checkpoint>,
    /// Set while the rest of the old content of a truncated file is read from its copy.
    recovery: Option<Recovery>,
}

impl Tracked {
    /// Offset before which every byte was emitted in a record (or dropped as a long line's rest).
    fn safe_offset(&self) -> u64 {
        [
            Some(self.lines.consumed()),
            self.framer.pending_start(),
            self.multiline.as_ref().and_then(|m| m.pending_start()),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0)
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            key: self.key,
            fingerprint: self.fingerprint,
            offset: self.safe_offset(),
            path: self.meta.path.clone(),
        }
    }
}

/// Records of the batch being built, grouped by file.
#[derive(Default)]
struct Batch {
    groups: Vec<(Arc<FileMeta>, Vec<LogRecord>)>,
    index: HashMap<FileKey, usize>,
    records: usize,
    bytes: usize,
    since: Option<Instant>,
}

pub(super) struct Tailer {
    config: Arc<FileSourceConfig>,
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
    /// Creations and renames in the include directories, as they happen.
    watch: Watch,
    name: String,
    metrics: SourceMetrics,
    parser: MessageParser,
    host: String,
    files: HashMap<FileKey, Tracked>,
    /// Checkpoints found at start, until their files are found again.
    restored: HashMap<FileKey, Checkpoint>,
    /// No checkpoint existed: `start_at` applies to the files found by the first discovery.
    first_start: bool,
    discovered_once: bool,
    open: usize,
    /// Compressed files seen, not looked at again while they exist.
    skipped: HashSet<FileKey>,
    /// Files that could not be opened, counted once (tried again at each discovery).
    unreadable: HashSet<FileKey>,
    batch: Batch,
    forgets: Vec<FileKey>,
    buf: Vec<u8>,
    tx: mpsc::Sender<Outgoing>,
    shutdown: CancellationToken,
    last_flush: Instant,
}

impl Tailer {
    pub(super) fn new(
        config: Arc<FileSourceConfig>,
        metrics: SourceMetrics,
        restored: Vec<Checkpoint>,
        first_start: bool,
        tx: mpsc::Sender<Outgoing>,
        shutdown: CancellationToken,
    ) -> Self {
        let name = config.resolved_name();
        Self {
            // Validated before the source starts.
            include: config
                .include
                .iter()
                .filter_map(|g| glob::Pattern::new(g).ok())
                .collect(),
            watch: Watch::new(&config.include, config.watch, &name),
            exclude: config
                .exclude
                .iter()
                .filter_map(|g| glob::Pattern::new(g).ok())
                .collect(),
            name,
            parser: MessageParser::new(config.parser, config.pattern.as_deref()),
            host: host_name(),
            config,
            metrics,
            files: HashMap::new(),
            restored: restored.into_iter().map(|c| (c.key, c)).collect(),
            first_start,
            discovered_once: false,
            open: 0,
            skipped: HashSet::new(),
            unreadable: HashSet::new(),
            batch: Batch::default(),
            forgets: Vec::new(),
            buf: Vec::new(),
            tx,
            shutdown,
            last_flush: Instant::now(),
        }
    }

    /// Runs until shutdown (or until downstream is gone).
    pub(super) fn run(mut self) {
        info!(source = %self.name, include = ?self.config.include, file_events = self.watch.active(), "file source started");
        let mut next_discovery = Instant::now();
        let poll = self.config.poll_interval();
        let max_age = Duration::from_millis(self.config.batch_max_age_ms);
        while !self.shutdown.is_cancelled() {
            let now = Instant::now();
            if now >= next_discovery {
                // Directories are looked for on the schedule only, not at every event.
                self.watch.retry();
                self.discover(now);
                next_discovery = now + self.config.discovery_interval();
            } else if self.watch.discovery_due(now) {
                self.discover(now);
            }
            let due: Vec<FileKey> = self
                .files
                .values()
                .filter(|t| t.next_poll <= now)
                .map(|t| t.key)
                .collect();
            let mut read_any = false;
            for key in due {
                if self.batch_full() && !self.flush() {
                    return;
                }
                read_any |= self.poll(key, now) > 0;
            }
            self.expire(now);
            self.release(now);
            let old = self
                .batch
                .since
                .is_some_and(|t| now.duration_since(t) >= max_age);
            let idle_flush =
                self.batch.records == 0 && now.duration_since(self.last_flush) >= max_age;
            if (self.batch_full() || old || idle_flush) && !self.flush() {
                return;
            }
            // Waits for the next poll, or for the first file event; after a read, only takes
            // the events already there.
            let wait = if read_any {
                Duration::ZERO
            } else {
                poll.min(next_discovery.saturating_duration_since(now))
            };
            let seen = self.watch.wait(wait);
            if !seen.is_empty() {
                self.on_events(seen, Instant::now());
            }
        }
        info!(source = %self.name, "file source stopped");
    }

    fn batch_full(&self) -> bool {
        self.batch.records >= self.config.batch_max_records
            || self.batch.bytes >= self.config.batch_max_bytes
    }

    /// Expands the globs: new files are tracked, files no longer found are marked gone.
    fn discover(&mut self, now: Instant) {
        self.watch.discovered(now);
        let mut seen = HashSet::new();
        let include = self.config.include.clone();
        for pattern in &include {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            // Unreadable directories are skipped by `flatten`, not fatal.
            for path in paths.flatten() {
                if self.excluded(&path) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let key = FileKey::of(&meta);
                if !seen.insert(key) {
                    continue;
                }
                if let Some(t) = self.files.get_mut(&key) {
                    t.gone_since = None;
                    if t.path != path {
                        debug!(from = %t.path.display(), to = %path.display(), "file renamed");
                        t.meta = file_meta(&self.config, &self.host, &path);
                        t.path = path;
                    }
                    continue;
                }
                if self.skipped.contains(&key) {
                    continue;
                }
                self.track(key, path, meta.len(), now);
            }
        }
        for t in self.files.values_mut() {
            if !seen.contains(&t.key) && t.gone_since.is_none() {
                debug!(path = %t.path.display(), "file deleted or rotated away; finishing it");
                t.gone_since = Some(now);
            }
        }
        self.skipped.retain(|k| seen.contains(k));
        self.unreadable.retain(|k| seen.contains(k));
        if !self.discovered_once {
            self.discovered_once = true;
            // Checkpoints of files that are gone for good; those of files seen but not opened
            // yet wait for them.
            let gone: Vec<FileKey> = self
                .restored
                .keys()
                .filter(|k| !seen.contains(k))
                .copied()
                .collect();
            for k in gone {
                // Rotated away while the agent was down: finished where it is now, if that is
                // still in its directory, then let go.
                if let Some(c) = self.restored.get(&k)
                    && let Some((path, len)) = locate(Path::new(&c.path), k, true)
                    && len > c.offset
                {
                    info!(path = %path.display(), was = %c.path, "file rotated away while the agent was down; finishing it");
                    self.track(k, path, len, now);
                }
                self.restored.remove(&k);
                match self.files.get_mut(&k) {
                    Some(t) => t.gone_since = Some(now),
                    None => self.forgets.push(k),
                }
            }
        }
        self.metrics.tracked_files.set(self.files.len() as i64);
        self.metrics.open_files.set(self.open as i64);
        let lag: u64 = self
            .files
            .values()
            .map(|t| t.size.saturating_sub(t.lines.read_offset()))
            .sum();
        self.metrics.lag_bytes.set(lag as i64);
    }

    fn excluded(&self, path: &Path) -> bool {
        self.exclude.iter().any(|p| p.matches_path(path))
    }

    fn track(&mut self, key: FileKey, path: PathBuf, size: u64, now: Instant) {
        if compressed_name(&path) {
            self.skip_compressed(key, &path);
            return;
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                debug!(path = %path.display(), error = %e, "cannot open file");
                if self.unreadable.insert(key) {
                    self.metrics.skipped_unreadable.inc();
                }
                return;
            }
        };
        let restored = self.restored.get(&key).cloned();
        // A checkpoint written with a longer fingerprint is checked over its own length.
        let want = restored
            .as_ref()
            .map_or(0, |c| c.fingerprint.len as usize)
            .max(self.config.fingerprint_bytes);
        let prefix = match read_prefix(&file, want) {
            Ok(p) => p,
            Err(e) => {
                debug!(path = %path.display(), error = %e, "cannot read file");
                if self.unreadable.insert(key) {
                    self.metrics.skipped_unreadable.inc();
                }
                return;
            }
        };
        self.unreadable.remove(&key);
        if compressed_magic(&prefix) {
            self.skip_compressed(key, &path);
            return;
        }
        self.restored.remove(&key);
        let fingerprint =
            Fingerprint::of(&prefix[..prefix.len().min(self.config.fingerprint_bytes)]);
        let (offset, fingerprint, recovery) = match restored {
            Some(c) if c.fingerprint.matches(&prefix) && c.offset <= size => {
                (c.offset, fingerprint, None)
            }
            Some(c) => match find_copy(&path, &c.fingerprint, c.offset) {
                // Copytruncated while the agent was down: finish the old content from its copy.
                Some((copy_path, copy)) => {
                    self.metrics.truncations.inc();
                    let end = copy.metadata().map_or(c.offset, |m| m.len());
                    info!(path = %path.display(), copy = %copy_path.display(), "file truncated while the agent was down; finishing it from its copy");
                    let recovery = Recovery {
                        copy,
                        path: copy_path,
                        end,
                        next: fingerprint,
                    };
                    (c.offset, c.fingerprint, Some(recovery))
                }
                None => {
                    if c.fingerprint.matches(&prefix) {
                        // Shorter than where we were: truncated while the agent was down.
                        self.metrics.truncations.inc();
                    }
                    (0, fingerprint, None)
                }
            },
            None if self.first_start
                && !self.discovered_once
                && self.config.start_at == StartAt::End =>
            {
                (size, fingerprint, None)
            }
            None => (0, fingerprint, None),
        };
        debug!(path = %path.display(), offset, "tailing file");
        self.make_room();
        let file = if self.open < self.config.max_open_files {
            self.open += 1;
            Some(file)
        } else {
            None
        };
        let c = &self.config;
        let tracked = Tracked {
            key,
            meta: file_meta(c, &self.host, &path),
            path,
            file,
            fingerprint,
            lines: LineSplitter::new(c.max_line_bytes, c.long_lines, offset),
            framer: Framer::new(c.format, c.max_line_bytes),
            multiline: c
                .multiline
                .as_ref()
                .and_then(|m| Multiline::new(m, c.max_line_bytes.saturating_mul(16))),
            size,
            last_growth: now,
            next_poll: now,
            idle: c.poll_interval(),
            gone_since: None,
            reported: None,
            recovery,
        };
        self.files.insert(key, tracked);
    }

    fn skip_compressed(&mut self, key: FileKey, path: &Path) {
        debug!(path = %path.display(), "skipping compressed file");
        self.skipped.insert(key);
        self.metrics.skipped_compressed.inc();
    }

    /// At the open-file limit, closes the idle live file that grew least recently.
    fn make_room(&mut self) {
        if self.open < self.config.max_open_files {
            return;
        }
        let victim = self
            .files
            .values()
            .filter(|t| {
                // Nothing pending: a closed file's partial line or record would wait forever.
                t.file.is_some()
                    && t.gone_since.is_none()
                    && t.recovery.is_none()
                    && t.lines.read_offset() >= t.size
                    && t.safe_offset() == t.lines.read_offset()
            })
            .min_by_key(|t| t.last_growth)
            .map(|t| t.key);
        if let Some(t) = victim.and_then(|k| self.files.get_mut(&k)) {
            t.file = None;
            self.open -= 1;
        }
    }

    /// Reopens a closed file if it grew: at its path, or, once it is gone from there (rotated
    /// away while closed), wherever in the same directory its inode now is.
    fn reopen(&mut self, key: FileKey) -> Reopen {
        let Some(t) = self.files.get(&key) else {
            return Reopen::Nothing;
        };
        let Some((path, len)) = locate(&t.path, key, t.gone_since.is_some()) else {
            return Reopen::Nothing;
        };
        let unread = len != t.size || t.lines.read_offset() < len;
        if !unread {
            return Reopen::Nothing;
        }
        self.make_room();
        if self.open >= self.config.max_open_files {
            // Every open file still has data to read: wait for one to reach its end.
            return Reopen::NoRoom;
        }
        let Some(t) = self.files.get_mut(&key) else {
            return Reopen::Nothing;
        };
        match File::open(&path) {
            Ok(f) if f.metadata().is_ok_and(|m| FileKey::of(&m) == key) => {
                t.file = Some(f);
                self.open += 1;
                Reopen::Opened
            }
            _ => Reopen::Nothing,
        }
    }

    /// Reads what a file has past its offset (one chunk at most); returns the bytes read.
    fn poll(&mut self, key: FileKey, now: Instant) -> usize {
        let closed = self.files.get(&key).is_some_and(|t| t.file.is_none());
        if closed && self.reopen(key) != Reopen::Opened {
            if let Some(t) = self.files.get_mut(&key) {
                t.idle = (t.idle * 2).min(self.config.discovery_interval());
                t.next_poll = now + t.idle;
            }
            return 0;
        }
        let room = self
            .config
            .batch_max_bytes
            .saturating_sub(self.batch.bytes)
            .clamp(64 * 1024, CHUNK);
        let Self {
            files,
            batch,
            metrics,
            parser,
            buf,
            config,
            ..
        } = self;
        let Some(t) = files.get_mut(&key) else {
            return 0;
        };
        let mut out = Out {
            batch,
            metrics,
            parser,
            key,
        };
        if t.recovery.is_some() {
            return recover(t, buf, room, now, &mut out);
        }
        let Some(file) = &t.file else {
            return 0;
        };
        let size = match file.metadata() {
            Ok(m) => m.len(),
            Err(_) => return 0,
        };
        // Checked at every poll: a file rewritten in place may have grown back to the same size.
        let mut replaced = size < t.lines.read_offset();
        if !replaced && t.fingerprint.len > 0 {
            match read_prefix(file, t.fingerprint.len as usize) {
                Ok(prefix) => replaced = !t.fingerprint.matches(&prefix),
                Err(_) => return 0,
            }
        }
        if replaced {
            // Truncated in place or rewritten. Under `copytruncate` the rest of the old content
            // is in the copy logrotate made just before: it is finished from there, a chunk per
            // poll. Without a copy, what was not read is gone; the part known to exist is
            // counted.
            metrics.truncations.inc();
            let from = t.lines.read_offset();
            if let Some((path, copy)) = find_copy(&t.path, &t.fingerprint, from) {
                let end = copy.metadata().map_or(from, |m| m.len());
                info!(path = %t.path.display(), copy = %path.display(), "file truncated; finishing it from its copy");
                let next = read_prefix(file, config.fingerprint_bytes)
                    .map_or(Fingerprint::of(&[]), |p| Fingerprint::of(&p));
                t.recovery = Some(Recovery {
                    copy,
                    path,
                    end,
                    next,
                });
                return recover(t, buf, room, now, &mut out);
            }
            let unread = t.size.saturating_sub(from);
            info!(path = %t.path.display(), unread_bytes = unread, offset = from, size, known_size = t.size, fingerprint_bytes = t.fingerprint.len, "file truncated; reading it from its start");
            metrics.truncated_unread_bytes.inc_by(unread);
            start_over(t, Fingerprint::of(&[]), now, &mut out);
        }
        let from = t.lines.read_offset();
        let mut read = 0;
        if size > from {
            // While the fingerprint is short (the file was short), the read starts at 0: the
            // fingerprint then comes from the very bytes that are read, even if the file is
            // truncated meanwhile, and the bytes before `from` are checked against it.
            let short = (t.fingerprint.len as usize) < config.fingerprint_bytes;
            let start = if short { 0 } else { from };
            let want = ((size - start) as usize).min(room.max((from - start) as usize + 1));
            buf.resize(want, 0);
            let Some(file) = &t.file else {
                return 0;
            };
            let n = match file.read_at(&mut buf[..want], start) {
                Ok(n) => n,
                Err(e) => {
                    warn!(path = %t.path.display(), error = %e, "cannot read file");
                    return 0;
                }
            };
            let skip = (from - start) as usize;
            if short && !(n > skip && t.fingerprint.matches(&buf[..n])) {
                // Shrunk or rewritten since the check above: the next poll finds out which.
                t.next_poll = now;
                return 0;
            }
            read = n - skip;
            feed(t, &buf[skip..n], now, &mut out);
            if short {
                t.fingerprint = Fingerprint::of(&buf[..n.min(config.fingerprint_bytes)]);
            }
        }
        t.size = size;
        if read > 0 {
            t.last_growth = now;
            t.idle = config.poll_interval();
            // More to read: stay due.
            t.next_poll = if t.lines.read_offset() < size {
                now
            } else {
                now + t.idle
            };
        } else {
            let quiet = now.duration_since(t.last_growth);
            if t.lines.read_offset() > t.lines.consumed()
                && quiet >= Duration::from_millis(config.partial_line_timeout_ms)
            {
                finish_line(t, now, &mut out);
            }
            if quiet > Duration::from_secs(1) {
                t.idle = (t.idle * 2).min(config.discovery_interval());
            }
            t.next_poll = now + t.idle;
        }
        read
    }

    /// Emits records whose multiline timeout passed.
    fn expire(&mut self, now: Instant) {
        if self.config.multiline.is_none() {
            return;
        }
        let Self {
            files,
            batch,
            metrics,
            parser,
            ..
        } = self;
        for t in files.values_mut() {
            if let Some(m) = &mut t.multiline
                && m.deadline().is_some_and(|d| d <= now)
            {
                let mut out = Out {
                    batch,
                    metrics,
                    parser,
                    key: t.key,
                };
                m.expire(now, &mut |r| out.record(&t.meta, r));
            }
        }
    }

    /// Lets go of files that are gone, read to their end and quiet for `rotate_wait`.
    fn release(&mut self, now: Instant) {
        let wait = Duration::from_millis(self.config.rotate_wait_ms);
        // A file rotated away while it was closed: find it and finish it before letting go; one
        // found with unread bytes but no room to open it waits for room.
        let closed_gone: Vec<FileKey> = self
            .files
            .values()
            .filter(|t| t.gone_since.is_some() && t.file.is_none())
            .map(|t| t.key)
            .collect();
        let mut waiting = HashSet::new();
        for key in closed_gone {
            if self.reopen(key) == Reopen::NoRoom {
                waiting.insert(key);
            }
        }
        let done: Vec<FileKey> = self
            .files
            .values()
            .filter(|t| {
                t.recovery.is_none()
                    && t.gone_since.is_some_and(|g| match &t.file {
                        // Closed: it could not be found any more, or held nothing unread.
                        None => !waiting.contains(&t.key),
                        Some(_) => {
                            t.lines.read_offset() >= t.size
                                && now.duration_since(g.max(t.last_growth)) >= wait
                        }
                    })
            })
            .map(|t| t.key)
            .collect();
        for key in done {
            let Some(mut t) = self.files.remove(&key) else {
                continue;
            };
            self.watch.released(key, t.fingerprint);
            if t.file.take().is_some() {
                self.open -= 1;
            }
            let mut out = Out {
                batch: &mut self.batch,
                metrics: &self.metrics,
                parser: &self.parser,
                key,
            };
            // The file will not grow any more: its last line needs no newline.
            finish_line(&mut t, now, &mut out);
            finish_pending(&mut t, &mut out);
            debug!(path = %t.path.display(), "file released");
            self.metrics.released.inc();
            self.forgets.push(key);
        }
    }

    /// Sends the batch and the checkpoint changes downstream; false once downstream is gone.
    fn flush(&mut self) -> bool {
        self.last_flush = Instant::now();
        let mut updates: Vec<Update> = self.forgets.drain(..).map(Update::Forget).collect();
        for t in self.files.values_mut() {
            let c = t.checkpoint();
            if t.reported.as_ref() != Some(&c) {
                t.reported = Some(c.clone());
                updates.push(Update::Set(c));
            }
        }
        let batch = std::mem::take(&mut self.batch);
        let records = batch.records as u64;
        let batch = (records > 0).then(|| to_batch(batch.groups)).flatten();
        if batch.is_none() && updates.is_empty() {
            return true;
        }
        let out = Outgoing {
            batch,
            records,
            updates,
        };
        match self.tx.try_send(out) {
            Ok(()) => true,
            // The sender is waiting for room downstream (it counts that): wait with it.
            Err(mpsc::error::TrySendError::Full(out)) => self.tx.blocking_send(out).is_ok(),
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Where a tracked file is now, and its length: its path if that still leads to it, else (when
/// `search`) the entry of its directory with its inode.
fn locate(path: &Path, key: FileKey, search: bool) -> Option<(PathBuf, u64)> {
    if let Ok(meta) = std::fs::metadata(path)
        && FileKey::of(&meta) == key
    {
        return Some((path.to_path_buf(), meta.len()));
    }
    if !search {
        return None;
    }
    std::fs::read_dir(path.parent()?)
        .ok()?
        .flatten()
        .find_map(|e| {
            let meta = std::fs::metadata(e.path()).ok()?;
            (FileKey::of(&meta) == key).then(|| (e.path(), meta.len()))
        })
}
