//! The AFL++ runner: `STRATA_FUZZ_TARGET=<name>` picks the harness, AFL++ feeds it.
//! Built and run by `scripts/fuzz` (`cargo afl build --release -p strata-fuzz --features afl`).

fn main() {
    let name = std::env::var("STRATA_FUZZ_TARGET").unwrap_or_default();
    let Some(target) = strata_fuzz::target(&name) else {
        let names: Vec<&str> = strata_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("STRATA_FUZZ_TARGET must be one of: {}", names.join(", "));
        std::process::exit(2);
    };
    let run = target.run;
    afl::fuzz!(|data: &[u8]| {
        run(data);
    });
}
