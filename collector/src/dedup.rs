//! Idempotency of shipped batches: every batch carries (agent id, sequence); a batch whose key
//! was already stored is acknowledged again without storing it twice.
//!
//! Keys live in memory per agent and id space, the most recent `WINDOW` of each. Agents number
//! batches from their disk log with small ids and batches kept only in memory (memory buffer,
//! tailed files) with ids whose top bit is set; each space has its own window, so a stream of
//! one never pushes the keys of the other out. They survive restarts
//! twice over: keys of batches still in the WAL come back with WAL replay, and the keys of
//! batches already in Parquet are checkpointed to `<data_dir>/dedup.state` before their WAL
//! segments are deleted.
//!
//! Checkpoint format: `b"STRDDP" version:u16-LE crc:u32-LE body`, body = repeated
//! `agent_len:u16 agent seq_count:u32 seq:u64*` (all LE); written tmp -> fsync -> rename. A
//! checkpoint that fails its checksum is ignored (counted by the caller), never fatal.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Keys remembered per agent: far more than one agent has in flight or in retry.
pub const WINDOW: usize = 1 << 16;
const MAGIC: &[u8; 6] = b"STRDDP";
const VERSION: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Being written to the WAL right now.
    Pending,
    Stored,
}

/// What to do with an incoming batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// New: store it, then call [`Dedup::stored`] (or [`Dedup::release`] on failure).
    New,
    /// Stored before: acknowledge without storing.
    Duplicate,
    /// The same batch is being stored by another request right now: ask to retry.
    InFlight,
}

#[derive(Default)]
pub struct Dedup {
    agents: Mutex<HashMap<String, BTreeMap<u64, State>>>,
}

/// The key of the window `seq` belongs to: the agent id, marked for the top-bit id space.
fn window(agent: &str, seq: u64) -> String {
    if seq >> 63 == 1 {
        format!("{agent}\u{1}")
    } else {
        agent.to_string()
    }
}

impl Dedup {
    pub fn claim(&self, agent: &str, seq: u64) -> Claim {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        let keys = agents.entry(window(agent, seq)).or_default();
        match keys.get(&seq) {
            Some(State::Stored) => Claim::Duplicate,
            Some(State::Pending) => Claim::InFlight,
            None => {
                // A key older than the window is accepted again: storing a very late retry
                // twice is better than dropping a batch that was never stored.
                keys.insert(seq, State::Pending);
                Claim::New
            }
        }
    }

    pub fn stored(&self, agent: &str, seq: u64) {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        let keys = agents.entry(window(agent, seq)).or_default();
        keys.insert(seq, State::Stored);
        while keys.len() > WINDOW {
            keys.pop_first();
        }
    }

    pub fn release(&self, agent: &str, seq: u64) {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(keys) = agents.get_mut(&window(agent, seq))
            && keys.get(&seq) == Some(&State::Pending)
        {
            keys.remove(&seq);
        }
    }

    fn encode(&self) -> Vec<u8> {
        let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        let mut body = Vec::new();
        for (agent, keys) in agents.iter() {
            let stored: Vec<u64> = keys
                .iter()
                .filter(|(_, s)| **s == State::Stored)
                .map(|(k, _)| *k)
                .collect();
            let name = &agent.as_bytes()[..agent.len().min(u16::MAX as usize)];
            body.extend_from_slice(&(name.len() as u16).to_le_bytes());
            body.extend_from_slice(name);
            body.extend_from_slice(&(stored.len() as u32).to_le_bytes());
            for k in stored {
                body.extend_from_slice(&k.to_le_bytes());
            }
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Writes the stored keys to `path` atomically.
    pub fn checkpoint(&self, path: &Path) -> io::Result<()> {
        let bytes = self.encode();
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Loads a checkpoint; `Ok(None)` when there is none, `Err` when it is unreadable
    /// (the caller counts it and starts with an empty window).
    pub fn load(path: &Path) -> io::Result<Option<Dedup>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        if bytes.len() < 12 || &bytes[..6] != MAGIC {
            return Err(bad("not a dedup checkpoint"));
        }
        if u16::from_le_bytes([bytes[6], bytes[7]]) != VERSION {
            return Err(bad("unsupported dedup checkpoint version"));
        }
        let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let body = &bytes[12..];
        if crc32fast::hash(body) != crc {
            return Err(bad("dedup checkpoint checksum mismatch"));
        }
        let mut agents = HashMap::new();
        let mut pos = 0;
        let take = |pos: &mut usize, n: usize| -> io::Result<&[u8]> {
            let s = body
                .get(*pos..*pos + n)
                .ok_or_else(|| bad("truncated dedup checkpoint"))?;
            *pos += n;
            Ok(s)
        };
        while pos < body.len() {
            let n =
                u16::from_le_bytes(take(&mut pos, 2)?.try_into().map_err(|_| bad("len"))?) as usize;
            let agent = String::from_utf8_lossy(take(&mut pos, n)?).into_owned();
            let count = u32::from_le_bytes(take(&mut pos, 4)?.try_into().map_err(|_| bad("count"))?)
                as usize;
            let mut keys = BTreeMap::new();
            for _ in 0..count {
                let k = u64::from_le_bytes(take(&mut pos, 8)?.try_into().map_err(|_| bad("seq"))?);
                keys.insert(k, State::Stored);
            }
            agents.insert(agent, keys);
        }
        Ok(Some(Dedup {
            agents: Mutex::new(agents),
        }))
    }
}

/// Where a collector keeps its checkpoint.
pub fn checkpoint_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dedup.state")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_the_batch_lifecycle() {
        let d = Dedup::default();
        assert_eq!(d.claim("a", 1), Claim::New);
        assert_eq!(d.claim("a", 1), Claim::InFlight);
        d.release("a", 1);
        assert_eq!(d.claim("a", 1), Claim::New);
        d.stored("a", 1);
        assert_eq!(d.claim("a", 1), Claim::Duplicate);
        assert_eq!(d.claim("b", 1), Claim::New);
    }

    #[test]
    fn checkpoint_round_trips_stored_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = checkpoint_path(dir.path());
        let d = Dedup::default();
        d.claim("a", 7);
        d.stored("a", 7);
        d.claim("a", 8); // pending: not checkpointed
        d.checkpoint(&path).unwrap();
        let loaded = Dedup::load(&path).unwrap().unwrap();
        assert_eq!(loaded.claim("a", 7), Claim::Duplicate);
        assert_eq!(loaded.claim("a", 8), Claim::New);
        // A damaged checkpoint is an error, not a panic.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(Dedup::load(&path).is_err());
        assert!(Dedup::load(&dir.path().join("none")).unwrap().is_none());
    }

    #[test]
    fn window_is_bounded() {
        let d = Dedup::default();
        for s in 0..(WINDOW as u64 + 10) {
            assert_eq!(d.claim("a", s), Claim::New);
            d.stored("a", s);
        }
        assert_eq!(d.agents.lock().unwrap()["a"].len(), WINDOW);
        assert_eq!(d.claim("a", WINDOW as u64 + 9), Claim::Duplicate);
    }

    #[test]
    fn memory_ids_have_a_window_of_their_own() {
        let d = Dedup::default();
        d.claim("a", 5);
        d.stored("a", 5);
        let memory = 1u64 << 63 | 1_700_000_000_000_000_000;
        for s in memory..memory + WINDOW as u64 + 10 {
            d.claim("a", s);
            d.stored("a", s);
        }
        // The disk-log key is still remembered; the memory window is bounded on its own.
        assert_eq!(d.claim("a", 5), Claim::Duplicate);
        assert_eq!(d.claim("a", memory + 20), Claim::Duplicate);
        assert_eq!(d.agents.lock().unwrap()["a\u{1}"].len(), WINDOW);
        let dir = tempfile::tempdir().unwrap();
        let path = checkpoint_path(dir.path());
        d.checkpoint(&path).unwrap();
        let back = Dedup::load(&path).unwrap().unwrap();
        assert_eq!(back.claim("a", 5), Claim::Duplicate);
        assert_eq!(back.claim("a", memory + 20), Claim::Duplicate);
    }
}
