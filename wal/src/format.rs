//! The WAL segment format.
//!
//! ```text
//! segment  := header record*
//! header   := b"STRWAL" version:u16-LE          (8 bytes; version 1)
//! record   := len:u32-LE crc:u32-LE payload      (crc = CRC-32 of payload)
//! ```
//!
//! A record is valid only if its whole payload is present and its checksum matches. Reading
//! stops at the first invalid record: everything from there on is the segment's bad tail
//! (a torn write from a crash, or corruption), which the caller sets aside.

use std::io;

pub const MAGIC: &[u8; 6] = b"STRWAL";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 8;
pub const RECORD_HEADER_LEN: usize = 8;
/// A record larger than this is corruption, not data (a batch is far smaller).
pub const MAX_RECORD: usize = 1 << 30;

pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..6].copy_from_slice(MAGIC);
    h[6..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Appends one framed record to `out`.
pub fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What a segment held.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// Valid records with the offset of their frame, in order.
    pub records: Vec<(usize, &'a [u8])>,
    /// Length of the valid prefix (header plus valid records).
    pub valid_len: usize,
}

/// Decodes a whole segment. A bad header is an error (the whole file is unusable); a bad
/// record ends the valid prefix.
pub fn decode_segment(bytes: &[u8]) -> io::Result<Decoded<'_>> {
    if bytes.len() < HEADER_LEN || &bytes[..6] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a Strata WAL segment",
        ));
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unsupported WAL version {version}"),
        ));
    }
    let mut records = Vec::new();
    let mut pos = HEADER_LEN;
    while bytes.len() - pos >= RECORD_HEADER_LEN {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let start = pos + RECORD_HEADER_LEN;
        if len > MAX_RECORD || bytes.len() - start < len {
            break;
        }
        let payload = &bytes[start..start + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        records.push((pos, payload));
        pos = start + len;
    }
    Ok(Decoded {
        records,
        valid_len: pos,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn segment(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = header().to_vec();
        for p in payloads {
            encode_record(p, &mut out);
        }
        out
    }

    proptest! {
        #[test]
        fn records_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let bytes = segment(&payloads);
            let d = decode_segment(&bytes).unwrap();
            prop_assert_eq!(d.valid_len, bytes.len());
            prop_assert_eq!(d.records.len(), payloads.len());
            for ((_, a), b) in d.records.iter().zip(&payloads) {
                prop_assert_eq!(*a, b.as_slice());
            }
        }

        /// Any cut of the file keeps exactly the records that are whole before the cut.
        #[test]
        fn torn_tails_keep_the_whole_records(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..100), 1..10), cut in any::<prop::sample::Index>()) {
            let bytes = segment(&payloads);
            let cut = HEADER_LEN + cut.index(bytes.len() - HEADER_LEN);
            let d = decode_segment(&bytes[..cut]).unwrap();
            let mut end = HEADER_LEN;
            let mut whole = 0;
            for p in &payloads {
                if end + 8 + p.len() > cut {
                    break;
                }
                end += 8 + p.len();
                whole += 1;
            }
            prop_assert_eq!(d.records.len(), whole);
            prop_assert_eq!(d.valid_len, end);
        }

        /// A flipped byte ends the valid prefix at (or before) the damaged record.
        #[test]
        fn corruption_is_detected(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..100), 1..10), at in any::<prop::sample::Index>()) {
            let mut bytes = segment(&payloads);
            let at = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[at] ^= 0x5a;
            let d = decode_segment(&bytes).unwrap();
            prop_assert!(d.valid_len <= at);
            for ((_, a), b) in d.records.iter().zip(&payloads) {
                prop_assert_eq!(*a, b.as_slice());
            }
        }
    }

    #[test]
    fn bad_headers_are_errors() {
        assert!(decode_segment(b"nope").is_err());
        let mut h = header().to_vec();
        h[6] = 9;
        assert!(decode_segment(&h).is_err());
        assert_eq!(decode_segment(&header()).unwrap().records.len(), 0);
    }
}
