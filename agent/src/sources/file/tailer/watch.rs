//! File-system events for the tailer: the include directories are watched (inotify on
//! Linux, through the `notify` crate) for files created and renamed, so that a file is found
//! the moment it appears and followed the moment it is renamed, even when it lives shorter
//! than a discovery interval (an `app.log` rotated away every 80 ms).
//!
//! The directories watched are the ones the globs can match in: each directory matching the
//! glob's directory part (found again at every scheduled discovery, so new pod directories are watched
//! and removed ones dropped), watched without recursion; only a `**` glob watches its base
//! directory recursively.
//!
//! Only creations and renames are passed on. The kernel still reports every write to a
//! watched directory's files to `notify` (its inotify backend asks for them), and they are
//! dropped in the watcher's callback; the tailer polls open files for data. The callback hands
//! events over a bounded channel (a full channel becomes one "look again"); the tailer's wait
//! for its next round is a wait on that channel, so an event wakes it at once.
//!
//! Invariant: events only make the tailer look sooner. Polling and discovery go on as before,
//! so a lost event (a full queue, a file system without events, a directory that did not exist
//! yet) delays a file by at most a discovery interval, as without events.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tracing::{debug, warn};

use super::super::identity::{FileKey, Fingerprint, read_prefix};
use super::records::file_meta;

/// What the watcher saw.
#[derive(Debug, PartialEq)]
pub(super) enum Seen {
    /// A file appeared or left a directory: the globs should be expanded now.
    Changed,
    /// `from` was renamed to `to`.
    Renamed { from: PathBuf, to: PathBuf },
}

/// Events queued for the tailer at most; past it they become one [`Seen::Changed`].
const QUEUE: usize = 4096;
/// Shortest time between two expansions of the globs that events ask for.
const MIN_GAP: Duration = Duration::from_millis(10);
/// Files let go that are remembered, so that a rename of one is not taken for a new file.
const RELEASED: usize = 4096;

/// The directory a glob's matches live under: its components before the first one with a
/// wildcard, and whether matches may be deeper (`**`, or a wildcard in a directory).
fn base_dir(pattern: &str) -> (PathBuf, RecursiveMode) {
    let path = Path::new(pattern);
    let mut base = PathBuf::new();
    let mut components = path.components().peekable();
    while let Some(c) = components.next() {
        let text = c.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[', '{']) {
            // A wildcard in the last component matches files of `base`; anywhere else it
            // matches directories below it.
            let last = components.peek().is_none();
            let mode = if last && !text.contains("**") {
                RecursiveMode::NonRecursive
            } else {
                RecursiveMode::Recursive
            };
            return (base, mode);
        }
        if components.peek().is_none() {
            // No wildcard: the pattern names one file.
            return (base, RecursiveMode::NonRecursive);
        }
        base.push(c);
    }
    (base, RecursiveMode::NonRecursive)
}

/// The directories to watch for `pattern` as the disk is now: its base directory when its
/// matches are all in it or the glob has `**` (recursively then), else every directory that
/// matches the glob's directory part (each without recursion).
fn targets(pattern: &str) -> Vec<(PathBuf, RecursiveMode)> {
    let (base, mode) = base_dir(pattern);
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    if mode == RecursiveMode::NonRecursive || pattern.contains("**") {
        return vec![(base, mode)];
    }
    let Some(parent) = Path::new(pattern).parent() else {
        return vec![(base, mode)];
    };
    match glob::glob(&parent.to_string_lossy()) {
        Ok(dirs) => dirs
            .flatten()
            .filter(|d| d.is_dir())
            .map(|d| (d, RecursiveMode::NonRecursive))
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub(super) struct Watch {
    watcher: Option<RecommendedWatcher>,
    events: mpsc::Receiver<Seen>,
    /// Set by the callback when the queue was full: something was missed, look again.
    overflowed: Arc<AtomicBool>,
    include: Vec<String>,
    watched: HashSet<PathBuf>,
    /// Files read to their end and let go, with their fingerprint (an inode used again by
    /// another file has other first bytes).
    released: HashMap<FileKey, Fingerprint>,
    /// Events asked for an expansion of the globs that waits for [`MIN_GAP`].
    pending: bool,
    last_discovery: Option<Instant>,
}

impl Watch {
    /// Watches the directories of `include`; without events (`enabled` false, or no watcher
    /// on this system) every wait is a plain sleep.
    pub(super) fn new(include: &[String], enabled: bool, source: &str) -> Self {
        let (tx, events) = mpsc::sync_channel(QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        let watcher = if enabled {
            let full = overflowed.clone();
            let mut moved_from: Option<(usize, PathBuf)> = None;
            let handler = move |res: notify::Result<notify::Event>| {
                let seen = match res {
                    Err(_) => Some(Seen::Changed),
                    Ok(event) if event.need_rescan() => Some(Seen::Changed),
                    Ok(event) => classify(event, &mut moved_from),
                };
                if let Some(s) = seen
                    && let Err(mpsc::TrySendError::Full(_)) = tx.try_send(s)
                {
                    full.store(true, Ordering::Relaxed);
                }
            };
            match notify::recommended_watcher(handler) {
                Ok(w) => Some(w),
                Err(e) => {
                    warn!(source, error = %e, "cannot watch for file events; finding files by polling only");
                    None
                }
            }
        } else {
            None
        };
        let mut watch = Self {
            watcher,
            events,
            overflowed,
            include: include.to_vec(),
            watched: HashSet::new(),
            released: HashMap::new(),
            pending: false,
            last_discovery: None,
        };
        watch.retry();
        watch
    }

    /// Remembers a file let go.
    pub(super) fn released(&mut self, key: FileKey, fingerprint: Fingerprint) {
        if self.released.len() >= RELEASED {
            self.released.clear();
        }
        self.released.insert(key, fingerprint);
    }

    /// Whether the expansion of the globs that events asked for is due now.
    pub(super) fn discovery_due(&self, now: Instant) -> bool {
        self.pending
            && self
                .last_discovery
                .is_none_or(|t| now.duration_since(t) >= MIN_GAP)
    }

    /// Whether events come at all.
    pub(super) fn active(&self) -> bool {
        self.watcher.is_some() && !self.watched.is_empty()
    }

    /// The globs are being expanded: what events asked for is done.
    pub(super) fn discovered(&mut self, now: Instant) {
        self.pending = false;
        self.last_discovery = Some(now);
    }

    /// Watches the directories the globs match now that are not watched yet, and forgets
    /// the ones that are gone (their watch ended with them), so a directory made again is
    /// watched again.
    pub(super) fn retry(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        self.watched.retain(|d| d.is_dir());
        for pattern in &self.include {
            for (dir, mode) in targets(pattern) {
                if self.watched.contains(&dir) {
                    continue;
                }
                if watcher.watch(&dir, mode).is_ok() {
                    debug!(dir = %dir.display(), "watching for file events");
                    self.watched.insert(dir);
                }
            }
        }
    }

    /// Waits up to `timeout` for events (returns at the first), then takes every event
    /// already there. A zero timeout only takes what is there.
    pub(super) fn wait(&mut self, timeout: Duration) -> Vec<Seen> {
        let mut out = Vec::new();
        if self.watcher.is_none() {
            if !timeout.is_zero() {
                std::thread::sleep(timeout);
            }
            return out;
        }
        if !timeout.is_zero() {
            match self.events.recv_timeout(timeout) {
                Ok(s) => out.push(s),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // The watcher is gone: polling alone from now on.
                    self.watcher = None;
                    return out;
                }
            }
        }
        while out.len() < QUEUE {
            match self.events.try_recv() {
                Ok(s) => out.push(s),
                Err(_) => break,
            }
        }
        if self.overflowed.swap(false, Ordering::Relaxed) {
            out.push(Seen::Changed);
        }
        out
    }
}

/// What an event means to the tailer; `moved_from` pairs a rename's two halves when the
/// backend reports them apart.
fn classify(event: notify::Event, moved_from: &mut Option<(usize, PathBuf)>) -> Option<Seen> {
    match event.kind {
        EventKind::Create(_) => Some(Seen::Changed),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if event.paths.len() == 2 => {
            *moved_from = None;
            let mut paths = event.paths.into_iter();
            let from = paths.next()?;
            let to = paths.next()?;
            Some(Seen::Renamed { from, to })
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            if let (Some(t), Some(p)) = (event.tracker(), event.paths.first()) {
                *moved_from = Some((t, p.clone()));
            }
            Some(Seen::Changed)
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            match (moved_from.take(), event.tracker(), event.paths.first()) {
                (Some((t, from)), Some(tracker), Some(to)) if t == tracker => Some(Seen::Renamed {
                    from,
                    to: to.clone(),
                }),
                _ => Some(Seen::Changed),
            }
        }
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Some(Seen::Changed),
        _ => None,
    }
}

impl super::Tailer {
    /// Acts on file events: renames are followed at once; the globs are expanded again now,
    /// or after [`MIN_GAP`] since the last time events asked for it.
    pub(super) fn on_events(&mut self, seen: Vec<Seen>, now: Instant) {
        for s in seen {
            self.watch.pending = true;
            if let Seen::Renamed { from, to } = s {
                self.follow_rename(&from, &to, now);
            }
        }
        if self.watch.discovery_due(now) {
            self.discover(now);
        }
    }

    /// A file of ours (under the globs, or tracked under `from`) renamed to `to`: followed
    /// there, and finished there when `to` is out of the globs, also when it was never seen
    /// under its old name (rotated away before a discovery could find it). A file already
    /// read and let go is not taken up again.
    fn follow_rename(&mut self, from: &Path, to: &Path, now: Instant) {
        let ours = (self.include.iter().any(|p| p.matches_path(from)) && !self.excluded(from))
            || self.files.values().any(|t| t.path == from);
        if !ours {
            return;
        }
        let Ok(meta) = std::fs::metadata(to) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        let key = FileKey::of(&meta);
        let in_globs = self.include.iter().any(|p| p.matches_path(to)) && !self.excluded(to);
        if !self.files.contains_key(&key) {
            if self.skipped.contains(&key) || self.was_released(key, to) {
                return;
            }
            debug!(from = %from.display(), to = %to.display(), "file renamed before it was found; reading it where it is");
            self.track(key, to.to_path_buf(), meta.len(), now);
        }
        if let Some(t) = self.files.get_mut(&key) {
            if t.path != to {
                t.meta = file_meta(&self.config, &self.host, to);
                t.path = to.to_path_buf();
            }
            if !in_globs && t.gone_since.is_none() {
                t.gone_since = Some(now);
            }
        }
    }

    /// Whether the file at `path` is one read to its end and let go (same inode, same first
    /// bytes).
    fn was_released(&self, key: FileKey, path: &Path) -> bool {
        let Some(fingerprint) = self.watch.released.get(&key).filter(|f| f.len > 0) else {
            return false;
        };
        std::fs::File::open(path)
            .and_then(|f| read_prefix(&f, fingerprint.len as usize))
            .is_ok_and(|prefix| fingerprint.matches(&prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_directories_of_globs() {
        assert_eq!(
            base_dir("/var/log/app/*.log"),
            ("/var/log/app".into(), RecursiveMode::NonRecursive)
        );
        assert_eq!(
            base_dir("/var/log/pods/*/*/*.log"),
            ("/var/log/pods".into(), RecursiveMode::Recursive)
        );
        assert_eq!(
            base_dir("/var/log/**/x.log"),
            ("/var/log".into(), RecursiveMode::Recursive)
        );
        assert_eq!(
            base_dir("/srv/app.log"),
            ("/srv".into(), RecursiveMode::NonRecursive)
        );
    }

    #[test]
    fn creations_and_renames_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let mut w = Watch::new(&[pattern], true, "test");
        assert!(w.active());
        let a = dir.path().join("a.log");
        std::fs::write(&a, b"x\n").unwrap();
        let b = dir.path().join("a.log.1");
        std::fs::rename(&a, &b).unwrap();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline
            && !seen.iter().any(|s| matches!(s, Seen::Renamed { .. }))
        {
            seen.extend(w.wait(Duration::from_millis(100)));
        }
        assert!(seen.contains(&Seen::Changed), "{seen:?}");
        assert!(seen.contains(&Seen::Renamed { from: a, to: b }), "{seen:?}");
    }
}
