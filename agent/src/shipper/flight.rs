//! Shipping buffered batches to one collector: one Flight `DoPut` in the convention of
//! `strata_ingest::flight`, compressed as configured (`ship_compression`; the collector reads
//! any of them). The collector answers with one `PutResult` once every batch is durable.

use arrow::ipc::CompressionType;
use arrow::record_batch::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::FlightClient;
use futures::StreamExt;
use strata_schema::envelope::Envelope;
use tonic::transport::Endpoint;

/// A lazily connecting Flight client for `addr` (`HOST:PORT`); reconnects by itself.
pub fn client(addr: &str) -> Result<FlightClient, FlightError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| FlightError::ExternalError(Box::new(e)))?
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(5));
    Ok(FlightClient::new(endpoint.connect_lazy()))
}

/// Ships `batches` (sequence, batch) of one signal and tenant under `envelope` (whose sequence
/// is the first batch's); `Ok` means the collector acknowledged all of them.
pub async fn put(
    client: &mut FlightClient,
    envelope: &Envelope,
    batches: Vec<(u64, RecordBatch)>,
    compression: Option<CompressionType>,
) -> Result<(), FlightError> {
    let data = strata_ingest::flight::encode(envelope, batches, compression)?;
    let mut results = client.do_put(data).await?;
    let mut acks = 0;
    while let Some(result) = results.next().await {
        result?;
        acks += 1;
    }
    if acks == 0 {
        return Err(FlightError::ProtocolError(
            "collector closed DoPut without acknowledging".into(),
        ));
    }
    Ok(())
}
