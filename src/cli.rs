//! Command-line flags: the settings a quick cluster needs, overriding the configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use strata_agent::AgentConfig;
use strata_collector::CollectorConfig;
use strata_compactor::{CompactorConfig, HumanDuration};
use strata_query::QueryConfig;
use strata_server::auth::AuthConfig;
use strata_server::limits::LimitsConfig;
use strata_server::tls::ServerTlsConfig;

use crate::config::Config;

/// Strata: a distributed observability pipeline for logs, metrics and traces.
#[derive(Debug, Parser)]
#[command(name = "strata", version)]
pub struct Cli {
    /// TOML configuration file (see deploy/strata.example.toml).
    #[arg(long, global = true, env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Agent, collector and query service in one process, on local directory storage.
    Standalone(StandaloneArgs),
    /// The edge agent: OTLP in, Arrow Flight out to the collectors.
    Agent(AgentArgs),
    /// A collector: Flight (and optionally OTLP) in, Parquet out.
    Collector(CollectorArgs),
    /// The query service: SQL and trace lookups over the Parquet files.
    Query(QueryArgs),
    /// The compactor: merges closed hours into large files, applies retention, deletes garbage.
    Compactor(CompactorArgs),
    /// One compaction, retention and garbage-collection pass over a storage, then exit.
    Compact(CompactArgs),
    /// Prints the `sha256:<hex>` an auth file stores for a token or password read from
    /// standard input (one line; the line break is not part of it).
    HashSecret,
}

/// TLS and auth of a role's listeners, as flags.
#[derive(Debug, Clone, Default, Args)]
pub struct SecurityArgs {
    /// PEM certificate chain: every listener of the role speaks TLS.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate signed by one (mTLS).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Credentials file (tokens, users, their tenants and scopes): every request needs one.
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Per-tenant limits file (ingest rates, series, value length; query slots, time, memory,
    /// answer size), reloaded on change.
    #[arg(long, value_name = "FILE")]
    pub limits_file: Option<PathBuf>,
}

impl SecurityArgs {
    pub fn apply(&self, tls: &mut ServerTlsConfig, auth: &mut AuthConfig) {
        if self.tls_cert.is_some() {
            tls.cert = self.tls_cert.clone();
            tls.key = self.tls_key.clone();
        }
        if self.tls_client_ca.is_some() {
            tls.client_ca = self.tls_client_ca.clone();
        }
        if self.auth_file.is_some() {
            auth.file = self.auth_file.clone();
        }
    }

    pub fn apply_limits(&self, limits: &mut LimitsConfig) {
        if self.limits_file.is_some() {
            limits.file = self.limits_file.clone();
        }
    }
}

/// How an agent reaches collectors that speak TLS or require a token, as flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ShipArgs {
    /// PEM CA certificates the collectors' certificates must chain to (TLS to collectors).
    #[arg(long, value_name = "PEM")]
    pub ship_ca: Option<PathBuf>,
    /// PEM client certificate for collectors that require one.
    #[arg(long, value_name = "PEM", requires = "ship_key")]
    pub ship_cert: Option<PathBuf>,
    /// PEM private key of --ship-cert.
    #[arg(long, value_name = "PEM", requires = "ship_cert")]
    pub ship_key: Option<PathBuf>,
    /// File holding the bearer token sent to collectors.
    #[arg(long, value_name = "FILE")]
    pub ship_token_file: Option<PathBuf>,
}

impl ShipArgs {
    pub fn apply(&self, c: &mut AgentConfig) {
        set(&mut c.ship_tls.ca, self.ship_ca.clone().map(Some));
        set(&mut c.ship_tls.cert, self.ship_cert.clone().map(Some));
        set(&mut c.ship_tls.key, self.ship_key.clone().map(Some));
        set(
            &mut c.ship_token_file,
            self.ship_token_file.clone().map(Some),
        );
    }
}

#[derive(Debug, Clone, Args)]
pub struct CompactorArgs {
    /// Parquet storage: a path, file:// or s3:// URL.
    #[arg(long)]
    pub storage: Option<String>,
    /// Local state directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address (/metrics, /ready).
    #[arg(long)]
    pub http: Option<String>,
    #[command(flatten)]
    pub security: SecurityArgs,
}

impl CompactorArgs {
    pub fn apply(self, mut c: CompactorConfig) -> CompactorConfig {
        self.security.apply(&mut c.tls, &mut c.auth);
        set(&mut c.storage, self.storage);
        set(&mut c.data_dir, self.data_dir);
        set(&mut c.http, self.http);
        c
    }
}

#[derive(Debug, Clone, Args)]
pub struct CompactArgs {
    /// Parquet storage: a path, file:// or s3:// URL.
    #[arg(long)]
    pub storage: Option<String>,
    /// Run one pass and exit (the only mode of `compact`; `strata compactor` runs passes on
    /// an interval).
    #[arg(long, required = true)]
    pub once: bool,
    /// Keep every signal of every tenant this long (like `7d`, `36h`), instead of the
    /// configured retention.
    #[arg(long)]
    pub retention: Option<HumanDuration>,
    /// Delete compacted inputs this long after their commit (`0s`: in this pass).
    #[arg(long)]
    pub delete_delay: Option<HumanDuration>,
    /// Compact hours closed this long ago.
    #[arg(long)]
    pub grace: Option<HumanDuration>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl CompactArgs {
    pub fn apply(self, mut c: CompactorConfig) -> anyhow::Result<CompactorConfig> {
        set(&mut c.storage, self.storage);
        if let Some(r) = self.retention {
            c.retention = strata_compactor::config::RetentionConfig::everything(r.0);
        }
        set(&mut c.delete_delay, self.delete_delay);
        set(&mut c.grace, self.grace);
        Ok(c)
    }
}

#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Agent id carried in every batch (default: generated and kept in the data dir).
    #[arg(long)]
    pub id: Option<String>,
    /// Local state directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address.
    #[arg(long)]
    pub otlp_grpc: Option<String>,
    /// OTLP/HTTP listen address.
    #[arg(long)]
    pub otlp_http: Option<String>,
    /// Collectors: HOST:PORT,... (a DNS name may resolve to several).
    #[arg(long, value_delimiter = ',')]
    pub collectors: Option<Vec<String>>,
    /// Tail the files matching GLOB as plain lines (repeatable; one source for all of them).
    #[arg(long = "tail", value_name = "GLOB")]
    pub tail: Vec<String>,
    #[command(flatten)]
    pub receivers: ReceiverArgs,
    #[command(flatten)]
    pub security: SecurityArgs,
    #[command(flatten)]
    pub ship: ShipArgs,
}

/// Listeners of the other ingest protocols, each on a port of its own (the OTLP/HTTP port
/// serves them too: Zipkin at `/api/v2/spans`, Elasticsearch under `/elastic`).
#[derive(Debug, Clone, Args)]
pub struct ReceiverArgs {
    /// Zipkin v2 listen address (POST /api/v2/spans; 9411 by convention). Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub zipkin: Option<String>,
    /// Elasticsearch bulk ingest listen address (the API at the root). Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub elasticsearch: Option<String>,
}

impl ReceiverArgs {
    fn apply(self, c: &mut AgentConfig) {
        if self.zipkin.is_some() {
            c.zipkin = self.zipkin;
        }
        if self.elasticsearch.is_some() {
            c.elasticsearch = self.elasticsearch;
        }
    }
}

impl AgentArgs {
    pub fn apply(self, mut c: AgentConfig) -> AgentConfig {
        self.security.apply(&mut c.tls, &mut c.auth);
        self.security.apply_limits(&mut c.limits);
        self.ship.apply(&mut c);
        self.receivers.apply(&mut c);
        set(&mut c.id, self.id);
        set(&mut c.data_dir, self.data_dir);
        set(&mut c.otlp_grpc, self.otlp_grpc);
        set(&mut c.otlp_http, self.otlp_http);
        set(&mut c.collectors, self.collectors);
        add_tail(&mut c, self.tail);
        c
    }
}

#[derive(Debug, Clone, Args)]
pub struct CollectorArgs {
    /// Collector name, unique in the tier (prefixes its files).
    #[arg(long)]
    pub id: Option<String>,
    /// Local state directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Parquet storage: a path, file:// or s3:// URL.
    #[arg(long)]
    pub storage: Option<String>,
    /// Arrow Flight listen address.
    #[arg(long)]
    pub flight: Option<String>,
    /// HTTP listen address (/metrics, /ready).
    #[arg(long)]
    pub http: Option<String>,
    /// OTLP/gRPC listen address (off unless given).
    #[arg(long)]
    pub otlp_grpc: Option<String>,
    /// OTLP/HTTP listen address (off unless given).
    #[arg(long)]
    pub otlp_http: Option<String>,
    #[command(flatten)]
    pub security: SecurityArgs,
}

impl CollectorArgs {
    pub fn apply(self, mut c: CollectorConfig) -> CollectorConfig {
        self.security.apply(&mut c.tls, &mut c.auth);
        self.security.apply_limits(&mut c.limits);
        set(&mut c.id, self.id);
        set(&mut c.data_dir, self.data_dir);
        set(&mut c.storage, self.storage);
        set(&mut c.flight, self.flight);
        set(&mut c.http, self.http);
        if self.otlp_grpc.is_some() {
            c.otlp_grpc = self.otlp_grpc;
        }
        if self.otlp_http.is_some() {
            c.otlp_http = self.otlp_http;
        }
        c
    }
}

#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// Local state directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Parquet storage: a path, file:// or s3:// URL.
    #[arg(long)]
    pub storage: Option<String>,
    /// HTTP listen address.
    #[arg(long)]
    pub http: Option<String>,
    /// PostgreSQL wire protocol listen address (default :5432, skipped if taken; "" = off).
    #[arg(long)]
    pub pg: Option<String>,
    /// Arrow Flight SQL listen address (default :3201, skipped if taken; "" = off).
    #[arg(long)]
    pub flight_sql: Option<String>,
    #[command(flatten)]
    pub security: SecurityArgs,
}

impl QueryArgs {
    pub fn apply(self, mut c: QueryConfig) -> QueryConfig {
        self.security.apply(&mut c.tls, &mut c.auth);
        self.security.apply_limits(&mut c.limits);
        set(&mut c.data_dir, self.data_dir);
        set(&mut c.storage, self.storage);
        set(&mut c.http, self.http);
        if self.pg.is_some() {
            c.pg = self.pg;
        }
        if self.flight_sql.is_some() {
            c.flight_sql = self.flight_sql;
        }
        c
    }
}

#[derive(Debug, Clone, Args)]
pub struct StandaloneArgs {
    /// Base directory: agent/, collector/, query/ and (unless --storage) storage/ below it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Parquet storage (default: <data-dir>/storage).
    #[arg(long)]
    pub storage: Option<String>,
    /// OTLP/gRPC listen address.
    #[arg(long)]
    pub otlp_grpc: Option<String>,
    /// OTLP/HTTP listen address.
    #[arg(long)]
    pub otlp_http: Option<String>,
    /// Query HTTP listen address.
    #[arg(long)]
    pub http: Option<String>,
    /// PostgreSQL wire protocol listen address (default :5432, skipped if taken; "" = off).
    #[arg(long)]
    pub pg: Option<String>,
    /// Arrow Flight SQL listen address (default :3201, skipped if taken; "" = off).
    #[arg(long)]
    pub flight_sql: Option<String>,
    /// Internal Flight address between agent and collector.
    #[arg(long)]
    pub flight: Option<String>,
    /// Collector HTTP address (/metrics, /ready).
    #[arg(long)]
    pub collector_http: Option<String>,
    /// Tail the files matching GLOB as plain lines (repeatable; one source for all of them).
    #[arg(long = "tail", value_name = "GLOB")]
    pub tail: Vec<String>,
    /// Compactor HTTP address (/metrics, /ready); none unless given.
    #[arg(long)]
    pub compactor_http: Option<String>,
    #[command(flatten)]
    pub receivers: ReceiverArgs,
    /// TLS and auth of every listener the process opens.
    #[command(flatten)]
    pub security: SecurityArgs,
}

impl StandaloneArgs {
    /// One agent feeding one collector over loopback; storage shared with the query service
    /// and the compactor. TLS and auth flags apply to every role. The agent trusts exactly
    /// the collector's certificate on their own hop, and ships with a token made for this
    /// process when auth is on.
    pub fn apply(self, c: Config) -> (AgentConfig, CollectorConfig, QueryConfig, CompactorConfig) {
        let Config {
            mut agent,
            mut collector,
            mut query,
            mut compactor,
        } = c;
        if let Some(base) = &self.data_dir {
            agent.data_dir = base.join("agent");
            collector.data_dir = base.join("collector");
            query.data_dir = base.join("query");
            compactor.data_dir = base.join("compactor");
            collector.storage = base.join("storage").display().to_string();
        }
        set(&mut collector.storage, self.storage);
        query.storage = collector.storage.clone();
        query.s3 = collector.s3.clone();
        compactor.storage = collector.storage.clone();
        compactor.s3 = collector.s3.clone();
        compactor.http = self.compactor_http.unwrap_or_default();
        set(&mut agent.otlp_grpc, self.otlp_grpc);
        set(&mut agent.otlp_http, self.otlp_http);
        set(&mut query.http, self.http);
        if self.pg.is_some() {
            query.pg = self.pg;
        }
        if self.flight_sql.is_some() {
            query.flight_sql = self.flight_sql;
        }
        set(&mut collector.flight, self.flight);
        set(&mut collector.http, self.collector_http);
        agent.collectors = vec![loopback(&collector.flight)];
        add_tail(&mut agent, self.tail);
        self.receivers.apply(&mut agent);
        self.security.apply(&mut agent.tls, &mut agent.auth);
        self.security.apply_limits(&mut agent.limits);
        self.security.apply(&mut collector.tls, &mut collector.auth);
        self.security.apply_limits(&mut collector.limits);
        self.security.apply(&mut query.tls, &mut query.auth);
        self.security.apply_limits(&mut query.limits);
        self.security.apply(&mut compactor.tls, &mut compactor.auth);
        own_hop(&mut agent, &mut collector);
        (agent, collector, query, compactor)
    }
}

/// The standalone agent's hop to its own collector: over TLS when the collector has it (the
/// agent pins the collector's certificate; the Flight listener asks for no client
/// certificate, which the agent does not have), and with a token made for this process when
/// the collector requires auth. Settings given for the hop are kept.
fn own_hop(agent: &mut AgentConfig, collector: &mut CollectorConfig) {
    if collector.tls.enabled() && collector.flight_tls.is_none() {
        collector.flight_tls = Some(ServerTlsConfig {
            client_ca: None,
            ..collector.tls.clone()
        });
    }
    let flight_tls = collector.flight_tls.as_ref().unwrap_or(&collector.tls);
    if flight_tls.enabled() && !agent.ship_tls.enabled() {
        agent.ship_tls.pinned_cert = flight_tls.cert.clone();
    }
    if collector.auth.file.is_some()
        && agent.ship_token.is_none()
        && agent.ship_token_file.is_none()
    {
        let token = random_token();
        collector.auth.internal_token = Some(token.clone());
        agent.ship_token = Some(token);
    }
}

/// 32 random bytes as hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The system's random source failing is not something to run on.
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random source works");
    hex::encode(bytes)
}

/// `--tail GLOB...`: one plain-line file source, besides those of the configuration.
fn add_tail(agent: &mut AgentConfig, globs: Vec<String>) {
    if !globs.is_empty() {
        agent
            .files
            .push(strata_agent::sources::file::FileSourceConfig::tail(globs));
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// The address to dial for a listener bound to `addr` in the same process.
fn loopback(addr: &str) -> String {
    let port = addr.rsplit_once(':').map_or(addr, |(_, p)| p);
    match addr.rsplit_once(':').map(|(h, _)| h) {
        Some("" | "0.0.0.0" | "[::]") | None => format!("127.0.0.1:{port}"),
        Some(host) => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_dials_its_own_collector() {
        assert_eq!(loopback("0.0.0.0:4320"), "127.0.0.1:4320");
        assert_eq!(loopback(":4320"), "127.0.0.1:4320");
        assert_eq!(loopback("127.0.0.2:9"), "127.0.0.2:9");
    }

    #[test]
    fn no_subcommand_is_allowed() {
        let cli = Cli::try_parse_from(["strata"]).unwrap();
        assert!(cli.command.is_none());
    }

    #[test]
    fn standalone_security_flags_reach_every_role_and_its_own_hop() {
        let cli = Cli::try_parse_from([
            "strata",
            "standalone",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
            "--auth-file",
            "auth.toml",
        ])
        .unwrap();
        let Some(Command::Standalone(args)) = cli.command else {
            panic!("not standalone")
        };
        let (agent, collector, query, compactor) = args.apply(Config::default());
        for tls in [&agent.tls, &collector.tls, &query.tls, &compactor.tls] {
            assert_eq!(tls.cert.as_deref(), Some(std::path::Path::new("c.pem")));
            assert_eq!(
                tls.client_ca.as_deref(),
                Some(std::path::Path::new("ca.pem"))
            );
        }
        for auth in [&agent.auth, &collector.auth, &query.auth, &compactor.auth] {
            assert_eq!(
                auth.file.as_deref(),
                Some(std::path::Path::new("auth.toml"))
            );
        }
        // The agent pins the collector's certificate, which asks it for none, and ships with
        // the process's own token.
        assert_eq!(agent.ship_tls.pinned_cert, collector.tls.cert);
        let flight = collector.flight_tls.as_ref().unwrap();
        assert!(flight.client_ca.is_none());
        assert_eq!(agent.ship_token, collector.auth.internal_token);
        assert_eq!(agent.ship_token.as_ref().map(String::len), Some(64));
        // A key without a certificate is refused by the parser.
        assert!(Cli::try_parse_from(["strata", "query", "--tls-key", "k.pem"]).is_err());
        // Without the flags, nothing changes.
        let cli = Cli::try_parse_from(["strata", "standalone"]).unwrap();
        let Some(Command::Standalone(args)) = cli.command else {
            panic!("not standalone")
        };
        let (agent, collector, _, _) = args.apply(Config::default());
        assert!(!agent.ship_tls.enabled() && agent.ship_token.is_none());
        assert!(collector.flight_tls.is_none());
    }

    #[test]
    fn collectors_flag_takes_a_list() {
        let cli = Cli::try_parse_from(["strata", "agent", "--collectors", "a:1,b:2"]).unwrap();
        let Some(Command::Agent(args)) = cli.command else {
            panic!("not agent")
        };
        let c = args.apply(AgentConfig::default());
        assert_eq!(c.collectors, vec!["a:1".to_string(), "b:2".to_string()]);
    }

    #[test]
    fn tail_flags_add_one_plain_file_source() {
        let cli = Cli::try_parse_from([
            "strata",
            "standalone",
            "--tail",
            "/var/log/*.log",
            "--tail",
            "/srv/app/*.log",
        ])
        .unwrap();
        let Some(Command::Standalone(args)) = cli.command else {
            panic!("not standalone")
        };
        let (agent, _, _, _) = args.apply(Config::default());
        assert_eq!(agent.files.len(), 1);
        assert_eq!(agent.files[0].include, ["/var/log/*.log", "/srv/app/*.log"]);
        agent.validate().unwrap();
        let cli = Cli::try_parse_from(["strata", "agent", "--tail", "/var/log/*.log"]).unwrap();
        let Some(Command::Agent(args)) = cli.command else {
            panic!("not agent")
        };
        let agent = args.apply(AgentConfig::default());
        assert_eq!(agent.files[0].include, ["/var/log/*.log"]);
        // Without --tail, no file source.
        let cli = Cli::try_parse_from(["strata", "agent"]).unwrap();
        let Some(Command::Agent(args)) = cli.command else {
            panic!("not agent")
        };
        assert!(args.apply(AgentConfig::default()).files.is_empty());
    }
}
