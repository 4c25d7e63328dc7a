//! Writes every seed of every harness, the generated ones (made with the project's encoders,
//! so they follow the formats as they change) and the files kept in `fuzz/corpus/<target>/`,
//! into `<DIR>/<target>/seed-<n>`.
//!
//!     cargo run -p strata-fuzz --bin strata-fuzz-seeds -- DIR      # write the seeds
//!     cargo run -p strata-fuzz --bin strata-fuzz-seeds -- --list   # print the targets' names

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--list") => {
            for t in strata_fuzz::TARGETS {
                println!("{}", t.name);
            }
            ExitCode::SUCCESS
        }
        Some(dir) => match strata_fuzz::seeds::write_all(std::path::Path::new(dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("writing seeds into {dir}: {e}");
                ExitCode::FAILURE
            }
        },
        None => {
            eprintln!("usage: strata-fuzz-seeds DIR | --list");
            ExitCode::from(2)
        }
    }
}
