//! Data sources of the agent: OTLP over gRPC and HTTP ([`otlp`], with Prometheus remote
//! write beside it), tailed log files ([`file`]) and Prometheus scrapes ([`scrape`]).

pub mod file;
pub mod otlp;
pub mod scrape;
