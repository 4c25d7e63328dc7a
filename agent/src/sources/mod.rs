//! Data sources of the agent besides the ingest protocols of `strata-ingest`: tailed log
//! files ([`file`]) and Prometheus scrapes ([`scrape`]).

pub mod file;
pub mod scrape;
