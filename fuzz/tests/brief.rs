//! Every harness over its seed corpus and a bounded number of deterministic mutations of it
//! (`STRATA_FUZZ_ITERATIONS`, 400 by default): what the test suite runs of the fuzzers. A
//! panic fails the test with the target, the iteration and the input in hex, and the input is
//! written under `target/fuzz-failures/` to be added to the corpus once fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use strata_fuzz::mutate::{Rng, mutant};
use strata_fuzz::{TARGETS, seeds};

fn iterations() -> usize {
    std::env::var("STRATA_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

#[test]
fn every_harness_survives_its_corpus_and_mutations_of_it() {
    let n = iterations();
    let mut failures = Vec::new();
    for target in TARGETS {
        let seeds = seeds::all(target.name);
        assert!(!seeds.is_empty(), "{}: no seeds", target.name);
        let started = Instant::now();
        let mut rng = Rng::new(0x5eed ^ target.name.len() as u64);
        let inputs = seeds
            .iter()
            .cloned()
            .map(|s| (None, s))
            .chain((0..n).map(|i| (Some(i), mutant(&mut rng, &seeds, 1 << 16))));
        for (iteration, input) in inputs {
            // Bounded per target: a slow decoder is a finding too, not a stuck suite.
            if started.elapsed() > Duration::from_secs(60) {
                failures.push(format!("{}: over 60 s", target.name));
                break;
            }
            if catch_unwind(AssertUnwindSafe(|| (target.run)(&input))).is_err() {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/fuzz-failures");
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!("{}-{:?}", target.name, iteration));
                let _ = std::fs::write(&file, &input);
                let hex: String = input.iter().take(256).map(|b| format!("{b:02x}")).collect();
                failures.push(format!(
                    "{} panicked on {} (iteration {iteration:?}, {} bytes): {hex}",
                    target.name,
                    file.display(),
                    input.len()
                ));
                break;
            }
        }
        eprintln!(
            "{}: {} seeds, {n} mutants in {:?}",
            target.name,
            seeds.len(),
            started.elapsed()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
