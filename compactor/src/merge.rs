//! The streaming k-way merge of one partition's sorted files into new sorted files.
//!
//! An input open for streaming costs more than its batches: the Parquet reader holds one
//! decoder per leaf column (each with its own zstd context, ~100 KiB) and the compressed
//! column chunks of its current row group. So the small inputs (each decoded smaller than its
//! decoders: a collector's flushes) are read whole up front, one after another, into one
//! batch whose rows are sorted by key, and their readers dropped; that batch is one input of
//! the merge. A larger input is streamed a batch at a time, its batch size set so that the
//! streamed inputs' batches fit what the limit leaves. [`Opened::cost`] estimates what an
//! input holds while it is merged, and [`take_group`] picks the inputs of one merge so that
//! their costs fit the limit: a partition bigger than that is merged in rounds, each its own
//! commit.
//!
//! The sort-key columns of each batch are turned into byte-comparable rows (`arrow::row`), and
//! a heap of the inputs' current rows yields the rows in order. Rows are gathered into output
//! batches with [`strata_storage::format::gather`] and written through the storage's format
//! ([`strata_storage::format::writer_properties`]), so outputs keep the sort order, the bloom
//! filter on `trace_id`, page statistics and indexes, encodings and format metadata. An
//! output file is closed once it reaches the target size, at a key boundary (a trace never
//! straddles two outputs), and the next one is started: files are split by key range.
//! Duplicates are dropped as [`crate::dedup`] decides, row by row in merge order.
//!
//! Invariants: the rows out are the rows in, in sort order, less the duplicates; memory is
//! bounded by the limit (as far as [`Opened::cost`] estimates it) plus one output row group,
//! whatever the partition's size; an input that cannot be read fails the merge (nothing is
//! committed), naming the file.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use strata_schema::Signal;
use strata_storage::format::{self, ParquetOptions};
use strata_storage::reader::FileReader;

use crate::dedup::{Dedup, Row};

/// Rows per output batch handed to the writer.
const OUTPUT_BATCH_ROWS: usize = 8192;
/// Bounds of a streamed input's batch size.
const MIN_INPUT_BATCH: usize = 64;
const MAX_INPUT_BATCH: usize = 8192;
/// Rows per batch of an input read whole.
const MAX_DRAINED_BATCH: usize = 64 * 1024;
/// What a streamed input's reader holds per leaf column: a page decoder with a zstd
/// decompression context (~96 KiB, measured) and an idle compression context.
const DECODER_BYTES: usize = 128 * 1024;
/// Decoded Arrow bytes per uncompressed Parquet byte until [`decoded_ratio`] measured the
/// partition's: dictionary-encoded strings and maps expand when decoded (measured on a
/// collector's files: logs 5, spans 8, metric points 25).
pub const DEFAULT_DECODED_RATIO: f64 = 8.0;
/// The share of the memory limit that the inputs' fixed costs may take; the rest is for the
/// streamed inputs' batches.
const FIXED_SHARE_PERCENT: usize = 75;

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

/// One opened input, checked against the format: its object and its footer, from which a
/// reader is made without reading the footer again.
pub struct Opened {
    pub meta: ObjectMeta,
    store: Arc<dyn ObjectStore>,
    footer: ArrowReaderMetadata,
}

/// Opens `meta` (reads its footer) and checks that it is a Strata file of `signal` in its sort
/// order.
pub async fn open(
    store: Arc<dyn ObjectStore>,
    meta: ObjectMeta,
    signal: Signal,
) -> Result<Opened, MergeError> {
    let mut reader = FileReader::new(store.clone(), meta.location.clone(), meta.size);
    let footer = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
        .await
        .map_err(|source| MergeError::Input {
            path: meta.location.clone(),
            source,
        })?;
    checked(store, meta, footer, signal)
}

/// An input whose footer is known already (an output this process just wrote), checked like
/// [`open`]'s.
pub fn open_written(
    store: Arc<dyn ObjectStore>,
    meta: ObjectMeta,
    footer: Arc<ParquetMetaData>,
    signal: Signal,
) -> Result<Opened, MergeError> {
    let footer =
        ArrowReaderMetadata::try_new(footer, ArrowReaderOptions::new()).map_err(|source| {
            MergeError::Input {
                path: meta.location.clone(),
                source,
            }
        })?;
    checked(store, meta, footer, signal)
}

fn checked(
    store: Arc<dyn ObjectStore>,
    meta: ObjectMeta,
    footer: ArrowReaderMetadata,
    signal: Signal,
) -> Result<Opened, MergeError> {
    format::check(footer.metadata(), signal).map_err(|e| MergeError::Unusable {
        path: meta.location.clone(),
        reason: e.to_string(),
    })?;
    if footer.schema().fields() != signal.schema().fields() {
        return Err(MergeError::Unusable {
            path: meta.location.clone(),
            reason: "its schema is not this build's".into(),
        });
    }
    Ok(Opened {
        meta,
        store,
        footer,
    })
}

impl Opened {
    pub fn rows(&self) -> u64 {
        self.footer.metadata().file_metadata().num_rows().max(0) as u64
    }

    /// The file's `strata.wal_entries*` metadata, carried into the outputs.
    pub fn wal_entries(&self) -> Vec<KeyValue> {
        self.footer
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|kv| {
                kv.iter()
                    .filter(|k| k.key.starts_with(format::wal_entries::KEY))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Uncompressed bytes of its column chunks, from the footer.
    fn uncompressed(&self) -> usize {
        let bytes: i64 = self
            .footer
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.total_byte_size())
            .sum();
        bytes.max(0) as usize
    }

    /// Leaf columns: one decoder each when streamed.
    fn leaves(&self) -> usize {
        self.footer
            .metadata()
            .file_metadata()
            .schema_descr()
            .num_columns()
    }

    /// Compressed bytes of its largest row group: what a streaming reader fetches at once.
    fn largest_row_group(&self) -> usize {
        self.footer
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.compressed_size().max(0) as usize)
            .max()
            .unwrap_or(0)
    }

    /// Its rows decoded, at `ratio` decoded bytes per uncompressed byte.
    fn decoded(&self, ratio: f64) -> usize {
        (self.uncompressed() as f64 * ratio) as usize
    }

    /// Whether the input is read whole before the merge: when its decoded rows take less
    /// memory than a streaming reader's decoders would.
    fn drains(&self, ratio: f64) -> bool {
        self.decoded(ratio) <= self.leaves() * DECODER_BYTES
    }

    /// Decoded bytes of one row.
    fn decoded_row(&self, ratio: f64) -> usize {
        (self.decoded(ratio) / self.rows().max(1) as usize).max(1)
    }

    /// What the input holds while it is merged, besides a streamed input's batch: all its
    /// rows twice if drained (read, then gathered into one batch), else its decoders and its
    /// current row group's compressed chunks.
    pub fn cost(&self, ratio: f64) -> usize {
        if self.drains(ratio) {
            self.decoded(ratio).saturating_mul(2)
        } else {
            self.leaves() * DECODER_BYTES + self.largest_row_group()
        }
    }

    /// A reader of its rows, `batch_rows` at a time (the footer is not read again).
    fn stream(
        &self,
        batch_rows: usize,
    ) -> Result<ParquetRecordBatchStream<FileReader>, MergeError> {
        let reader = FileReader::new(
            self.store.clone(),
            self.meta.location.clone(),
            self.meta.size,
        );
        ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.footer.clone())
            .with_batch_size(batch_rows)
            .build()
            .map_err(|source| MergeError::Input {
                path: self.meta.location.clone(),
                source,
            })
    }

    /// All the input's rows; its reader (and decoders) are gone when this returns.
    async fn read_whole(&self) -> Result<Vec<RecordBatch>, MergeError> {
        let mut stream = self.stream(self.rows().clamp(1, MAX_DRAINED_BATCH as u64) as usize)?;
        let mut batches = Vec::new();
        while let Some(b) = next(&mut stream, &self.meta.location).await? {
            batches.push(b);
        }
        Ok(batches)
    }
}

/// Measures decoded bytes per uncompressed byte on one file of a partition (read whole), for
/// the costs of the partition's inputs: files of one partition have one shape.
pub async fn decoded_ratio(input: &Opened) -> Result<f64, MergeError> {
    let decoded: usize = input
        .read_whole()
        .await?
        .iter()
        .map(RecordBatch::get_array_memory_size)
        .sum();
    Ok((decoded as f64 / input.uncompressed().max(1) as f64).max(1.0))
}

/// The memory a merge may use, and how much its inputs take decoded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory: usize,
    /// Decoded bytes per uncompressed byte ([`decoded_ratio`], or [`DEFAULT_DECODED_RATIO`]).
    pub decoded_ratio: f64,
}

/// Takes from `pool` the inputs of one merge: smallest first, as many as their costs fit in
/// the memory limit (a share of it: the rest is for batches), and two at least; none if the
/// pool holds fewer than two. Smallest first, so that outputs of earlier rounds, larger, are
/// merged last and rewritten as rarely as possible.
pub fn take_group(pool: &mut Vec<Opened>, limits: Limits) -> Vec<Opened> {
    if pool.len() < 2 {
        return Vec::new();
    }
    pool.sort_by_key(|o| std::cmp::Reverse(o.meta.size));
    let budget = limits.memory / 100 * FIXED_SHARE_PERCENT;
    let mut group: Vec<Opened> = Vec::new();
    let mut used = 0usize;
    while let Some(next) = pool.last() {
        let cost = next.cost(limits.decoded_ratio);
        if group.len() >= 2 && used.saturating_add(cost) > budget {
            break;
        }
        used = used.saturating_add(cost);
        group.extend(pool.pop());
    }
    group
}

/// One output file of a merge.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its name in the partition directory.
    pub name: String,
    pub size: u64,
    pub footer: Arc<ParquetMetaData>,
}

/// What a merge wrote.
#[derive(Debug, Default, Clone)]
pub struct Merged {
    pub outputs: Vec<Written>,
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

/// Where a cursor's batches come from.
enum Source {
    /// The small inputs, read whole (their readers gone), as one batch and the order of its
    /// rows; handed out a slice of that order at a time.
    Sorted {
        all: RecordBatch,
        order: Vec<u32>,
        next: usize,
    },
    Stream(ParquetRecordBatchStream<FileReader>),
}

impl Source {
    async fn next(&mut self, path: &Path) -> Result<Option<RecordBatch>, MergeError> {
        match self {
            Source::Sorted { all, order, next } => {
                if *next >= order.len() {
                    return Ok(None);
                }
                let end = (*next + OUTPUT_BATCH_ROWS).min(order.len());
                let indices = UInt32Array::from(order[*next..end].to_vec());
                *next = end;
                Ok(Some(arrow::compute::take_record_batch(all, &indices)?))
            }
            Source::Stream(stream) => next(stream, path).await,
        }
    }
}

struct Cursor {
    source: Source,
    path: Path,
    batch: RecordBatch,
    rows: Rows,
    pos: usize,
    /// Index of `batch` in the merge's list of held batches.
    held: usize,
    /// `batch`'s rows encoded whole, once the dedup needed them.
    whole: Option<Rows>,
}

/// Merges `inputs` (a [`take_group`] of the same `limits`) into new files.
pub async fn merge(
    inputs: Vec<Opened>,
    limits: Limits,
    mut out: Output,
) -> Result<Merged, MergeError> {
    let ratio = limits.decoded_ratio;
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
    let fixed: usize = inputs.iter().map(|i| i.cost(ratio)).sum();
    let per_row: usize = inputs
        .iter()
        .filter(|i| !i.drains(ratio))
        .map(|i| i.decoded_row(ratio))
        .sum::<usize>()
        .max(1);
    let batch_rows =
        (limits.memory.saturating_sub(fixed) / per_row).clamp(MIN_INPUT_BATCH, MAX_INPUT_BATCH);
    let mut merged = Merged {
        rows_in: inputs.iter().map(Opened::rows).sum(),
        ..Default::default()
    };
    let mut held: Vec<RecordBatch> = Vec::new();
    let mut sources: Vec<(Path, Source)> = Vec::new();
    let (drained, streamed): (Vec<Opened>, Vec<Opened>) =
        inputs.into_iter().partition(|i| i.drains(ratio));
    if !drained.is_empty() {
        let path = Path::from(format!("{} small inputs", drained.len()));
        sources.push((
            path,
            sort_drained(drained, &schema, &converter, &key_idx).await?,
        ));
    }
    for input in streamed {
        let stream = input.stream(batch_rows)?;
        sources.push((input.meta.location.clone(), Source::Stream(stream)));
    }
    let mut cursors: Vec<Cursor> = Vec::with_capacity(sources.len());
    for (path, source) in sources {
        let mut c = Cursor {
            source,
            path,
            batch: RecordBatch::new_empty(schema.clone()),
            rows: converter.empty_rows(0, 0),
            pos: 0,
            held: 0,
            whole: None,
        };
        if load(&mut c, &converter, &key_idx, &mut held).await? {
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
                let c = &mut cursors[i];
                let at = (c.held, c.pos);
                let row = Row {
                    batch: &c.batch,
                    pos: c.pos,
                    keys: &c.rows,
                    whole: &mut c.whole,
                };
                (dedup.keep(row)?, at)
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

/// Reads the small inputs whole, one after another (so that one reader at a time holds its
/// decoders), into one batch, and sorts its rows by key: a merge of many small files then
/// takes its rows from one batch instead of interleaving hundreds.
async fn sort_drained(
    inputs: Vec<Opened>,
    schema: &arrow::datatypes::SchemaRef,
    converter: &RowConverter,
    key_idx: &[usize],
) -> Result<Source, MergeError> {
    let mut batches = Vec::new();
    for input in &inputs {
        batches.extend(input.read_whole().await?);
    }
    drop(inputs);
    let all = arrow::compute::concat_batches(schema, &batches)?;
    drop(batches);
    let keys = to_rows(converter, key_idx, &all)?;
    let rows = u32::try_from(all.num_rows()).map_err(|_| {
        MergeError::Arrow(arrow::error::ArrowError::InvalidArgumentError(
            "more than 2^32 rows of small inputs in one merge".into(),
        ))
    })?;
    let mut order: Vec<u32> = (0..rows).collect();
    order.sort_unstable_by(|&a, &b| keys.row(a as usize).cmp(&keys.row(b as usize)));
    Ok(Source::Sorted {
        all,
        order,
        next: 0,
    })
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
    load(c, converter, key_idx, held).await
}

/// Loads `c`'s next non-empty batch (held until the next flush) at its first row; false if
/// its source is done.
async fn load(
    c: &mut Cursor,
    converter: &RowConverter,
    key_idx: &[usize],
    held: &mut Vec<RecordBatch>,
) -> Result<bool, MergeError> {
    while let Some(batch) = c.source.next(&c.path).await? {
        if batch.num_rows() == 0 {
            continue;
        }
        c.rows = to_rows(converter, key_idx, &batch)?;
        held.push(batch.clone());
        c.batch = batch;
        c.pos = 0;
        c.held = held.len() - 1;
        c.whole = None;
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
    // `pending` is not empty, so neither is `held`.
    let batch = format::gather::gather(&refs[0].schema(), &refs, pending)?;
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
    if let Some((name, mut w)) = writer.take() {
        let path = out.dir.clone().join(name.as_str());
        let footer = w
            .finish()
            .await
            .map_err(|source| MergeError::Output { path, source })?;
        merged.outputs.push(Written {
            name,
            size: w.bytes_written() as u64,
            footer: Arc::new(footer),
        });
    }
    Ok(())
}
