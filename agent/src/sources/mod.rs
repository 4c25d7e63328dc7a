//! Data sources of the agent. Today: OTLP over gRPC and HTTP.

pub mod otlp;
