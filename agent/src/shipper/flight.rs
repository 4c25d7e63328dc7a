//! Shipping one batch to one collector: a Flight `DoPut` whose descriptor carries the batch
//! envelope (agent id, sequence, signal, tenant) and whose data is zstd-compressed Arrow IPC.
//! The collector answers with one `PutResult` once it took the batch.

use arrow::ipc::CompressionType;
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor};
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

/// Ships `batch` with `envelope`; `Ok` means the collector acknowledged it.
pub async fn put(
    client: &mut FlightClient,
    envelope: &Envelope,
    batch: RecordBatch,
) -> Result<(), FlightError> {
    let options = IpcWriteOptions::default().try_with_compression(Some(CompressionType::ZSTD))?;
    let data = FlightDataEncoderBuilder::new()
        .with_options(options)
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(envelope.encode_to_vec())))
        .build(futures::stream::iter([Ok(batch)]));
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
