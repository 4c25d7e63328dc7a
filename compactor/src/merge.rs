//! The streaming k-way merge of one partition's sorted files into new sorted files.
//!
//! Each input is read a batch at a time (its batch size set so that all inputs together stay
//! within the memory limit); the sort-key columns of each batch are turned into byte-comparable
//! rows (`arrow::row`), and a heap of the inputs' current rows yields the rows in order. Rows
//! are gathered into output batches with `interleave` and written through the storage's format
//! ([`strata_storage::format::writer_properties`]), so outputs keep the sort order, the bloom
//! filter on `trace_id`, page statistics and indexes, encodings and format metadata. An
//! output file is closed once it reaches the target size, at a key boundary (a trace never
//! straddles two outputs), and the next one is started: files are split by key range.
//!
//! Duplicates: spans by (trace id, span id) — within one trace id, which the order keeps
//! together; metric points that are equal in every column (a retried batch) — among the rows
//! of one sort key (metric, service, series, time), which the order makes adjacent; the sort
//! key alone is not the series (it leaves out the resource); log records are all kept.
//!
//! Invariants: the rows out are the rows in, in sort order, less the duplicates; memory is
//! bounded by the limit plus one output row group, whatever the partition's size; an input
//! that cannot be read fails the merge (nothing is committed), naming the file.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::KeyValue;
use strata_schema::{Signal, columns};
use strata_storage::format::{self, ParquetOptions};
use strata_storage::reader::FileReader;

/// Rows per output batch handed to the writer.
const OUTPUT_BATCH_ROWS: usize = 8192;
/// Bounds of an input's batch size.
const MIN_INPUT_BATCH: usize = 64;
const MAX_INPUT_BATCH: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("input {path}: {source}")]
    Input {
        path: Path,
        source: parquet::errors::ParquetError,
    },
    #[error("input {path} is not usable: {reason}")]
    Unusable { path: Path, reason: String },
    #[error("output {path}: {source}")]
    Output {
        path: Path,
        source: parquet::errors::ParquetError,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// One opened input, checked against the format.
pub struct Opened {
    pub meta: ObjectMeta,
    builder: ParquetRecordBatchStreamBuilder<FileReader>,
    /// Uncompressed bytes per row, from the footer.
    row_bytes: usize,
    pub rows: u64,
    /// The file's `strata.wal_entries*` metadata, carried into the outputs.
    pub wal_entries: Vec<KeyValue>,
}

/// Opens `meta` and checks that it is a Strata file of `signal` in its sort order.
pub async fn open(
    store: Arc<dyn ObjectStore>,
    meta: ObjectMeta,
    signal: Signal,
) -> Result<Opened, MergeError> {
    let reader = FileReader::new(store, meta.location.clone(), meta.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|source| MergeError::Input {
            path: meta.location.clone(),
            source,
        })?;
    let metadata = builder.metadata().clone();
    format::check(&metadata, signal).map_err(|e| MergeError::Unusable {
        path: meta.location.clone(),
        reason: e.to_string(),
    })?;
    if builder.schema().fields() != signal.schema().fields() {
        return Err(MergeError::Unusable {
            path: meta.location.clone(),
            reason: "its schema is not this build's".into(),
        });
    }
    let rows = metadata.file_metadata().num_rows().max(0) as u64;
    let bytes: i64 = metadata
        .row_groups()
        .iter()
        .map(|g| g.total_byte_size())
        .sum();
    let wal_entries = metadata
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter(|k| k.key.starts_with(format::wal_entries::KEY))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Opened {
        meta,
        builder,
        row_bytes: (bytes.max(0) as usize / rows.max(1) as usize).max(1),
        rows,
        wal_entries,
    })
}

/// What a merge wrote.
#[derive(Debug, Default, Clone)]
pub struct Merged {
    /// Output names (in the partition directory), with their sizes.
    pub outputs: Vec<(String, u64)>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub duplicates: u64,
}

/// Where and how a merge writes.
pub struct Output {
    pub store: Arc<dyn ObjectStore>,
    /// The partition directory (absolute object path).
    pub dir: Path,
    pub signal: Signal,
    pub options: ParquetOptions,
    pub target_file_bytes: u64,
    /// Metadata every output carries (the inputs' WAL entries).
    pub metadata: Vec<KeyValue>,
    /// Called with each output's name before it is written, so a failed pass can remove it.
    pub on_create: Box<dyn FnMut(&str) + Send>,
}

struct Cursor {
    stream: ParquetRecordBatchStream<FileReader>,
    path: Path,
    batch: RecordBatch,
    rows: Rows,
    pos: usize,
    /// Index of `batch` in the merge's list of held batches.
    held: usize,
}

/// Merges `inputs` (opened by [`open`]) into new files; `memory` bounds the input batches.
pub async fn merge(
    inputs: Vec<Opened>,
    memory: usize,
    mut out: Output,
) -> Result<Merged, MergeError> {
    let signal = out.signal;
    let schema = signal.schema();
    let key_idx: Vec<usize> = signal
        .sort_columns()
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<_, _>>()?;
    let converter = RowConverter::new(
        key_idx
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )?;
    let per_row: usize = inputs.iter().map(|i| i.row_bytes).sum::<usize>().max(1);
    let batch_rows = (memory / per_row).clamp(MIN_INPUT_BATCH, MAX_INPUT_BATCH);
    let mut merged = Merged {
        rows_in: inputs.iter().map(|i| i.rows).sum(),
        ..Default::default()
    };
    let mut held: Vec<RecordBatch> = Vec::new();
    let mut cursors: Vec<Cursor> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let path = input.meta.location.clone();
        let stream = input
            .builder
            .with_batch_size(batch_rows)
            .build()
            .map_err(|source| MergeError::Input {
                path: path.clone(),
                source,
            })?;
        if let Some(c) = first_batch(stream, path, &converter, &key_idx, &mut held).await? {
            cursors.push(c);
        }
    }
    let mut heap: BinaryHeap<Reverse<(OwnedRow, usize)>> = cursors
        .iter()
        .enumerate()
        .map(|(i, c)| Reverse((c.rows.row(c.pos).owned(), i)))
        .collect();
    let mut dedup = Dedup::new(signal)?;
    let mut pending: Vec<(usize, usize)> = Vec::with_capacity(OUTPUT_BATCH_ROWS);
    let mut writer: Option<(String, AsyncArrowWriter<BufWriter>)> = None;
    let mut split_due = false;
    while let Some(Reverse((_, i))) = heap.pop() {
        // Take rows from input `i` while they sort no later than every other input's head.
        loop {
            let (keep, at) = {
                let c = &cursors[i];
                (dedup.keep(&c.batch, c.pos, &c.rows)?, (c.held, c.pos))
            };
            let boundary = dedup.new_key;
            if split_due && boundary {
                flush(&held, &mut pending, &mut writer, &mut out, &mut merged).await?;
                finish(&mut writer, &mut out, &mut merged).await?;
                split_due = false;
            }
            if keep {
                pending.push(at);
            } else {
                merged.duplicates += 1;
            }
            if pending.len() >= OUTPUT_BATCH_ROWS {
                flush(&held, &mut pending, &mut writer, &mut out, &mut merged).await?;
                held = keep_current(&mut cursors, held);
                split_due = writer.as_ref().is_some_and(|(_, w)| {
                    (w.bytes_written() + w.in_progress_size()) as u64 >= out.target_file_bytes
                });
                if split_due && !dedup.splits_on_key() {
                    finish(&mut writer, &mut out, &mut merged).await?;
                    split_due = false;
                }
            }
            if !advance(&mut cursors[i], &converter, &key_idx, &mut held).await? {
                break;
            }
            let behind = {
                let c = &cursors[i];
                let row = c.rows.row(c.pos);
                match heap.peek() {
                    Some(Reverse((top, _))) if row.cmp(&top.row()) == Ordering::Greater => {
                        Some(row.owned())
                    }
                    _ => None,
                }
            };
            if let Some(row) = behind {
                heap.push(Reverse((row, i)));
                break;
            }
        }
    }
    flush(&held, &mut pending, &mut writer, &mut out, &mut merged).await?;
    finish(&mut writer, &mut out, &mut merged).await?;
    Ok(merged)
}

async fn first_batch(
    mut stream: ParquetRecordBatchStream<FileReader>,
    path: Path,
    converter: &RowConverter,
    key_idx: &[usize],
    held: &mut Vec<RecordBatch>,
) -> Result<Option<Cursor>, MergeError> {
    while let Some(batch) = next(&mut stream, &path).await? {
        if batch.num_rows() == 0 {
            continue;
        }
        let rows = to_rows(converter, key_idx, &batch)?;
        held.push(batch.clone());
        return Ok(Some(Cursor {
            stream,
            path,
            batch,
            rows,
            pos: 0,
            held: held.len() - 1,
        }));
    }
    Ok(None)
}

async fn next(
    stream: &mut ParquetRecordBatchStream<FileReader>,
    path: &Path,
) -> Result<Option<RecordBatch>, MergeError> {
    stream
        .next()
        .await
        .transpose()
        .map_err(|source| MergeError::Input {
            path: path.clone(),
            source,
        })
}

fn to_rows(
    converter: &RowConverter,
    key_idx: &[usize],
    batch: &RecordBatch,
) -> Result<Rows, MergeError> {
    let cols: Vec<_> = key_idx.iter().map(|&i| batch.column(i).clone()).collect();
    Ok(converter.convert_columns(&cols)?)
}

/// Moves `c` to its next row, loading its next batch when this one is done; false at its end.
async fn advance(
    c: &mut Cursor,
    converter: &RowConverter,
    key_idx: &[usize],
    held: &mut Vec<RecordBatch>,
) -> Result<bool, MergeError> {
    c.pos += 1;
    if c.pos < c.batch.num_rows() {
        return Ok(true);
    }
    while let Some(batch) = next(&mut c.stream, &c.path).await? {
        if batch.num_rows() == 0 {
            continue;
        }
        c.rows = to_rows(converter, key_idx, &batch)?;
        held.push(batch.clone());
        c.batch = batch;
        c.pos = 0;
        c.held = held.len() - 1;
        return Ok(true);
    }
    Ok(false)
}

/// After a flush only the cursors' current batches are still needed: renumber them.
fn keep_current(cursors: &mut [Cursor], held: Vec<RecordBatch>) -> Vec<RecordBatch> {
    let mut kept = Vec::with_capacity(cursors.len());
    for c in cursors.iter_mut() {
        kept.push(held[c.held].clone());
        c.held = kept.len() - 1;
    }
    kept
}

/// Writes the pending rows as one batch, opening an output file first when none is open.
async fn flush(
    held: &[RecordBatch],
    pending: &mut Vec<(usize, usize)>,
    writer: &mut Option<(String, AsyncArrowWriter<BufWriter>)>,
    out: &mut Output,
    merged: &mut Merged,
) -> Result<(), MergeError> {
    if pending.is_empty() {
        return Ok(());
    }
    let refs: Vec<&RecordBatch> = held.iter().collect();
    let batch = arrow::compute::interleave_record_batch(&refs, pending)?;
    pending.clear();
    if writer.is_none() {
        let name = strata_storage::layout::compacted_name();
        let path = out.dir.clone().join(name.as_str());
        (out.on_create)(&name);
        let props = format::writer_properties(out.signal, out.options, out.metadata.clone())
            .map_err(|source| MergeError::Output {
                path: path.clone(),
                source,
            })?;
        let w = AsyncArrowWriter::try_new(
            BufWriter::new(out.store.clone(), path.clone()),
            out.signal.schema(),
            Some(props),
        )
        .map_err(|source| MergeError::Output { path, source })?;
        *writer = Some((name, w));
    }
    if let Some((name, w)) = writer.as_mut() {
        w.write(&batch).await.map_err(|source| MergeError::Output {
            path: out.dir.clone().join(name.as_str()),
            source,
        })?;
    }
    merged.rows_out += batch.num_rows() as u64;
    Ok(())
}

/// Closes the open output file, if any.
async fn finish(
    writer: &mut Option<(String, AsyncArrowWriter<BufWriter>)>,
    out: &mut Output,
    merged: &mut Merged,
) -> Result<(), MergeError> {
    if let Some((name, w)) = writer.take() {
        let mut w = w;
        let path = out.dir.clone().join(name.as_str());
        w.finish()
            .await
            .map_err(|source| MergeError::Output { path, source })?;
        merged.outputs.push((name, w.bytes_written() as u64));
    }
    Ok(())
}

/// Which rows are duplicates of rows already taken.
struct Dedup {
    signal: Signal,
    /// Spans: the current trace id and the span ids taken in it.
    trace: Vec<u8>,
    spans: HashSet<Vec<u8>>,
    /// Metrics: the sort key of the last row taken ...
    last: Option<OwnedRow>,
    /// ... the first row of its group (rows of one sort key), not yet encoded whole ...
    group_first: Option<(RecordBatch, usize)>,
    /// ... and the whole-row encodings of the group's rows taken.
    group: HashSet<OwnedRow>,
    /// Encodes whole rows (every column), for metrics.
    whole: Option<RowConverter>,
    /// Whether the row just looked at starts a new key (a trace id, for spans).
    new_key: bool,
}

impl Dedup {
    fn new(signal: Signal) -> Result<Self, MergeError> {
        let whole = match signal {
            Signal::Metrics => Some(RowConverter::new(
                signal
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?),
            _ => None,
        };
        Ok(Self {
            signal,
            trace: Vec::new(),
            spans: HashSet::new(),
            last: None,
            group_first: None,
            group: HashSet::new(),
            whole,
            new_key: true,
        })
    }

    /// Row `pos` of `batch`, every column, as one comparable row.
    fn encode_whole(&self, batch: &RecordBatch, pos: usize) -> Result<OwnedRow, MergeError> {
        let converter = self.whole.as_ref().ok_or_else(|| {
            MergeError::Arrow(arrow::error::ArrowError::InvalidArgumentError(
                "no whole-row encoder".into(),
            ))
        })?;
        let one = batch.slice(pos, 1);
        Ok(converter.convert_columns(one.columns())?.row(0).owned())
    }

    /// Whether outputs may only be split where a key starts (spans: a trace stays whole).
    fn splits_on_key(&self) -> bool {
        self.signal == Signal::Traces
    }

    /// Whether row `pos` of `batch` (its sort keys in `rows`) is kept.
    fn keep(&mut self, batch: &RecordBatch, pos: usize, rows: &Rows) -> Result<bool, MergeError> {
        match self.signal {
            Signal::Traces => {
                let trace = string(batch, columns::TRACE_ID)?.value(pos).as_bytes();
                let span = string(batch, columns::SPAN_ID)?.value(pos).as_bytes();
                self.new_key = trace != self.trace.as_slice();
                if self.new_key {
                    self.trace.clear();
                    self.trace.extend_from_slice(trace);
                    self.spans.clear();
                }
                Ok(self.spans.insert(span.to_vec()))
            }
            Signal::Metrics => {
                // The sort key (metric, service, series id, time) does not hold the resource,
                // so points of two instances of a service can share it: a point is a duplicate
                // only when its whole row equals one already taken with that key.
                let row = rows.row(pos);
                let same = self.last.as_ref().is_some_and(|l| l.row() == row);
                self.new_key = !same;
                if !same {
                    self.last = Some(row.owned());
                    self.group.clear();
                    self.group_first = Some((batch.clone(), pos));
                    return Ok(true);
                }
                if let Some((first, at)) = self.group_first.take() {
                    let encoded = self.encode_whole(&first, at)?;
                    self.group.insert(encoded);
                }
                let encoded = self.encode_whole(batch, pos)?;
                Ok(self.group.insert(encoded))
            }
            Signal::Logs => {
                self.new_key = true;
                Ok(true)
            }
        }
    }
}

fn string<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a StringArray, MergeError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .filter(|c| c.null_count() == 0)
        .ok_or_else(|| {
            MergeError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                "{name} is not a non-null string column"
            )))
        })
}
