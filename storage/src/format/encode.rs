//! Encoding one collector flush (one partition's buffered batches) as a Parquet file: the
//! rows are sorted by the signal's sort columns and written with [`super::writer_properties`].
//! Spans are unique by (trace id, span id, kind) within a file (the kind keeps both halves of a
//! Zipkin shared span).
//!
//! Memory: besides the input, a flush holds the sort keys, the sorted order and one chunk of
//! [`CHUNK_ROWS`] gathered rows at a time, never a sorted copy of the whole partition.

use arrow::array::RecordBatch;
use arrow::compute::{SortOptions, concat};
use arrow::row::{RowConverter, SortField};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use strata_schema::{Signal, columns};

use super::ParquetOptions;

/// Rows gathered into sorted order and handed to the Parquet writer at a time.
pub const CHUNK_ROWS: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("sort column {0} missing")]
    MissingColumn(&'static str),
}

/// Sorts `batches` (one signal's schema) and encodes them as one Parquet file, with
/// `metadata` added to the format's key-value metadata. Returns the bytes and the row count.
pub fn encode(
    signal: Signal,
    batches: &[RecordBatch],
    metadata: Vec<KeyValue>,
    options: ParquetOptions,
) -> Result<(Vec<u8>, usize), EncodeError> {
    let schema = signal.schema();
    let empty;
    let batches = if batches.is_empty() {
        empty = [RecordBatch::new_empty(schema.clone())];
        &empty[..]
    } else {
        batches
    };
    // Only the sort keys are concatenated; the rows are then gathered from the input batches
    // in sorted order, a chunk at a time ([`super::gather`]: `interleave`, which copies nested
    // lists natively, but nothing row by row for columns that hold nothing), instead of copying
    // every column twice (concat, then take).
    // The keys are encoded in arrow's row format, so that comparing two rows is one memcmp
    // rather than a comparison per sort column through dynamic comparators (`lexsort`); ties
    // keep input order, so equal rows come out as they came in.
    let sort_cols = signal.sort_columns();
    let mut keys = Vec::with_capacity(sort_cols.len());
    let mut fields = Vec::with_capacity(sort_cols.len());
    for &name in sort_cols {
        let idx = schema
            .index_of(name)
            .map_err(|_| EncodeError::MissingColumn(name))?;
        let parts: Vec<&dyn arrow::array::Array> =
            batches.iter().map(|b| b.column(idx).as_ref()).collect();
        keys.push(concat(&parts)?);
        fields.push(SortField::new_with_options(
            schema.field(idx).data_type().clone(),
            SortOptions {
                descending: false,
                nulls_first: true,
            },
        ));
    }
    let encoded = RowConverter::new(fields)?.convert_columns(&keys)?;
    let mut order: Vec<u32> = (0..encoded.num_rows() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        encoded
            .row(a as usize)
            .cmp(&encoded.row(b as usize))
            .then(a.cmp(&b))
    });
    let mut starts = Vec::with_capacity(batches.len());
    let mut total = 0;
    for b in batches {
        starts.push(total);
        total += b.num_rows();
    }
    let rows: Vec<(usize, usize)> = order
        .iter()
        .map(|&i| {
            let i = i as usize;
            let b = starts.partition_point(|&s| s <= i) - 1;
            (b, i - starts[b])
        })
        .collect();
    let inputs: Vec<&RecordBatch> = batches.iter().collect();
    let rows = if signal == Signal::Traces {
        unique_spans(&inputs, rows)?
    } else {
        rows
    };

    let props = super::writer_properties(signal, options, metadata)?;
    let input_bytes: usize = batches
        .iter()
        .map(strata_schema::memory::retained_bytes)
        .sum();
    let mut out = Vec::with_capacity(input_bytes / 16);
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props))?;
    for chunk in rows.chunks(CHUNK_ROWS) {
        writer.write(&super::gather::gather(&schema, &inputs, chunk)?)?;
    }
    writer.close()?;
    Ok((out, rows.len()))
}

/// Keeps the first of the `rows` (batch, row) of every (trace id, span id, kind): a span stored
/// twice (a batch retried through two collectors' restarts) is written once per file. `rows`
/// are sorted by trace id then start time, and both copies of a span have the same start time,
/// so they sit in the same run of equal (trace id, start time): only span ids within such a run
/// are compared (a run is almost always one row), never a set of every id.
fn unique_spans(
    inputs: &[&RecordBatch],
    rows: Vec<(usize, usize)>,
) -> Result<Vec<(usize, usize)>, EncodeError> {
    use arrow::array::{Array, AsArray, PrimitiveArray, StringArray};
    use arrow::datatypes::TimestampNanosecondType;
    let strings = |name: &'static str| {
        inputs
            .iter()
            .map(|b| {
                b.column_by_name(name)
                    .and_then(|c| c.as_string_opt::<i32>())
                    .ok_or(EncodeError::MissingColumn(name))
            })
            .collect::<Result<Vec<&StringArray>, _>>()
    };
    let (trace, span) = (strings(columns::TRACE_ID)?, strings(columns::SPAN_ID)?);
    let start = inputs
        .iter()
        .map(|b| {
            b.column_by_name(columns::START_TIME)
                .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
                .ok_or(EncodeError::MissingColumn(columns::START_TIME))
        })
        .collect::<Result<Vec<&PrimitiveArray<TimestampNanosecondType>>, _>>()?;
    let kinds = inputs
        .iter()
        .map(|b| {
            b.column_by_name(columns::KIND)
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>())
                .ok_or(EncodeError::MissingColumn(columns::KIND))
        })
        .collect::<Result<Vec<&PrimitiveArray<arrow::datatypes::Int32Type>>, _>>()?;
    let kind_of = |(b, i): (usize, usize)| {
        let k = kinds[b];
        if k.is_null(i) { 0 } else { k.value(i) }
    };
    let trace_of = |(b, i): (usize, usize)| trace[b].value(i);
    let span_of = |(b, i): (usize, usize)| span[b].value(i);
    let start_of = |(b, i): (usize, usize)| start[b].value(i);
    // Indices into `kept` where the current run starts.
    let mut kept: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
    let mut run_start = 0;
    for (n, &row) in rows.iter().enumerate() {
        let same_run = n > 0 && {
            let prev = rows[n - 1];
            start_of(prev) == start_of(row) && trace_of(prev) == trace_of(row)
        };
        if !same_run {
            run_start = kept.len();
        }
        if kept[run_start..]
            .iter()
            .all(|&k| span_of(k) != span_of(row) || kind_of(k) != kind_of(row))
        {
            kept.push(row);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use bytes::Bytes;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::file::metadata::PageIndexPolicy;

    use super::*;

    fn spans(n: usize) -> RecordBatch {
        // Trace ids in scrambled order, several spans per trace.
        let spans = (0..n)
            .map(|i| {
                let t = (i * 7919) % 13;
                Span {
                    trace_id: [t as u8; 16].to_vec(),
                    span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                    start_time_unix_nano: 1_700_000_000_000_000_000 + ((n - i) as u64) * 1000,
                    name: format!("op{}", i % 3),
                    ..Default::default()
                }
            })
            .collect();
        batch_of(spans)
    }

    /// One batch of `spans` under one resource and scope.
    fn batch_of(spans: Vec<Span>) -> RecordBatch {
        strata_schema::traces::to_batch(&[ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }])
        .unwrap()
    }

    #[test]
    fn spans_are_sorted_with_bloom_filter_and_page_index() {
        let batch = spans(500);
        let (bytes, rows) = encode(
            Signal::Traces,
            &[batch.slice(0, 200), batch.slice(200, 300)],
            vec![KeyValue::new("k".into(), "v".to_string())],
            ParquetOptions {
                row_group_rows: 128,
                zstd_level: 3,
            },
        )
        .unwrap();
        assert_eq!(rows, 500);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            Bytes::from(bytes),
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
        )
        .unwrap();
        let meta = builder.metadata().clone();
        assert_eq!(meta.num_row_groups(), 4);
        let schema = Signal::Traces.schema();
        let tid = schema.index_of(columns::TRACE_ID).unwrap();
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        assert!(kv.iter().any(|k| k.key == super::super::FORMAT_KEY));
        assert!(kv.iter().any(|k| k.key == "k"));
        super::super::check(&meta, Signal::Traces).unwrap();
        assert_eq!(
            super::super::check(&meta, Signal::Logs),
            Err(super::super::FormatError::Signal {
                found: "traces".into(),
                expected: Signal::Logs
            })
        );
        for rg in meta.row_groups() {
            // Top-level leaves carry statistics (what pages are pruned on); nested ones do not.
            for column in rg.columns() {
                let nested = column.column_path().parts().len() > 1;
                assert_eq!(
                    column.statistics().is_some(),
                    !nested,
                    "{}",
                    column.column_path().string()
                );
            }
            let sorting = rg.sorting_columns().unwrap();
            let leaf = rg.column(sorting[0].column_idx as usize);
            assert_eq!(leaf.column_path().string(), "trace_id");
            assert_eq!(
                rg.column(sorting[1].column_idx as usize)
                    .column_path()
                    .string(),
                "start_time"
            );
            assert!(rg.column(tid).bloom_filter_offset().is_some());
            assert!(rg.column(tid).statistics().is_some());
            let uses = |name: &str, encoding: parquet::basic::Encoding| {
                rg.columns()
                    .iter()
                    .find(|c| c.column_path().string() == name)
                    .is_some_and(|c| c.encodings().any(|e| e == encoding))
            };
            use parquet::basic::Encoding::*;
            assert!(uses("span_id", DELTA_LENGTH_BYTE_ARRAY));
            assert!(!uses("span_id", RLE_DICTIONARY));
            assert!(uses("start_time", DELTA_BINARY_PACKED));
            assert!(uses("name", RLE_DICTIONARY));
        }
        assert!(meta.column_index().is_some() && meta.offset_index().is_some());
        let read: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let all = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
        let ids = all.column(tid).as_string::<i32>();
        let starts = all
            .column_by_name(columns::START_TIME)
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        for i in 1..all.num_rows() {
            let (a, b) = (ids.value(i - 1), ids.value(i));
            assert!(a < b || (a == b && starts.value(i - 1) <= starts.value(i)));
        }
    }

    #[test]
    fn a_span_stored_twice_is_written_once() {
        let batch = spans(50);
        let (bytes, rows) = encode(
            Signal::Traces,
            &[batch.clone(), batch.slice(10, 5)],
            Vec::new(),
            ParquetOptions {
                row_group_rows: 1000,
                zstd_level: 1,
            },
        )
        .unwrap();
        assert_eq!(rows, 50);
        let read = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(read.map(|b| b.unwrap().num_rows()).sum::<usize>(), 50);
    }

    /// Spans of one trace starting at the same nanosecond are all kept; only the second copy
    /// of each is dropped, wherever the copies sit in their run.
    #[test]
    fn siblings_with_the_same_start_are_kept_and_copies_dropped() {
        let siblings = |ids: &[u8]| {
            batch_of(
                ids.iter()
                    .map(|&s| Span {
                        trace_id: [9; 16].to_vec(),
                        span_id: [s; 8].to_vec(),
                        start_time_unix_nano: 5,
                        ..Default::default()
                    })
                    .collect(),
            )
        };
        let (bytes, rows) = encode(
            Signal::Traces,
            &[siblings(&[1, 2, 3, 4]), siblings(&[3, 1, 5]), spans(20)],
            Vec::new(),
            ParquetOptions {
                row_group_rows: 1000,
                zstd_level: 1,
            },
        )
        .unwrap();
        assert_eq!(rows, 5 + 20);
        let read: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        let all = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
        let mut ids: Vec<(String, String)> = (0..all.num_rows())
            .map(|i| {
                let s = |c| {
                    all.column_by_name(c)
                        .unwrap()
                        .as_string::<i32>()
                        .value(i)
                        .to_owned()
                };
                (s(columns::TRACE_ID), s(columns::SPAN_ID))
            })
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 25, "every span once");
    }
}
