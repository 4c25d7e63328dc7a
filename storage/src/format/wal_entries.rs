//! The WAL entries a file's rows came from, in its key-value metadata.
//!
//! A collector's file names its own entries under [`KEY`]; a compactor output carries the
//! entries of every input under [`KEY`]`.<collector>`, so that a collector that restarts
//! after its files were compacted still finds which of its WAL entries are stored. Entries
//! are written as sorted ranges: `1-5,9,12-14`.

use std::collections::{BTreeMap, HashSet};

use parquet::file::metadata::KeyValue;

use crate::layout;

/// Key-value metadata key of a file's WAL entries.
pub const KEY: &str = "strata.wal_entries";

/// Encodes entry ids as sorted ranges.
pub fn encode(entries: &[u64]) -> String {
    let mut ids = entries.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// Decodes [`encode`]'s output; `None` if it is malformed.
pub fn decode(s: &str) -> Option<HashSet<u64>> {
    let mut out = HashSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 40 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

/// The key under which a compactor output carries `collector`'s entries.
pub fn key_of(collector: &str) -> String {
    format!("{KEY}.{collector}")
}

/// The entries of `collector` that a file's metadata (`kv`, named `file_name`) records.
pub fn of_collector(file_name: &str, kv: &[KeyValue], collector: &str) -> Option<HashSet<u64>> {
    let key = if layout::is_file_of(file_name, collector) {
        KEY.to_string()
    } else {
        key_of(collector)
    };
    kv.iter()
        .find(|k| k.key == key)
        .and_then(|k| k.value.as_deref())
        .and_then(decode)
}

/// Merges the entries recorded by files into one [`key_of`] entry per collector.
pub fn carry(files: &[(&str, &[KeyValue])]) -> Vec<KeyValue> {
    let mut by_collector: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (name, kv) in files {
        for k in kv.iter() {
            let collector = if k.key == KEY {
                match name.rsplit_once('-') {
                    Some((id, _)) if !layout::is_compacted(name) => id.to_string(),
                    _ => continue,
                }
            } else if let Some(id) = k.key.strip_prefix(KEY).and_then(|r| r.strip_prefix('.')) {
                id.to_string()
            } else {
                continue;
            };
            if let Some(ids) = k.value.as_deref().and_then(decode) {
                by_collector.entry(collector).or_default().extend(ids);
            }
        }
    }
    by_collector
        .into_iter()
        .map(|(c, ids)| KeyValue::new(key_of(&c), encode(&ids)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip() {
        let ids = [9u64, 1, 2, 3, 5, 12, 13, 14, 3];
        let s = encode(&ids);
        assert_eq!(s, "1-3,5,9,12-14");
        let back = decode(&s).unwrap();
        assert_eq!(back, ids.iter().copied().collect());
        assert_eq!(decode(""), Some(HashSet::new()));
        assert!(decode("3-1").is_none());
        assert!(decode("x").is_none());
        assert!(decode(&format!("0-{}", u64::MAX)).is_none());
    }
}

#[cfg(test)]
mod carry_tests {
    use super::*;

    #[test]
    fn entries_are_carried_per_collector() {
        let a = [KeyValue::new(KEY.into(), "1-3".to_string())];
        let b = [KeyValue::new(KEY.into(), "9".to_string())];
        let c = [
            KeyValue::new(key_of("c1"), "4-5".to_string()),
            KeyValue::new(key_of("c2"), "1".to_string()),
        ];
        let out = carry(&[
            ("c1-01a.parquet", &a[..]),
            ("c2-01b.parquet", &b[..]),
            ("compacted.01c.parquet", &c[..]),
        ]);
        assert_eq!(
            out,
            vec![
                KeyValue::new(key_of("c1"), "1-5".to_string()),
                KeyValue::new(key_of("c2"), "1,9".to_string()),
            ]
        );
        let ids = of_collector("compacted.x.parquet", &out, "c1").unwrap();
        assert_eq!(ids.len(), 5);
        assert!(
            of_collector("c1-01a.parquet", &a, "c1")
                .unwrap()
                .contains(&2)
        );
        assert!(of_collector("c1-01a.parquet", &a, "c2").is_none());
    }
}
