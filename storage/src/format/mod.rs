//! The Parquet format of Strata's files, for writers and readers alike.
//!
//! Every file declares, in its key-value metadata, the format ([`FORMAT_KEY`] =
//! [`FORMAT_VERSION`]), its signal ([`SIGNAL_KEY`]) and its sort order ([`SORT_KEY`], the
//! signal's sort columns joined by commas); every row group repeats the order as its
//! `sorting_columns`. Rows are sorted by the signal's sort columns (spans: trace id, start
//! time), pages are zstd-compressed with page-level statistics and the column and offset
//! indexes, and span files carry a bloom filter on `trace_id`. Writers build their
//! properties with [`writer_properties`] only; readers that rely on the order (the trace
//! index, the compactor's merge) [`check`] a file first instead of assuming it.
//!
//! Version history: `1` — the layout above.

mod encode;
pub mod gather;
pub mod wal_entries;

pub use encode::{EncodeError, encode};

use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, ParquetMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use strata_schema::{Signal, columns};

/// Key-value metadata naming the layout version of Strata's files.
pub const FORMAT_KEY: &str = "strata.format";
/// The version this build writes and reads.
pub const FORMAT_VERSION: &str = "1";
/// Key-value metadata naming the file's signal.
pub const SIGNAL_KEY: &str = "strata.signal";
/// Key-value metadata naming the file's sort columns, most significant first.
pub const SORT_KEY: &str = "strata.sort_columns";

/// How files are written; from the writer's configuration.
#[derive(Debug, Clone, Copy)]
pub struct ParquetOptions {
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Zstd level of pages (1-22).
    pub zstd_level: i32,
}

/// Why a file is not one this build can rely on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a Strata file (no {FORMAT_KEY} metadata)")]
    Foreign,
    #[error("format version {found:?}; this build reads {FORMAT_VERSION}")]
    Version { found: String },
    #[error("file holds {found:?}, expected {expected}")]
    Signal { found: String, expected: Signal },
    #[error("file is sorted by {found:?}, expected {expected:?}")]
    SortOrder { found: String, expected: String },
}

/// Writer properties of `signal`'s files, with `metadata` added to the format's own keys.
pub fn writer_properties(
    signal: Signal,
    options: ParquetOptions,
    metadata: Vec<KeyValue>,
) -> Result<WriterProperties, parquet::errors::ParquetError> {
    let schema = signal.schema();
    let sorting = signal
        .sort_columns()
        .iter()
        .map(|name| {
            let idx = schema.index_of(name).map_err(|_| {
                parquet::errors::ParquetError::General(format!("sort column {name} missing"))
            })?;
            Ok(SortingColumn {
                column_idx: leaf_index(&schema, idx),
                descending: false,
                nulls_first: true,
            })
        })
        .collect::<Result<Vec<_>, parquet::errors::ParquetError>>()?;
    let mut kv = vec![
        KeyValue::new(FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
        KeyValue::new(SIGNAL_KEY.to_string(), signal.as_str().to_string()),
        KeyValue::new(SORT_KEY.to_string(), signal.sort_columns().join(",")),
    ];
    kv.extend(metadata);
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(options.zstd_level)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .set_data_page_row_count_limit(page_rows(signal))
        .set_sorting_columns(Some(sorting))
        .set_key_value_metadata(Some(kv));
    if signal == Signal::Traces {
        props = props
            .set_column_bloom_filter_enabled(ColumnPath::from(columns::TRACE_ID), true)
            .set_column_bloom_filter_fpp(ColumnPath::from(columns::TRACE_ID), 0.01);
    }
    props = tune_columns(signal, props);
    // Statistics of nested leaves (attribute map keys and values, events, links, histogram
    // buckets) prune nothing, since a query cannot filter pages on what is inside a map or a
    // list, but their min/max cost the writer a string comparison per value (5% of the
    // collector's CPU on spans, benches/RESULTS.md "Spans and log records straight from
    // protobuf"): they are left out.
    let descriptor = parquet::arrow::ArrowSchemaConverter::new().convert(&schema)?;
    for column in descriptor.columns() {
        if column.path().parts().len() > 1 {
            props =
                props.set_column_statistics_enabled(column.path().clone(), EnabledStatistics::None);
        }
    }
    Ok(props.build())
}

/// Rows per data page at most (pages are also closed at 1 MiB). Span and log pages stay
/// small, so that a lookup by trace id or a time filter reads little more than it needs.
/// Metric files have no row limit: most of their 53 leaf columns are empty (histogram,
/// summary, exemplar fields), and the page headers, statistics and index entries of those
/// columns' small pages cost more than the samples (measured on `prometheus_vs.py` data:
/// 2.73 bytes per sample with 8,192-row pages, 1.70 without a row limit).
fn page_rows(signal: Signal) -> usize {
    match signal {
        Signal::Traces | Signal::Logs => 8 * 1024,
        Signal::Metrics => usize::MAX,
    }
}

/// The value of key-value metadata `key` in a file's footer.
pub fn metadata_value<'a>(metadata: &'a ParquetMetaData, key: &str) -> Option<&'a str> {
    metadata
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|k| k.key == key)
        .and_then(|k| k.value.as_deref())
}

/// Checks that a file's footer declares this build's format, `signal`, and `signal`'s sort
/// order (in its metadata and in every row group).
pub fn check(metadata: &ParquetMetaData, signal: Signal) -> Result<(), FormatError> {
    let version = metadata_value(metadata, FORMAT_KEY).ok_or(FormatError::Foreign)?;
    if version != FORMAT_VERSION {
        return Err(FormatError::Version {
            found: version.to_string(),
        });
    }
    let found = metadata_value(metadata, SIGNAL_KEY).unwrap_or_default();
    if found != signal.as_str() {
        return Err(FormatError::Signal {
            found: found.to_string(),
            expected: signal,
        });
    }
    let expected = signal.sort_columns().join(",");
    let declared = metadata_value(metadata, SORT_KEY).unwrap_or_default();
    let sort_error = |found: String| FormatError::SortOrder {
        found,
        expected: expected.clone(),
    };
    if declared != expected {
        return Err(sort_error(declared.to_string()));
    }
    for rg in metadata.row_groups() {
        let names: Vec<String> = rg
            .sorting_columns()
            .map(|cols| {
                cols.iter()
                    .filter(|c| !c.descending)
                    .filter_map(|c| {
                        let idx = usize::try_from(c.column_idx).ok()?;
                        (idx < rg.num_columns()).then(|| rg.column(idx).column_path().string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if names.join(",") != expected {
            return Err(sort_error(names.join(",")));
        }
    }
    Ok(())
}

/// Per-column encodings where the defaults waste work or bytes:
/// - ids unique per row (span ids) never repeat, so a dictionary only costs hashing before the
///   writer falls back to plain pages. They are written with their lengths apart
///   (DELTA_LENGTH_BYTE_ARRAY): all ids have one length, which then costs nothing, and zstd
///   sees only the id bytes;
/// - timestamps and durations are near each other within a file (and sorted within a trace),
///   so deltas bit-pack to a few bits where a dictionary of unique values would not help.
///   Metric points keep the dictionary: a file holds few distinct steps (measured on
///   remote-written counters: 0.06 bytes per point against 0.13 with deltas);
/// - metric values are floats close to their neighbours in the same series: split into byte
///   streams (BYTE_STREAM_SPLIT), their high bytes repeat and zstd takes them away (1.22
///   bytes per point against 1.44 with the default dictionary-then-plain).
fn tune_columns(signal: Signal, mut props: WriterPropertiesBuilder) -> WriterPropertiesBuilder {
    let (unique, deltas, float_streams): (&[&str], &[&str], &[&str]) = match signal {
        Signal::Traces => (
            &[columns::SPAN_ID, columns::PARENT_SPAN_ID],
            &[
                columns::START_TIME,
                columns::END_TIME,
                columns::DURATION_NANOS,
            ],
            &[],
        ),
        Signal::Logs => (&[], &[columns::TIME, columns::OBSERVED_TIME], &[]),
        Signal::Metrics => (&[], &[], &[columns::VALUE_DOUBLE]),
    };
    for c in unique {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(*c), false)
            .set_column_encoding(ColumnPath::from(*c), Encoding::DELTA_LENGTH_BYTE_ARRAY);
    }
    for c in deltas {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(*c), false)
            .set_column_encoding(ColumnPath::from(*c), Encoding::DELTA_BINARY_PACKED);
    }
    for c in float_streams {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(*c), false)
            .set_column_encoding(ColumnPath::from(*c), Encoding::BYTE_STREAM_SPLIT);
    }
    props
}

/// Parquet leaf column index of top-level field `idx` (nested fields before it count once per
/// leaf). Sort columns are primitive, so their leaf is the field itself.
fn leaf_index(schema: &arrow::datatypes::Schema, idx: usize) -> i32 {
    fn leaves(dt: &arrow::datatypes::DataType) -> usize {
        use arrow::datatypes::DataType::*;
        match dt {
            Struct(fields) => fields.iter().map(|f| leaves(f.data_type())).sum(),
            List(f) | LargeList(f) | FixedSizeList(f, _) | Map(f, _) => leaves(f.data_type()),
            _ => 1,
        }
    }
    schema.fields()[..idx]
        .iter()
        .map(|f| leaves(f.data_type()))
        .sum::<usize>() as i32
}
