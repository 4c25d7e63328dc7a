//! Consistent hashing over the collector set, and the routing key of every row
//! ([`row_hashes`]).
//!
//! Each member owns `VNODES` points on a 64-bit ring (xxh3 of `member#i`); a key goes to the
//! owner of the first point at or after its hash. Adding or removing one member only moves the
//! keys of the arcs it gains or loses, so a trace keeps landing on one collector while the set
//! is stable, and most keys stay put when it changes.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use strata_schema::{Signal, columns};
use xxhash_rust::xxh3::xxh3_64;

/// Points per member: enough that three members each get close to a third of the keys.
const VNODES: usize = 256;

/// An immutable ring; build a new one when the member set changes.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    members: Vec<String>,
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// Builds the ring of `members` (order and duplicates do not matter).
    pub fn new(mut members: Vec<String>) -> Self {
        members.sort();
        members.dedup();
        let mut points = Vec::with_capacity(members.len() * VNODES);
        for (i, m) in members.iter().enumerate() {
            for v in 0..VNODES {
                points.push((xxh3_64(format!("{m}#{v}").as_bytes()), i as u32));
            }
        }
        points.sort_unstable();
        Self { members, points }
    }

    pub fn members(&self) -> &[String] {
        &self.members
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Index into [`Ring::members`] of the owner of `hash`; `None` on an empty ring.
    pub fn owner(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|&(p, _)| p < hash);
        let (_, m) = self.points[i % self.points.len()];
        Some(m as usize)
    }

    /// Index of the owner of `hash`, skipping members whose index `skip` is true of: the next
    /// member clockwise on the ring takes over each key of a skipped one, and no other key
    /// moves. When every member is skipped, the plain owner.
    pub fn owner_skipping(&self, hash: u64, skip: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|&(p, _)| p < hash);
        for k in 0..self.points.len() {
            let (_, m) = self.points[(start + k) % self.points.len()];
            if !skip(m as usize) {
                return Some(m as usize);
            }
        }
        self.owner(hash)
    }

    pub fn contains(&self, member: &str) -> bool {
        self.members
            .binary_search_by(|m| m.as_str().cmp(member))
            .is_ok()
    }

    /// Owner of a routing key.
    pub fn owner_of(&self, key: &[u8]) -> Option<usize> {
        self.owner(xxh3_64(key))
    }
}

/// The routing key hash of every row: spans by trace id, logs by service, metric points by
/// series (already a hash).
///
/// Errs with the name of the key column when the batch lacks it.
pub fn row_hashes(signal: Signal, batch: &RecordBatch) -> Result<Vec<u64>, &'static str> {
    match signal {
        Signal::Traces | Signal::Logs => {
            let name = if signal == Signal::Traces {
                columns::TRACE_ID
            } else {
                columns::SERVICE_NAME
            };
            let col = batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or(name)?;
            Ok((0..col.len())
                .map(|i| {
                    if col.is_null(i) {
                        xxh3_64(b"")
                    } else {
                        xxh3_64(col.value(i).as_bytes())
                    }
                })
                .collect())
        }
        Signal::Metrics => {
            let col = batch
                .column_by_name(columns::SERIES_ID)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or(columns::SERIES_ID)?;
            Ok(col.iter().map(|v| v.unwrap_or(0)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("127.0.0.1:{}", 4320 + i)).collect()
    }

    #[test]
    fn spreads_keys_evenly() {
        let ring = Ring::new(members(3));
        let mut counts = [0usize; 3];
        for k in 0..30_000u32 {
            counts[ring.owner_of(&k.to_le_bytes()).unwrap()] += 1;
        }
        for c in counts {
            assert!((7_000..13_000).contains(&c), "uneven spread {counts:?}");
        }
    }

    #[test]
    fn adding_a_member_moves_only_its_share() {
        let before = Ring::new(members(3));
        let after = Ring::new(members(4));
        let mut moved = 0;
        for k in 0..20_000u32 {
            let key = k.to_le_bytes();
            let a = &before.members()[before.owner_of(&key).unwrap()];
            let b = &after.members()[after.owner_of(&key).unwrap()];
            if a != b {
                assert_eq!(b, &after.members()[3], "a key moved between old members");
                moved += 1;
            }
        }
        assert!((2_500..7_500).contains(&moved), "moved {moved}");
    }

    #[test]
    fn order_of_members_does_not_matter() {
        let mut m = members(5);
        let a = Ring::new(m.clone());
        m.reverse();
        let b = Ring::new(m);
        for k in 0..1000u32 {
            let key = k.to_be_bytes();
            assert_eq!(
                a.members()[a.owner_of(&key).unwrap()],
                b.members()[b.owner_of(&key).unwrap()]
            );
        }
    }

    #[test]
    fn skipping_a_member_moves_only_its_keys() {
        let ring = Ring::new(members(3));
        let down = ring.members()[1].clone();
        let mut moved_to = std::collections::HashSet::new();
        for k in 0..20_000u32 {
            let h = xxh3_64(&k.to_le_bytes());
            let before = ring.owner(h).unwrap();
            let after = ring
                .owner_skipping(h, |m| ring.members()[m] == down)
                .unwrap();
            if ring.members()[before] == down {
                assert_ne!(ring.members()[after], down);
                moved_to.insert(after);
            } else {
                assert_eq!(before, after, "a key of a healthy member moved");
            }
        }
        assert_eq!(moved_to.len(), 2, "its keys spread over both other members");
        assert_eq!(ring.owner_skipping(5, |_| true), ring.owner(5));
        assert!(ring.contains(&down) && !ring.contains("x:1"));
    }

    #[test]
    fn empty_ring_has_no_owner() {
        assert_eq!(Ring::new(vec![]).owner_of(b"x"), None);
    }
}
