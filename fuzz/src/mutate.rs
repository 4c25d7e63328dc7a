//! Deterministic mutations for the test suite's brief runs: bit flips, interesting bytes,
//! cuts, repeats and splices of seeds, from a seeded xorshift generator, so a failure is
//! reproducible from its iteration number alone.

/// A xorshift64* generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'}', b'\n', b'\\', b'=', b' ',
];

/// One mutant of `seeds[..]`, at most `max_len` bytes.
pub fn mutant(rng: &mut Rng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut data = seeds
        .get(rng.below(seeds.len()))
        .cloned()
        .unwrap_or_default();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => data.truncate(rng.below(len)),
            3 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (a, b) = (a.min(b), a.max(b));
                let chunk = data[a..b].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            4 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, bytes);
            }
            5 if len > 1 => {
                let a = rng.below(len);
                let b = a + rng.below(len - a);
                data.drain(a..b);
            }
            6 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            _ if len >= 8 => {
                // A little-endian length or count field set to something extreme.
                let i = rng.below(len - 7);
                let v: u64 = [0, u32::MAX as u64, u64::MAX, 1 << 31][rng.below(4)];
                data[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    data.truncate(max_len);
    data
}
