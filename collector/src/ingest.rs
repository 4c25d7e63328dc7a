//! The collector's [`Ingest`] sink, behind its own OTLP receivers: rows go straight into the
//! partition buffer.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use strata_agent::ingest::{Ingest, IngestError};
use strata_schema::Signal;

use crate::buffer::{Buffer, BufferError};
use crate::metrics::CollectorMetrics;

pub struct BufferIngest {
    pub buffer: Arc<Buffer>,
    pub metrics: Arc<CollectorMetrics>,
}

#[async_trait]
impl Ingest for BufferIngest {
    async fn ingest(
        &self,
        tenant: &str,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<(), IngestError> {
        let rows = self
            .buffer
            .append(tenant, signal, std::slice::from_ref(&batch))
            .map_err(|e| match e {
                BufferError::Full { .. } => IngestError::Overloaded(e.to_string()),
                BufferError::Schema { .. } => IngestError::Internal(e.to_string()),
            })?;
        self.metrics
            .received_rows
            .get_or_create(&vec![
                ("signal", signal.as_str().to_string()),
                ("source", "otlp".to_string()),
            ])
            .inc_by(rows as u64);
        Ok(())
    }
}
