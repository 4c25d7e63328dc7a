//! The AFL++ runner: `STRATA_FUZZ_TARGET=<name>` picks the harness, AFL++ feeds it.
//! Built and run by `scripts/fuzz` (`cargo afl build --release -p strata-fuzz --features afl`),
//! which also asks it for the targets' names (`--list`) and their seeds (`--seeds DIR`), so
//! that one instrumented build serves the whole run.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(done) = strata_fuzz::tool(&args) {
        return done;
    }
    let name = std::env::var("STRATA_FUZZ_TARGET").unwrap_or_default();
    let Some(target) = strata_fuzz::target(&name) else {
        let names: Vec<&str> = strata_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("STRATA_FUZZ_TARGET must be one of: {}", names.join(", "));
        return ExitCode::from(2);
    };
    let run = target.run;
    // `fuzz_nohook!`: a panic the decoder catches itself (the guarded IPC reader turns
    // arrow's panics into errors) is no crash; one that escapes the harness still aborts.
    afl::fuzz_nohook!(|data: &[u8]| {
        run(data);
    });
    ExitCode::SUCCESS
}
