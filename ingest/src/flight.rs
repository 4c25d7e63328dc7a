//! The Flight `DoPut` convention between agents and collectors, both halves in one place.
//!
//! One `DoPut` carries one or more shipped batches of one (agent, signal, tenant). The first
//! message's descriptor `cmd` is the [`Envelope`] (agent id, first sequence, signal, tenant).
//! The data is Arrow IPC, compressed as the sender chose (the receiver reads any of them).
//! Every record-batch message carries its batch's own sequence as a little-endian u64 in
//! `app_metadata`, so that the receiver deduplicates each batch on its own; a message without
//! it belongs to the descriptor's sequence.
//!
//! A batch is compressed once: [`ipc_stream`] encodes it as an Arrow IPC stream (what the
//! agent's buffer keeps), and [`encode_streams`] cuts such streams into Flight messages without
//! decoding or compressing anything again: an IPC stream is a sequence of encapsulated messages
//! (flatbuffer header, body), and a Flight message carries exactly one of them.
//!
//! Invariants:
//! - [`decode_groups`] yields batches in stream order, grouped by consecutive equal sequence:
//!   what [`encode_streams`] (or an older agent's encoder) sent as one batch comes back as one group.
//! - A stream that is not a well-formed IPC stream is an error, never a panic.

use arrow::ipc::CompressionType;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::error::FlightError;
use arrow_flight::{FlightData, FlightDescriptor};
use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use std::panic::AssertUnwindSafe;
use strata_schema::envelope::Envelope;

/// `batch` as an Arrow IPC stream (schema, batch, end of stream), compressed with `compression`:
/// the form in which a batch is kept and shipped. The bytes own no spare capacity: a buffered
/// copy holds its compressed size, not the guess it was written into.
pub fn ipc_stream(
    batch: &RecordBatch,
    compression: Option<CompressionType>,
) -> Result<Vec<u8>, FlightError> {
    let options = IpcWriteOptions::default().try_with_compression(compression)?;
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4 + 1024);
    let mut w = StreamWriter::try_new_with_options(&mut out, &batch.schema(), options)?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    out.shrink_to_fit();
    Ok(out)
}

/// The messages of an Arrow IPC stream as Flight data: header and body of each, in order,
/// without the end-of-stream marker.
pub fn stream_messages(stream: &Bytes) -> Result<Vec<FlightData>, FlightError> {
    let bad = |what: &str| FlightError::ProtocolError(format!("not an Arrow IPC stream: {what}"));
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < stream.len() {
        let word = |i: usize| -> Result<u32, FlightError> {
            stream
                .get(i..i + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| bad("cut in a message prefix"))
        };
        // `0xFFFFFFFF len` since format 0.15; a bare `len` before it.
        let mut len = word(at)?;
        at += 4;
        if len == 0xFFFF_FFFF {
            len = word(at)?;
            at += 4;
        }
        if len == 0 {
            break; // end of stream
        }
        let header_end = at
            .checked_add(len as usize)
            .filter(|&e| e <= stream.len())
            .ok_or_else(|| bad("cut in a message header"))?;
        let header = stream.slice(at..header_end);
        let message = arrow::ipc::root_as_message(&header)
            .map_err(|e| bad(&format!("message header: {e}")))?;
        let body_len = usize::try_from(message.bodyLength()).map_err(|_| bad("body length"))?;
        let body_end = header_end
            .checked_add(body_len)
            .filter(|&e| e <= stream.len())
            .ok_or_else(|| bad("cut in a message body"))?;
        out.push(
            FlightData::new()
                .with_data_header(header)
                .with_data_body(stream.slice(header_end..body_end)),
        );
        at = body_end;
    }
    Ok(out)
}

/// The `DoPut` stream of `streams` (sequence, Arrow IPC stream of one batch, as made by
/// [`ipc_stream`]) under `envelope`, with no encoding.
pub fn encode_streams(
    envelope: &Envelope,
    streams: Vec<(u64, Bytes)>,
) -> Result<Vec<FlightData>, FlightError> {
    let mut out = Vec::with_capacity(streams.len() * 2);
    for (seq, stream) in streams {
        let seq = Bytes::copy_from_slice(&seq.to_le_bytes());
        for message in stream_messages(&stream)? {
            out.push(message.with_app_metadata(seq.clone()));
        }
    }
    match out.first_mut() {
        Some(first) => {
            first.flight_descriptor = Some(FlightDescriptor::new_cmd(envelope.encode_to_vec()));
        }
        None => return Err(FlightError::ProtocolError("nothing to ship".into())),
    }
    Ok(out)
}

/// The batches of one sequence in a `DoPut` stream.
#[derive(Debug)]
pub struct Group {
    pub seq: u64,
    pub batches: Vec<RecordBatch>,
    /// The same batches as the Arrow IPC stream they came in (schema and batch messages,
    /// compressed as the sender chose), so that a receiver can keep them without encoding
    /// them again; `None` when the messages do not make one plain stream (dictionaries, a
    /// schema change within the group).
    pub stream: Option<Bytes>,
}

/// Decodes a `DoPut` stream into its batches, grouped by the sequence each belongs to (the
/// message's 8-byte `app_metadata`, else `default_seq`), in stream order.
pub async fn decode_groups(
    data: impl Stream<Item = Result<FlightData, FlightError>> + Send + 'static,
    default_seq: u64,
) -> Result<Vec<Group>, FlightError> {
    let mut decoder = FlightDataDecoder::new(data.boxed());
    let mut groups: Vec<(Group, Option<Vec<FlightData>>)> = Vec::new();
    let mut schema: Option<FlightData> = None;
    // Set by a schema or dictionary message: the next batch cannot join the open group's stream.
    let mut break_stream = false;
    // arrow's reader can panic on malformed messages: a panic is a decode error here.
    while let Some(decoded) = AssertUnwindSafe(decoder.try_next())
        .catch_unwind()
        .await
        .map_err(|panic| FlightError::Arrow(strata_schema::ipc::malformed(&*panic)))??
    {
        let batch = match decoded.payload {
            DecodedPayload::RecordBatch(batch) => batch,
            DecodedPayload::Schema(_) => {
                schema = Some(decoded.inner);
                break_stream = true;
                continue;
            }
            DecodedPayload::None => {
                // A dictionary batch: the groups it feeds are decoded, not kept verbatim.
                schema = None;
                break_stream = true;
                continue;
            }
        };
        let seq = <[u8; 8]>::try_from(decoded.inner.app_metadata.as_ref())
            .map(u64::from_le_bytes)
            .unwrap_or(default_seq);
        match groups.last_mut() {
            Some((g, messages)) if g.seq == seq => {
                g.batches.push(batch);
                match messages {
                    Some(m) if !break_stream => m.push(decoded.inner),
                    _ => *messages = None,
                }
            }
            _ => {
                let messages = schema.clone().map(|s| vec![s, decoded.inner]);
                let group = Group {
                    seq,
                    batches: vec![batch],
                    stream: None,
                };
                groups.push((group, messages));
            }
        }
        break_stream = false;
    }
    Ok(groups
        .into_iter()
        .map(|(mut g, messages)| {
            g.stream = messages.map(|m| Bytes::from(frame(&m)));
            g
        })
        .collect())
}

/// Flight messages as an Arrow IPC stream: each as `0xFFFFFFFF len header padding body`,
/// then the end-of-stream marker.
fn frame(messages: &[FlightData]) -> Vec<u8> {
    let size: usize = messages
        .iter()
        .map(|m| 8 + m.data_header.len() + 8 + m.data_body.len())
        .sum();
    let mut out = Vec::with_capacity(size + 8);
    for m in messages {
        let padded = m.data_header.len().div_ceil(8) * 8;
        out.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        out.extend_from_slice(&(padded as u32).to_le_bytes());
        out.extend_from_slice(&m.data_header);
        out.resize(out.len() + padded - m.data_header.len(), 0);
        out.extend_from_slice(&m.data_body);
    }
    out.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use strata_schema::Signal;

    use super::*;
    use arrow_flight::encode::FlightDataEncoderBuilder;

    /// The `DoPut` stream an agent before compress-once sent: `batches` (sequence, batch) under `envelope` (whose sequence is the
    /// first batch's), IPC-compressed with `compression`.
    fn encode(
        envelope: &Envelope,
        batches: Vec<(u64, RecordBatch)>,
        compression: Option<CompressionType>,
    ) -> Result<impl Stream<Item = Result<FlightData, FlightError>> + Send + 'static, FlightError>
    {
        let options = IpcWriteOptions::default().try_with_compression(compression)?;
        let mut streams = Vec::with_capacity(batches.len());
        for (i, (seq, batch)) in batches.into_iter().enumerate() {
            let mut builder = FlightDataEncoderBuilder::new().with_options(options.clone());
            if i == 0 {
                builder = builder.with_flight_descriptor(Some(FlightDescriptor::new_cmd(
                    envelope.encode_to_vec(),
                )));
            }
            let seq = bytes::Bytes::copy_from_slice(&seq.to_le_bytes());
            streams.push(builder.build(futures::stream::iter([Ok(batch)])).map_ok(
                move |mut data| {
                    data.app_metadata = seq.clone();
                    data
                },
            ));
        }
        Ok(futures::stream::iter(streams).flatten())
    }

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    #[tokio::test]
    async fn batches_come_back_grouped_by_their_own_sequence() {
        let envelope = Envelope::new("agent-1", 7, Signal::Traces, "acme");
        let sent = vec![
            (7, batch(&[1, 2])),
            (8, batch(&[3])),
            (9, batch(&[4, 5, 6])),
        ];
        for compression in [
            None,
            Some(CompressionType::ZSTD),
            Some(CompressionType::LZ4_FRAME),
        ] {
            let stream = encode(&envelope, sent.clone(), compression).expect("encode");
            let data: Vec<FlightData> = stream.try_collect().await.expect("encoded");
            let descriptor = data[0].flight_descriptor.as_ref().expect("descriptor");
            let back = Envelope::decode_bytes(&descriptor.cmd).expect("envelope");
            assert_eq!((back.sequence, back.signal.as_str()), (7, "traces"));
            let groups = decode_groups(futures::stream::iter(data.into_iter().map(Ok)), 0)
                .await
                .expect("decoded");
            assert_eq!(groups.len(), 3);
            for (g, (want_seq, want)) in groups.iter().zip(&sent) {
                assert_eq!(&g.seq, want_seq);
                assert_eq!(g.batches, vec![want.clone()]);
                // The stream it came in reads back as the same batch.
                let stream = g.stream.as_ref().expect("one plain stream");
                let reader = arrow::ipc::reader::StreamReader::try_new(
                    std::io::Cursor::new(&stream[..]),
                    None,
                )
                .expect("stream");
                let back: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
                assert_eq!(back, vec![want.clone()]);
            }
        }
    }

    #[tokio::test]
    async fn kept_ipc_streams_ship_as_they_are_and_decode_to_the_same_batches() {
        let envelope = Envelope::new("agent-1", 3, Signal::Logs, "acme");
        let sent = [(3, batch(&[1, 2, 3])), (4, batch(&[])), (5, batch(&[9]))];
        for compression in [
            None,
            Some(CompressionType::ZSTD),
            Some(CompressionType::LZ4_FRAME),
        ] {
            let streams: Vec<(u64, Bytes)> = sent
                .iter()
                .map(|(seq, b)| (*seq, Bytes::from(ipc_stream(b, compression).expect("ipc"))))
                .collect();
            let kept = streams.clone();
            let data = encode_streams(&envelope, streams).expect("split");
            // One schema and one batch message per stream; the descriptor on the first.
            assert_eq!(data.len(), 6);
            assert!(data[0].flight_descriptor.is_some());
            assert!(data[1..].iter().all(|d| d.flight_descriptor.is_none()));
            let groups = decode_groups(futures::stream::iter(data.into_iter().map(Ok)), 0)
                .await
                .expect("decoded");
            assert_eq!(groups.len(), 3);
            for (g, ((want_seq, want), (_, kept))) in groups.iter().zip(sent.iter().zip(&kept)) {
                assert_eq!(&g.seq, want_seq);
                assert_eq!(g.batches, vec![want.clone()]);
                // What was kept is what comes back as the group's stream, byte for byte.
                assert_eq!(g.stream.as_ref(), Some(kept));
            }
        }
    }

    #[test]
    fn a_damaged_stream_is_an_error() {
        let stream = ipc_stream(&batch(&[1, 2, 3]), None).expect("ipc");
        for cut in [1, 5, 9, stream.len() / 2, stream.len() - 9] {
            let part = Bytes::copy_from_slice(&stream[..cut]);
            assert!(stream_messages(&part).is_err(), "cut at {cut}");
        }
        let mut garbage = stream.clone();
        for b in &mut garbage[8..40] {
            *b = 0xAB;
        }
        assert!(stream_messages(&Bytes::from(garbage)).is_err());
        assert!(encode_streams(&Envelope::new("a", 1, Signal::Logs, "t"), vec![]).is_err());
    }
}
