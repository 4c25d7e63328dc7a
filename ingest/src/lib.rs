//! Strata's ingest protocols: how data gets in, for every role that takes it.
//!
//! Each receiver decodes its wire format into Arrow batches and hands them to an [`Ingest`]
//! sink ([`sink`]), which is the role's own (the agent's shipper and buffer, the collector's
//! store). The receivers: OTLP over gRPC and HTTP ([`otlp`]) and Prometheus remote write
//! ([`remote_write`]); the Flight `DoPut` convention between agents and collectors
//! ([`flight`]) has both its halves here.
//!
//! Invariants:
//! - A sink's refusal is answered in the protocol's own terms through one mapping
//!   ([`IngestError`]: gRPC code, HTTP status, `Retry-After`), and counted by the receiver.
//! - A receiver answers a request only after the sink took responsibility for its rows.
//! - This crate knows no role: roles depend on it, never the other way round.

pub mod flight;
pub mod limits;
pub mod otlp;
pub mod remote_write;
pub mod sink;

pub use sink::{Ingest, IngestError};

/// A recording [`Ingest`] sink for the receivers' unit tests.
#[cfg(any(test, feature = "test-util"))]
pub mod test_sink {
    use std::sync::Mutex;

    use arrow::record_batch::RecordBatch;
    use async_trait::async_trait;
    use strata_schema::Signal;

    use crate::sink::{Ingest, IngestError};

    /// Keeps (tenant, signal, rows) of what it is given, or refuses everything as overloaded.
    #[derive(Default)]
    pub struct Sink {
        pub got: Mutex<Vec<(String, Signal, usize)>>,
        pub overloaded: bool,
    }

    #[async_trait]
    impl Ingest for Sink {
        async fn ingest(
            &self,
            tenant: &str,
            signal: Signal,
            batch: RecordBatch,
        ) -> Result<(), IngestError> {
            if self.overloaded {
                return Err(IngestError::Overloaded("full".into()));
            }
            self.got
                .lock()
                .unwrap()
                .push((tenant.to_string(), signal, batch.num_rows()));
            Ok(())
        }
    }
}
