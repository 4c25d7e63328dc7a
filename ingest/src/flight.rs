//! The Flight `DoPut` convention between agents and collectors, both halves in one place.
//!
//! One `DoPut` carries one or more shipped batches of one (agent, signal, tenant). The first
//! message's descriptor `cmd` is the [`Envelope`] (agent id, first sequence, signal, tenant).
//! The data is Arrow IPC, compressed as the sender chose (the receiver reads any of them).
//! Every record-batch message carries its batch's own sequence as a little-endian u64 in
//! `app_metadata`, so that the receiver deduplicates each batch on its own; a message without
//! it belongs to the descriptor's sequence.
//!
//! Invariants:
//! - [`decode_groups`] yields batches in stream order, grouped by consecutive equal sequence:
//!   what [`encode`] sent as one batch comes back as one group.

use arrow::ipc::CompressionType;
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightData, FlightDescriptor};
use futures::{Stream, StreamExt, TryStreamExt};
use strata_schema::envelope::Envelope;

/// The `DoPut` stream of `batches` (sequence, batch) under `envelope` (whose sequence is the
/// first batch's), IPC-compressed with `compression`.
pub fn encode(
    envelope: &Envelope,
    batches: Vec<(u64, RecordBatch)>,
    compression: Option<CompressionType>,
) -> Result<impl Stream<Item = Result<FlightData, FlightError>> + Send + 'static, FlightError> {
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
    Ok(futures::stream::iter(streams).flatten())
}

/// Decodes a `DoPut` stream into its batches, grouped by the sequence each belongs to (the
/// message's 8-byte `app_metadata`, else `default_seq`), in stream order.
pub async fn decode_groups(
    data: impl Stream<Item = Result<FlightData, FlightError>> + Send + 'static,
    default_seq: u64,
) -> Result<Vec<(u64, Vec<RecordBatch>)>, FlightError> {
    let mut decoder = FlightDataDecoder::new(data.boxed());
    let mut groups: Vec<(u64, Vec<_>)> = Vec::new();
    while let Some(decoded) = decoder.try_next().await? {
        let DecodedPayload::RecordBatch(batch) = decoded.payload else {
            continue;
        };
        let seq = <[u8; 8]>::try_from(decoded.inner.app_metadata.as_ref())
            .map(u64::from_le_bytes)
            .unwrap_or(default_seq);
        match groups.last_mut() {
            Some((s, batches)) if *s == seq => batches.push(batch),
            _ => groups.push((seq, vec![batch])),
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use strata_schema::Signal;

    use super::*;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    #[tokio::test]
    async fn batches_come_back_grouped_by_their_own_sequence() {
        let envelope = Envelope::new("agent-1", 7, Signal::Traces, "acme");
        let sent = vec![(7, batch(&[1, 2])), (8, batch(&[3])), (9, batch(&[4, 5, 6]))];
        for compression in [None, Some(CompressionType::ZSTD), Some(CompressionType::LZ4_FRAME)] {
            let stream = encode(&envelope, sent.clone(), compression).expect("encode");
            let data: Vec<FlightData> = stream.try_collect().await.expect("encoded");
            let descriptor = data[0].flight_descriptor.as_ref().expect("descriptor");
            let back = Envelope::decode_bytes(&descriptor.cmd).expect("envelope");
            assert_eq!((back.sequence, back.signal.as_str()), (7, "traces"));
            let groups = decode_groups(futures::stream::iter(data.into_iter().map(Ok)), 0)
                .await
                .expect("decoded");
            let got: Vec<(u64, Vec<RecordBatch>)> = groups;
            assert_eq!(got.len(), 3);
            for ((seq, batches), (want_seq, want)) in got.iter().zip(&sent) {
                assert_eq!(seq, want_seq);
                assert_eq!(batches, &vec![want.clone()]);
            }
        }
    }
}
