//! Strata's benchmark workloads: deterministic generators of realistic OTLP traces, logs and
//! metrics, shared by the `strata-loadgen` binary and the criterion micro-benchmarks.
//!
//! Every generator is a pure function of (shape, request number): request `i` of a seed is
//! always the same data, apart from timestamps that follow the clock so the data lands in the
//! current hour partition.

pub mod logs;
pub mod metrics;
pub mod rng;
pub mod traces;
