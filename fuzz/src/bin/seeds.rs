//! Writes every seed of every harness, the generated ones (made with the project's encoders,
//! so they follow the formats as they change) and the files kept in `fuzz/corpus/<target>/`,
//! into `<DIR>/<target>/seed-<n>`, for fuzzers other than the AFL++ runner.
//!
//!     cargo run -p strata-fuzz --bin strata-fuzz-seeds -- --seeds DIR   # write the seeds
//!     cargo run -p strata-fuzz --bin strata-fuzz-seeds -- --list        # the targets' names

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    strata_fuzz::tool(&args).unwrap_or_else(|| {
        eprintln!("usage: strata-fuzz-seeds --seeds DIR | --list");
        std::process::ExitCode::from(2)
    })
}
