//! `strata`: one binary, four roles.
//!
//! - `strata standalone`: agent + collector + query + compactor in one process, local
//!   directory storage.
//! - `strata agent | collector | query | compactor`: one role each, for a cluster.
//! - `strata compact --once`: one compaction, retention and garbage-collection pass.
//! - `strata hash-secret`: the hash an auth file stores for a token or password.
//!
//! Configuration is layered: built-in defaults, then the TOML file given with `--config`, then
//! `STRATA_<ROLE>__<FIELD>` environment variables, then command-line flags.

mod cli;
mod config;

use clap::{CommandFactory, Parser};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

/// Counts what each query allocates against its memory limit (`strata_query::budget`); other
/// allocations go to the system allocator as they would without it.
#[cfg(feature = "count-query-memory")]
#[global_allocator]
static ALLOC: strata_query::budget::CountingAlloc = strata_query::budget::CountingAlloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command.clone() else {
        // `strata` alone: help on stdout, success.
        let _ = Cli::command().print_help();
        println!();
        return std::process::ExitCode::SUCCESS;
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strata: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli, command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("strata: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli, command: Command) -> anyhow::Result<()> {
    let config = config::load(cli.config.as_deref())?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match command {
        Command::Agent(args) => {
            let cfg = args.apply(config.agent);
            strata_agent::run(cfg, shutdown).await?;
        }
        Command::Collector(args) => {
            let cfg = args.apply(config.collector);
            strata_collector::run(cfg, shutdown).await?;
        }
        Command::Query(args) => {
            let cfg = args.apply(config.query);
            strata_query::run(cfg, shutdown).await?;
        }
        Command::Compactor(args) => {
            let cfg = args.apply(config.compactor);
            strata_compactor::run(cfg, shutdown).await?;
        }
        Command::Compact(args) => {
            let json = args.json;
            let cfg = args.apply(config.compactor)?;
            let report = strata_compactor::run_once(&cfg).await?;
            print_report(&report, json);
            if !report.errors.is_empty() {
                anyhow::bail!("the pass had {} error(s)", report.errors.len());
            }
        }
        Command::HashSecret => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let secret = line.strip_suffix('\n').unwrap_or(&line);
            let secret = secret.strip_suffix('\r').unwrap_or(secret);
            if secret.is_empty() {
                anyhow::bail!("no secret on standard input");
            }
            println!("{}", strata_server::auth::hash_text(secret));
        }
        Command::Standalone(args) => {
            let (agent, collector, query, compactor) = args.apply(config);
            standalone(agent, collector, query, compactor, shutdown).await?;
        }
    }
    Ok(())
}

/// What `strata compact --once` prints.
fn print_report(r: &strata_compactor::Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    println!(
        "compacted {} partitions in {} merges: {} files ({} bytes) -> {} files ({} bytes); {} rows in, {} rows out, {} duplicates dropped",
        r.partitions,
        r.merges,
        r.files_in,
        r.bytes_in,
        r.files_out,
        r.bytes_out,
        r.rows_in,
        r.rows_out,
        r.duplicates
    );
    println!(
        "retention: {} partitions, {} files made invisible",
        r.retention_partitions, r.retention_files
    );
    println!(
        "deleted: {} compacted inputs, {} orphaned outputs, {} commit records; {} conflicts, {} files skipped, {} partitions still pending",
        r.deleted_inputs,
        r.deleted_orphans,
        r.deleted_records,
        r.conflicts,
        r.skipped_files,
        r.pending_partitions
    );
    for e in &r.errors {
        println!("error: {e}");
    }
}

/// Runs the four roles in one process. Shutdown is ordered: the agent stops accepting and
/// ships what it holds to the collector, then the collector writes its buffers, then the query
/// service and the compactor stop. A role that fails stops the others.
async fn standalone(
    agent: strata_agent::AgentConfig,
    collector: strata_collector::CollectorConfig,
    query: strata_query::QueryConfig,
    compactor: strata_compactor::CompactorConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let collector_stop = CancellationToken::new();
    let query_stop = CancellationToken::new();
    let compactor_task = tokio::spawn({
        let (stop, all) = (query_stop.clone(), shutdown.clone());
        async move {
            let r = strata_compactor::run(compactor, stop).await;
            all.cancel();
            r
        }
    });
    let collector_task = tokio::spawn({
        let (stop, all) = (collector_stop.clone(), shutdown.clone());
        async move {
            let r = strata_collector::run(collector, stop).await;
            all.cancel();
            r
        }
    });
    let query_task = tokio::spawn({
        let (stop, all) = (query_stop.clone(), shutdown.clone());
        async move {
            let r = strata_query::run(query, stop).await;
            all.cancel();
            r
        }
    });
    let agent_result = strata_agent::run(agent, shutdown.clone()).await;
    shutdown.cancel();
    collector_stop.cancel();
    let collector_result = collector_task.await?;
    query_stop.cancel();
    let query_result = query_task.await?;
    let compactor_result = compactor_task.await?;
    agent_result?;
    collector_result?;
    query_result?;
    compactor_result?;
    Ok(())
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    info!("shutting down");
    shutdown.cancel();
}
