//! Which rows of a merge are duplicates of rows already taken, looking at rows in merge order.
//!
//! - Spans: by (trace id, span id, kind), within one trace id, which the sort order keeps
//!   together (the kind keeps both halves of a Zipkin shared span).
//! - Metric points: equal in every column (a retried batch), among the rows of one sort key
//!   (metric, service, series, time), which the order makes adjacent. The sort key alone is
//!   not the series: it leaves out the resource, so points of two instances of a service
//!   share it. Rows are encoded whole only in groups of two rows or more, a batch at a time
//!   (cached with the batch, by the caller).
//! - Log records: never.
//!
//! Invariant: memory is bounded by one trace's span ids or one group's rows.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use strata_schema::{Signal, columns};

use crate::merge::MergeError;

/// The row looked at: row `pos` of `batch`, its sort key in `keys`, and the slot where the
/// batch's whole-row encoding is kept once made.
pub struct Row<'a> {
    pub batch: &'a RecordBatch,
    pub pos: usize,
    pub keys: &'a Rows,
    pub whole: &'a mut Option<Rows>,
}

pub struct Dedup {
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
    pub new_key: bool,
}

impl Dedup {
    pub fn new(signal: Signal) -> Result<Self, MergeError> {
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

    fn converter(&self) -> Result<&RowConverter, MergeError> {
        self.whole.as_ref().ok_or_else(|| {
            MergeError::Arrow(arrow::error::ArrowError::InvalidArgumentError(
                "no whole-row encoder".into(),
            ))
        })
    }

    /// Row `pos` of `batch`, every column, as one comparable row, from the batch's cached
    /// encoding (made now if missing).
    fn encode_cached(
        &self,
        batch: &RecordBatch,
        pos: usize,
        cache: &mut Option<Rows>,
    ) -> Result<OwnedRow, MergeError> {
        if cache.is_none() {
            *cache = Some(self.converter()?.convert_columns(batch.columns())?);
        }
        match cache {
            Some(rows) => Ok(rows.row(pos).owned()),
            None => self.encode_one(batch, pos),
        }
    }

    /// Row `pos` of `batch`, every column, encoded alone.
    fn encode_one(&self, batch: &RecordBatch, pos: usize) -> Result<OwnedRow, MergeError> {
        let one = batch.slice(pos, 1);
        Ok(self
            .converter()?
            .convert_columns(one.columns())?
            .row(0)
            .owned())
    }

    /// Whether outputs may only be split where a key starts (spans: a trace stays whole).
    pub fn splits_on_key(&self) -> bool {
        self.signal == Signal::Traces
    }

    /// Whether `row` is kept.
    pub fn keep(&mut self, row: Row<'_>) -> Result<bool, MergeError> {
        let Row {
            batch,
            pos,
            keys,
            whole,
        } = row;
        match self.signal {
            Signal::Traces => {
                let trace = string(batch, columns::TRACE_ID)?.value(pos).as_bytes();
                let span = string(batch, columns::SPAN_ID)?.value(pos).as_bytes();
                let kind = span_kind(batch, pos)?;
                self.new_key = trace != self.trace.as_slice();
                if self.new_key {
                    self.trace.clear();
                    self.trace.extend_from_slice(trace);
                    self.spans.clear();
                }
                let mut key = Vec::with_capacity(span.len() + 4);
                key.extend_from_slice(span);
                key.extend_from_slice(&kind.to_le_bytes());
                Ok(self.spans.insert(key))
            }
            Signal::Metrics => {
                let key = keys.row(pos);
                let same = self.last.as_ref().is_some_and(|l| l.row() == key);
                self.new_key = !same;
                if !same {
                    self.last = Some(key.owned());
                    self.group.clear();
                    self.group_first = Some((batch.clone(), pos));
                    return Ok(true);
                }
                if let Some((first, at)) = self.group_first.take() {
                    let encoded = if same_batch(&first, batch) {
                        self.encode_cached(batch, at, whole)?
                    } else {
                        self.encode_one(&first, at)?
                    };
                    self.group.insert(encoded);
                }
                let encoded = self.encode_cached(batch, pos, whole)?;
                Ok(self.group.insert(encoded))
            }
            Signal::Logs => {
                self.new_key = true;
                Ok(true)
            }
        }
    }
}

/// Whether two batches are one (clones share their columns).
fn same_batch(a: &RecordBatch, b: &RecordBatch) -> bool {
    a.num_columns() > 0
        && a.num_columns() == b.num_columns()
        && Arc::ptr_eq(a.column(0), b.column(0))
        && a.num_rows() == b.num_rows()
}

/// A span's kind (0 when null).
fn span_kind(batch: &RecordBatch, pos: usize) -> Result<i32, MergeError> {
    let kinds = batch
        .column_by_name(columns::KIND)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>())
        .ok_or_else(|| {
            MergeError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                "{} is not an int32 column",
                columns::KIND
            )))
        })?;
    Ok(if kinds.is_null(pos) {
        0
    } else {
        kinds.value(pos)
    })
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
