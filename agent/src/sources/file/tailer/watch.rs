//! File-system events for the tailer: the include directories are watched (inotify on
//! Linux, through the `notify` crate) for files created and renamed, so that a file is found
//! the moment it appears and followed the moment it is renamed, even when it lives shorter
//! than a discovery interval (an `app.log` rotated away every 80 ms).
//!
//! Only creations and renames are passed on; writes are not (the tailer polls open files, and
//! a write event per line would cost more than the poll). The watcher's thread hands events
//! over a channel; the tailer's wait for the next round is a wait on that channel, so an event
//! wakes it at once.
//!
//! Invariant: events only make the tailer look sooner. Polling and discovery go on as before,
//! so a lost event (a full kernel queue, a file system without events, a directory that did
//! not exist yet) delays a file by at most a discovery interval, as without events.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tracing::{debug, warn};

use super::super::identity::FileKey;
use super::records::file_meta;

/// What the watcher saw.
#[derive(Debug, PartialEq)]
pub(super) enum Seen {
    /// A file appeared or left a directory: the globs should be expanded now.
    Changed,
    /// `from` was renamed to `to`.
    Renamed { from: PathBuf, to: PathBuf },
}

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

pub(super) struct Watch {
    watcher: Option<RecommendedWatcher>,
    events: mpsc::Receiver<Seen>,
    /// Directories to watch that could not be watched yet (missing), tried again by
    /// [`Watch::retry`].
    waiting: Vec<(PathBuf, RecursiveMode)>,
    watched: HashSet<PathBuf>,
}

impl Watch {
    /// Watches the base directories of `include`; without events (`enabled` false, or no
    /// watcher on this system) every wait is a plain sleep.
    pub(super) fn new(include: &[String], enabled: bool, source: &str) -> Self {
        let (tx, events) = mpsc::channel();
        let watcher = if enabled {
            let mut moved_from: Option<(usize, PathBuf)> = None;
            let handler = move |res: notify::Result<notify::Event>| {
                let Ok(event) = res else {
                    let _ = tx.send(Seen::Changed);
                    return;
                };
                if event.need_rescan() {
                    let _ = tx.send(Seen::Changed);
                    return;
                }
                let seen = match event.kind {
                    EventKind::Create(_) => Some(Seen::Changed),
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both))
                        if event.paths.len() == 2 =>
                    {
                        moved_from = None;
                        Some(Seen::Renamed {
                            from: event.paths[0].clone(),
                            to: event.paths[1].clone(),
                        })
                    }
                    EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                        if let (Some(t), Some(p)) = (event.tracker(), event.paths.first()) {
                            moved_from = Some((t, p.clone()));
                        }
                        Some(Seen::Changed)
                    }
                    EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                        match (moved_from.take(), event.tracker(), event.paths.first()) {
                            (Some((t, from)), Some(tracker), Some(to)) if t == tracker => {
                                Some(Seen::Renamed {
                                    from,
                                    to: to.clone(),
                                })
                            }
                            _ => Some(Seen::Changed),
                        }
                    }
                    EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => {
                        Some(Seen::Changed)
                    }
                    _ => None,
                };
                if let Some(s) = seen {
                    let _ = tx.send(s);
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
        let mut waiting: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        for pattern in include {
            let (dir, mode) = base_dir(pattern);
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            };
            if !waiting.iter().any(|(d, _)| *d == dir) {
                waiting.push((dir, mode));
            }
        }
        let mut watch = Self {
            watcher,
            events,
            waiting,
            watched: HashSet::new(),
        };
        watch.retry();
        watch
    }

    /// Whether events come at all.
    pub(super) fn active(&self) -> bool {
        self.watcher.is_some() && !self.watched.is_empty()
    }

    /// Tries again to watch the directories that could not be watched.
    pub(super) fn retry(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let watched = &mut self.watched;
        self.waiting
            .retain(|(dir, mode)| match watcher.watch(dir, *mode) {
                Ok(()) => {
                    debug!(dir = %dir.display(), "watching for file events");
                    watched.insert(dir.clone());
                    false
                }
                Err(_) => true,
            });
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
                Err(_) => return out,
            }
        }
        // Bounded: a flood of events is taken a slice at a time, between reads.
        while out.len() < 4096 {
            match self.events.try_recv() {
                Ok(s) => out.push(s),
                Err(_) => break,
            }
        }
        out
    }
}

impl super::Tailer {
    /// Acts on file events: renames are followed, then the globs are expanded at once.
    pub(super) fn on_events(&mut self, seen: Vec<Seen>, now: Instant) {
        let mut changed = false;
        for s in seen {
            changed = true;
            if let Seen::Renamed { from, to } = s {
                self.follow_rename(&from, &to, now);
            }
        }
        if changed {
            self.discover(now);
        }
    }

    /// A file of ours (matching the globs, or tracked under `from`) renamed to `to`: followed
    /// there, and finished there when `to` is out of the globs, also when it was never seen
    /// under its old name (rotated away before a discovery could find it).
    fn follow_rename(&mut self, from: &Path, to: &Path, now: Instant) {
        let ours = self.include.iter().any(|p| p.matches_path(from))
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
            if self.skipped.contains(&key) {
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
