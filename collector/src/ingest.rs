//! The collector's [`Ingest`] sink, behind its own OTLP receivers: rows go through the same
//! accept path as agents' batches (WAL, then buffer), without an idempotency key.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use strata_ingest::{Ingest, IngestError};
use strata_schema::Signal;
use strata_schema::envelope::Envelope;

use crate::store::Store;

pub struct StoreIngest {
    pub store: Arc<Store>,
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
        self.store
            .accept("otlp", &envelope, std::slice::from_ref(&batch), None)
            .await
            .map_err(|e| match e {
                // The receiver built this batch itself: a schema mismatch is a bug, not bad input.
                IngestError::Invalid(m) => IngestError::Internal(m),
                other => other,
            })?;
        Ok(())
    }
}
