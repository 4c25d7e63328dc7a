//! Data sources of the agent: OTLP over gRPC and HTTP ([`otlp`]) and tailed log files
//! ([`file`]).

pub mod file;
pub mod otlp;
