//! Hex encoding of trace, span and other binary ids.
//!
//! Invariants: [`encode`] always produces lowercase hex of exactly the given bytes (any length,
//! empty -> `""`); [`decode`] accepts upper- or lowercase hex of even length and is its exact
//! inverse.

use crate::error::{Error, Result};

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Appends `bytes` as lowercase hex, one row of `out`.
pub(crate) fn append_hex(out: &mut arrow::array::StringBuilder, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    match buf.get_mut(..bytes.len() * 2) {
        Some(hex) => {
            // Cannot fail: the slice is exactly twice the input's length.
            let _ = hex::encode_to_slice(bytes, hex);
            out.append_value(std::str::from_utf8(hex).unwrap_or_default());
        }
        None => out.append_value(hex::encode(bytes)),
    }
}

/// Decode lowercase or uppercase hex into bytes. The empty string decodes to no bytes.
pub fn decode(s: &str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|source| Error::InvalidHexId {
        value: s.to_owned(),
        source,
    })
}

/// Whether `s` looks like a trace id: exactly 32 hex characters (either case).
pub fn is_trace_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_length() {
        for bytes in [
            vec![],
            vec![0u8],
            vec![0xab, 0xcd, 0x01],
            (0..=255u8).collect(),
        ] {
            let s = encode(&bytes);
            assert_eq!(s, s.to_lowercase());
            assert_eq!(s.len(), bytes.len() * 2);
            assert_eq!(decode(&s).expect("valid hex"), bytes);
        }
    }

    #[test]
    fn decodes_uppercase() {
        assert_eq!(
            decode("EEE19B7E").expect("valid"),
            vec![0xee, 0xe1, 0x9b, 0x7e]
        );
    }

    #[test]
    fn rejects_bad_hex() {
        assert!(matches!(decode("abc"), Err(Error::InvalidHexId { .. })));
        assert!(matches!(decode("zz"), Err(Error::InvalidHexId { .. })));
    }

    #[test]
    fn trace_id_shape() {
        assert!(is_trace_id("5B8EFFF798038103D269B633813FC60C"));
        assert!(is_trace_id("5b8efff798038103d269b633813fc60c"));
        assert!(!is_trace_id("5b8efff798038103d269b633813fc60"));
        assert!(!is_trace_id("5b8efff798038103d269b633813fc60g"));
        assert!(!is_trace_id(""));
    }
}
