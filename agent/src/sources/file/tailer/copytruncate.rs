//! Finishing a file truncated in place (logrotate's `copytruncate`): the rest of its old
//! content is read from the copy made just before the truncation, then the file is read again
//! from its start.
//!
//! Invariants:
//! - The copy is recognised by its name (starting like the file's), its length (at least what
//!   was read) and its first bytes (the fingerprint of what was read); never a compressed file.
//! - The old content is read up to the copy's length when it was found, a chunk per poll, and
//!   only then does the file start over, under the fingerprint of its new first bytes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::warn;

use super::super::identity::{Fingerprint, compressed_name, read_prefix};
use super::Tracked;
use super::records::{Out, feed, finish_line, finish_pending};

/// The copy `copytruncate` left of a file's old content, read up to `end` before the file
/// itself is read again from its start.
pub(super) struct Recovery {
    pub(super) copy: File,
    pub(super) path: PathBuf,
    pub(super) end: u64,
    /// The first bytes of the file's new content when the truncation was found: once the old
    /// content is finished, a file truncated again meanwhile is told by them.
    pub(super) next: Fingerprint,
}

/// The copy `copytruncate` made of the file at `path` before truncating it: a file next to it
/// whose name starts like the file's (`app.log.1`, `app-20240501.log`), not compressed, at least
/// `offset` bytes long, that starts with the bytes the file started with (the newest if several).
pub(super) fn find_copy(
    path: &Path,
    fingerprint: &Fingerprint,
    offset: u64,
) -> Option<(PathBuf, File)> {
    if fingerprint.len == 0 {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let mut best: Option<(SystemTime, PathBuf, File)> = None;
    for entry in std::fs::read_dir(path.parent()?).ok()?.flatten() {
        let candidate = entry.path();
        let named_like = candidate
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(stem));
        if candidate == path || !named_like || compressed_name(&candidate) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() || meta.len() < offset {
            continue;
        }
        let Ok(file) = File::open(&candidate) else {
            continue;
        };
        let matches = read_prefix(&file, fingerprint.len as usize)
            .is_ok_and(|prefix| fingerprint.matches(&prefix));
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        if matches && best.as_ref().is_none_or(|(m, _, _)| modified > *m) {
            best = Some((modified, candidate, file));
        }
    }
    best.map(|(_, p, f)| (p, f))
}

/// Reads one chunk of a truncated file's old content from its copy; once at the copy's end,
/// emits what is pending and starts the file over. Returns the bytes read (at least 1 when it
/// made progress, so that the caller polls again at once).
pub(super) fn recover(
    t: &mut Tracked,
    buf: &mut Vec<u8>,
    room: usize,
    now: Instant,
    out: &mut Out<'_>,
) -> usize {
    let at = t.lines.read_offset();
    let Some(r) = &t.recovery else {
        return 0;
    };
    let want = (r.end.saturating_sub(at) as usize).min(room);
    let n = if want == 0 {
        0
    } else {
        buf.resize(want, 0);
        match r.copy.read_at(&mut buf[..want], at) {
            Ok(n) => n,
            Err(e) => {
                warn!(copy = %r.path.display(), error = %e, "cannot read the copy of a truncated file");
                0
            }
        }
    };
    t.next_poll = now;
    if n > 0 {
        feed(t, &buf[..n], now, out);
        out.metrics.truncated_recovered_bytes.inc_by(n as u64);
        return n;
    }
    let next = t.recovery.take().map_or(Fingerprint::of(&[]), |r| r.next);
    start_over(t, next, now, out);
    1
}

/// The old content of a truncated file is over: what is pending is emitted, and reading starts
/// again at 0 under the fingerprint of the new content's first bytes (`next`, empty if none
/// were seen).
pub(super) fn start_over(t: &mut Tracked, next: Fingerprint, now: Instant, out: &mut Out<'_>) {
    finish_line(t, now, out);
    finish_pending(t, out);
    t.lines.reset(0);
    t.fingerprint = next;
    t.size = 0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_copytruncate_copy_is_the_newest_matching_file_named_like_the_original() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        let old = b"2024-05-01 first line\nsecond line\nthird line\n";
        let fingerprint = Fingerprint::of(&old[..20]);
        std::fs::write(&path, b"new content\n").expect("write");
        let write = |name: &str, bytes: &[u8], age_secs: u64| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).expect("write");
            let f = File::options().write(true).open(&p).expect("open");
            f.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
                .expect("mtime");
        };
        write("app.log.2", old, 60);
        write("app.log.1", old, 1);
        // Same bytes, but named like another file; or too short; or compressed.
        write("other.log", old, 0);
        write("app.log.3", &old[..25], 0);
        write("app.log.4.gz", old, 0);
        let (found, _) = find_copy(&path, &fingerprint, 30).expect("a copy");
        assert_eq!(found, dir.path().join("app.log.1"));
        assert!(find_copy(&path, &Fingerprint::of(b"something else"), 0).is_none());
        assert!(find_copy(&path, &fingerprint, 1000).is_none());
    }
}
