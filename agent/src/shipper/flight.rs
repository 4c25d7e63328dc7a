//! Shipping buffered batches to one collector: one Flight `DoPut` in the convention of
//! `strata_ingest::flight`, made of the IPC streams the buffer keeps (compressed once, as
//! `ship_compression` says; the collector reads any of them). The collector answers with one
//! `PutResult` once every batch is durable.

use arrow_flight::FlightClient;
use arrow_flight::error::FlightError;
use bytes::Bytes;
use futures::StreamExt;
use strata_schema::envelope::Envelope;
use strata_server::tls::client::Connector;
use tonic::transport::Endpoint;

/// A lazily connecting Flight client for `addr` (`HOST:PORT`) that dials through
/// `connector` (TLS when configured) and sends `token` as a bearer credential; reconnects by
/// itself.
pub fn client(
    addr: &str,
    connector: &Connector,
    token: Option<&str>,
) -> Result<FlightClient, FlightError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| FlightError::ExternalError(Box::new(e)))?;
    let mut client = FlightClient::new(endpoint.connect_with_connector_lazy(connector.clone()));
    if let Some(token) = token {
        client.add_header("authorization", &format!("Bearer {token}"))?;
    }
    Ok(client)
}

/// Ships `streams` (sequence, the batch's Arrow IPC stream as the buffer keeps it) of one
/// signal and tenant under `envelope` (whose sequence is the first batch's), as they are: no
/// batch is decoded or compressed again. `Ok` means the collector acknowledged all of them.
pub async fn put(
    client: &mut FlightClient,
    envelope: &Envelope,
    streams: Vec<(u64, Bytes)>,
) -> Result<(), FlightError> {
    let data = strata_ingest::flight::encode_streams(envelope, streams)?;
    let data = futures::stream::iter(data.into_iter().map(Ok));
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
