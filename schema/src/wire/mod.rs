//! A protobuf wire-format reader over borrowed bytes, for decoding OTLP requests straight into
//! Arrow builders without building prost structs first.
//!
//! [`Reader`] walks the fields of one message in wire order and hands out each value borrowed
//! from the input: a length-delimited field is a sub-slice, never a copy. Callers keep the
//! protobuf rules themselves: the last occurrence of a scalar field wins, occurrences of a
//! message field merge (decoding their concatenation is that merge), unknown fields are
//! skipped, and a known field with the wrong wire type is an error, as prost does.
//!
//! Invariants:
//! - Nothing here panics on any input: a cut varint, a length past the end, a wire type 6 or 7,
//!   or groups nested deeper than [`MAX_DEPTH`] are [`WireError`]s.
//! - Strings are checked to be UTF-8 ([`str`]) before they reach an Arrow string builder.

use std::fmt;

pub(crate) mod common;

/// How deep deprecated groups may nest before a message is refused (prost's recursion limit).
pub const MAX_DEPTH: u32 = 100;

/// Why bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// What was wrong, and in which message or field.
    pub what: String,
}

impl WireError {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for WireError {}

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    fn kind(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "fixed64",
            Value::Bytes(_) => "length-delimited",
            Value::Fixed32(_) => "fixed32",
        }
    }

    fn wrong(&self, field: &str, expected: &str) -> WireError {
        WireError::new(format!(
            "{field}: invalid wire type {}, expected {expected}",
            self.kind()
        ))
    }

    /// A `bytes`, `string` or embedded message field.
    pub(crate) fn bytes(self, field: &str) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            other => Err(other.wrong(field, "length-delimited")),
        }
    }

    /// A `string` field, checked to be UTF-8.
    pub(crate) fn str(self, field: &str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(field)?)
            .map_err(|_| WireError::new(format!("{field}: invalid string value: not UTF-8")))
    }

    /// An `int64`, `uint64`, `int32`, `uint32`, `bool` or enum field: the raw varint.
    pub(crate) fn varint(self, field: &str) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            other => Err(other.wrong(field, "varint")),
        }
    }

    /// A `fixed64` or `double` field: the raw 64 bits.
    pub(crate) fn fixed64(self, field: &str) -> Result<u64, WireError> {
        match self {
            Value::Fixed64(v) => Ok(v),
            other => Err(other.wrong(field, "fixed64")),
        }
    }

    /// A `fixed32` field.
    pub(crate) fn fixed32(self, field: &str) -> Result<u32, WireError> {
        match self {
            Value::Fixed32(v) => Ok(v),
            other => Err(other.wrong(field, "fixed32")),
        }
    }

    /// An `int32` or enum field (prost truncates the varint the same way).
    pub(crate) fn int32(self, field: &str) -> Result<i32, WireError> {
        self.varint(field).map(|v| v as i32)
    }

    /// A `uint32` field.
    pub(crate) fn uint32(self, field: &str) -> Result<u32, WireError> {
        self.varint(field).map(|v| v as u32)
    }
}

/// The fields of one message, in wire order.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads the fields of `buf`, a message of type `message` (named in errors).
    pub(crate) fn new(buf: &'a [u8], message: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            message,
        }
    }

    fn cut(&self) -> WireError {
        WireError::new(format!("{}: buffer underflow", self.message))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.cut());
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                // A tenth byte may only carry the top bit, as prost checks.
                if shift == 63 && byte > 1 {
                    break;
                }
                return Ok(value);
            }
        }
        Err(WireError::new(format!("{}: invalid varint", self.message)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.cut())?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next `N` bytes, for fixed-width fields.
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = *self.buf[self.pos..]
            .first_chunk::<N>()
            .ok_or_else(|| self.cut())?;
        self.pos += N;
        Ok(bytes)
    }

    /// The next field's number and value; `None` at the end of the message. Groups (wire
    /// types 3 and 4, deprecated) are skipped whole.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        loop {
            if self.pos >= self.buf.len() {
                return Ok(None);
            }
            let key = self.varint()?;
            if key > u64::from(u32::MAX) {
                return Err(WireError::new(format!(
                    "{}: invalid key value",
                    self.message
                )));
            }
            let (number, wire_type) = ((key >> 3) as u32, key & 7);
            if number == 0 {
                return Err(WireError::new(format!(
                    "{}: invalid field number 0",
                    self.message
                )));
            }
            let value = match wire_type {
                0 => Value::Varint(self.varint()?),
                1 => Value::Fixed64(u64::from_le_bytes(self.take_array()?)),
                2 => {
                    let len = self.varint()?;
                    let len = usize::try_from(len).map_err(|_| self.cut())?;
                    Value::Bytes(self.take(len)?)
                }
                3 => {
                    self.skip_group(number, 1)?;
                    continue;
                }
                5 => Value::Fixed32(u32::from_le_bytes(self.take_array()?)),
                other => {
                    return Err(WireError::new(format!(
                        "{}: invalid wire type {other}",
                        self.message
                    )));
                }
            };
            return Ok(Some((number, value)));
        }
    }

    /// Skips the fields of a group started by field `number`, through its end marker.
    fn skip_group(&mut self, number: u32, depth: u32) -> Result<(), WireError> {
        if depth > MAX_DEPTH {
            return Err(WireError::new(format!(
                "{}: recursion limit reached",
                self.message
            )));
        }
        loop {
            if self.pos >= self.buf.len() {
                return Err(self.cut());
            }
            let key = self.varint()?;
            let (inner, wire_type) = ((key >> 3) as u32, key & 7);
            match wire_type {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8)?;
                }
                2 => {
                    let len = usize::try_from(self.varint()?).map_err(|_| self.cut())?;
                    self.take(len)?;
                }
                3 => self.skip_group(inner, depth + 1)?,
                4 if inner == number => return Ok(()),
                5 => {
                    self.take(4)?;
                }
                _ => {
                    return Err(WireError::new(format!(
                        "{}: unexpected end group tag",
                        self.message
                    )));
                }
            }
        }
    }
}

/// The bytes of every occurrence of a message field, as one message: protobuf merges repeated
/// occurrences of an embedded message, which is what decoding their concatenation does.
#[derive(Default)]
pub(crate) struct Occurrences<'a> {
    first: Option<&'a [u8]>,
    joined: Vec<u8>,
}

impl<'a> Occurrences<'a> {
    pub(crate) fn push(&mut self, bytes: &'a [u8]) {
        match self.first {
            None => self.first = Some(bytes),
            Some(first) => {
                if self.joined.is_empty() {
                    self.joined.extend_from_slice(first);
                }
                self.joined.extend_from_slice(bytes);
            }
        }
    }

    /// The field's bytes when it occurred exactly once (or only its first occurrence had
    /// bytes), borrowed from the input.
    pub(crate) fn single(&self) -> Option<&'a [u8]> {
        self.first.filter(|_| self.joined.is_empty())
    }

    /// The merged message bytes; `None` when the field never occurred.
    pub(crate) fn get(&self) -> Option<&[u8]> {
        if !self.joined.is_empty() {
            Some(&self.joined)
        } else {
            self.first
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn reads_what_prost_writes() {
        use opentelemetry_proto::tonic::trace::v1::Span;
        let span = Span {
            trace_id: vec![1; 16],
            name: "n".into(),
            kind: -3,
            start_time_unix_nano: u64::MAX,
            flags: 7,
            dropped_attributes_count: 300,
            ..Default::default()
        };
        let bytes = span.encode_to_vec();
        let mut r = Reader::new(&bytes, "Span");
        let mut seen = Vec::new();
        while let Some((n, v)) = r.next_field().unwrap() {
            seen.push(n);
            match n {
                1 => assert_eq!(v.bytes("trace_id").unwrap(), &[1; 16]),
                5 => assert_eq!(v.str("name").unwrap(), "n"),
                6 => assert_eq!(v.int32("kind").unwrap(), -3),
                7 => assert_eq!(v.fixed64("start").unwrap(), u64::MAX),
                10 => assert_eq!(v.uint32("dropped").unwrap(), 300),
                16 => assert_eq!(v.fixed32("flags").unwrap(), 7),
                _ => panic!("unexpected field {n}"),
            }
        }
        assert_eq!(seen, vec![1, 5, 6, 7, 10, 16]);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &[0x0a, 0x05, 1, 2][..], // length past the end
            &[0x08][..],             // cut varint
            &[0x0e, 0][..],          // wire type 6
            &[0x00, 0][..],          // field number 0
            &[0x0b, 0x08, 1][..],    // group without its end
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ][..], // 11-byte varint
        ] {
            let mut r = Reader::new(bad, "M");
            let mut result = Ok(Some((0, Value::Varint(0))));
            while let Ok(Some(_)) = result {
                result = r.next_field();
            }
            assert!(result.is_err(), "{bad:?} should be refused");
        }
        // A wrong wire type for a known field is the caller's error, named.
        let err = Value::Varint(1).str("name").unwrap_err();
        assert!(err.what.contains("name"), "{err}");
        assert!(Value::Bytes(&[0xff]).str("name").is_err());
    }

    #[test]
    fn groups_are_skipped_and_occurrences_merge() {
        // field 2 group { field 1 varint 5 } end, then field 3 varint 9
        let bytes = [0x13, 0x08, 0x05, 0x14, 0x18, 0x09];
        let mut r = Reader::new(&bytes, "M");
        let (n, v) = r.next_field().unwrap().unwrap();
        assert_eq!((n, v.varint("f").unwrap()), (3, 9));
        assert!(r.next_field().unwrap().is_none());

        let mut o = Occurrences::default();
        assert!(o.get().is_none());
        o.push(b"ab");
        assert_eq!(o.get(), Some(&b"ab"[..]));
        o.push(b"cd");
        assert_eq!(o.get(), Some(&b"abcd"[..]));
    }
}
