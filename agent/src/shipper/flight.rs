//! Shipping buffered batches to one collector: one Flight `DoPut` whose descriptor carries the
//! envelope (agent id, first sequence, signal, tenant) and whose data is Arrow IPC, compressed
//! as configured (`ship_compression`; the collector reads any of them). Each batch's messages carry its own sequence (little-endian u64) in `app_metadata`, so
//! the collector deduplicates each batch on its own. The collector answers with one
//! `PutResult` once every batch is durable.

use arrow::ipc::CompressionType;
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor};
use futures::{StreamExt, TryStreamExt};
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
    let options = IpcWriteOptions::default().try_with_compression(compression)?;
    let mut streams = Vec::with_capacity(batches.len());
    for (i, (seq, batch)) in batches.into_iter().enumerate() {
        let mut builder = FlightDataEncoderBuilder::new().with_options(options.clone());
        if i == 0 {
            builder = builder
                .with_flight_descriptor(Some(FlightDescriptor::new_cmd(envelope.encode_to_vec())));
        }
        let seq = bytes::Bytes::copy_from_slice(&seq.to_le_bytes());
        streams.push(
            builder
                .build(futures::stream::iter([Ok(batch)]))
                .map_ok(move |mut data| {
                    data.app_metadata = seq.clone();
                    data
                }),
        );
    }
    let data = futures::stream::iter(streams).flatten();
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
