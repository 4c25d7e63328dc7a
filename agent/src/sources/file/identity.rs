//! The identity of a tailed file: its device and inode, plus a fingerprint (length and hash)
//! of its first bytes.
//!
//! Invariants:
//! - The inode alone is not trusted: inodes are reused once a file is deleted. A file matches
//!   a known identity only when device and inode are equal and its first `len` bytes still
//!   hash to the fingerprint; a file rewritten in place (copytruncate) fails that check too.
//! - Files that share their first lines are still told apart by their inodes, and an empty
//!   file has an empty fingerprint that grows with the file (up to `fingerprint_bytes`) as
//!   it is read, so a file that was empty at first sight is not mistaken for another later.
//! - Rotated files compressed by logrotate (gzip, bzip2, xz, zstd, lz4, zip) are recognised by
//!   their name or first bytes and never read.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Hash of the first `len` bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

impl Fingerprint {
    pub fn of(prefix: &[u8]) -> Self {
        Self {
            len: prefix.len() as u32,
            hash: xxhash_rust::xxh3::xxh3_64(prefix),
        }
    }

    /// Whether `prefix` (at least `len` bytes of the file, from its start) matches.
    pub fn matches(&self, prefix: &[u8]) -> bool {
        prefix.len() >= self.len as usize
            && xxhash_rust::xxh3::xxh3_64(&prefix[..self.len as usize]) == self.hash
    }
}

/// Up to `n` bytes from the start of `file`.
pub fn read_prefix(file: &File, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

const COMPRESSED_EXTENSIONS: &[&str] = &["gz", "bz2", "xz", "zst", "lz4", "zip", "Z", "tgz"];

/// Whether the name says the file is compressed.
pub fn compressed_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| COMPRESSED_EXTENSIONS.contains(&e))
}

/// Whether the first bytes are the magic number of a compression format.
pub fn compressed_magic(prefix: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        &[0x1f, 0x8b],                         // gzip
        b"BZh",                                // bzip2
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00], // xz
        &[0x28, 0xb5, 0x2f, 0xfd],             // zstd
        &[0x04, 0x22, 0x4d, 0x18],             // lz4 frame
        b"PK\x03\x04",                         // zip
    ];
    MAGICS.iter().any(|m| prefix.starts_with(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_prefixes_only() {
        let fp = Fingerprint::of(b"hello");
        assert!(fp.matches(b"hello world"));
        assert!(!fp.matches(b"hell"));
        assert!(!fp.matches(b"jello world"));
        // An empty fingerprint matches any content: the inode decides alone.
        assert!(Fingerprint::of(b"").matches(b"anything"));
    }

    #[test]
    fn compressed_files_are_recognised() {
        assert!(compressed_name(Path::new("/var/log/app.log.2.gz")));
        assert!(!compressed_name(Path::new("/var/log/app.log.1")));
        assert!(compressed_magic(&[0x1f, 0x8b, 8, 0]));
        assert!(!compressed_magic(b"2024-05-01 INFO"));
    }
}
