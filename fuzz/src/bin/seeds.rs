//! Writes the generated seeds of every harness into its corpus directory
//! (`fuzz/corpus/<target>/gen-<n>`), so the corpus kept in the repository follows the encoders.
//!
//!     cargo run -p strata-fuzz --bin strata-fuzz-seeds            # write the seeds
//!     cargo run -p strata-fuzz --bin strata-fuzz-seeds -- --list  # print the targets' names

fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--list") {
        for t in strata_fuzz::TARGETS {
            println!("{}", t.name);
        }
        return Ok(());
    }
    for t in strata_fuzz::TARGETS {
        let dir = strata_fuzz::corpus_dir(t.name);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in strata_fuzz::seeds::generated(t.name).iter().enumerate() {
            std::fs::write(dir.join(format!("gen-{i}")), seed)?;
        }
    }
    Ok(())
}
