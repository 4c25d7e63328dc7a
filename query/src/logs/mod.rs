//! Log reading over the `logs` table: the LogQL subset of log queries ([`logql`]) that the
//! Loki API serves.

pub mod logql;
