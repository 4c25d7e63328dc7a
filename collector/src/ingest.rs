//! The collector's [`Ingest`] sink, behind its own OTLP receivers: rows go through the same
//! accept path as agents' batches (WAL, then buffer), without an idempotency key.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use strata_agent::ingest::{Ingest, IngestError};
use strata_schema::Signal;
use strata_schema::envelope::Envelope;

use crate::metrics::CollectorMetrics;
use crate::store::{Accepted, Store};

pub struct StoreIngest {
    pub store: Arc<Store>,
    pub metrics: Arc<CollectorMetrics>,
}

#[async_trait]
impl Ingest for StoreIngest {
    async fn ingest(
        &self,
        tenant: &str,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<(), IngestError> {
        let envelope = Envelope::new(String::new(), 0, signal, tenant);
        let accepted = self
            .store
            .accept(&envelope, std::slice::from_ref(&batch))
            .await
            .map_err(|e| match e {
                // The receiver built this batch itself: a schema mismatch is a bug, not bad input.
                IngestError::Invalid(m) => IngestError::Internal(m),
                other => other,
            })?;
        if let Accepted::Stored { rows } = accepted {
            self.metrics
                .received_rows
                .get_or_create(&vec![
                    ("signal", signal.as_str().to_string()),
                    ("source", "otlp".to_string()),
                ])
                .inc_by(rows as u64);
        }
        Ok(())
    }
}
