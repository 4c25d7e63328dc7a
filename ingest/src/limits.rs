//! Per-tenant ingest limits applied to a request's converted rows, the same way for every
//! receiver: items with an attribute or label value over the tenant's length are left out,
//! then the request takes its rows and bytes from the tenant's rate buckets (or is refused
//! whole, to be retried), then metric points of series past the tenant's active-series limit
//! are left out.
//!
//! Invariant: what is left out is counted by tenant and reason in the limits' metrics, marked
//! row by row in [`Rejected::kept`], and answered as rejected items (OTLP partial success; a 400 for remote write, which Prometheus
//! does not retry); a refusal of the whole request takes nothing from the buckets.

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::UInt64Type;
use strata_schema::Signal;
use strata_schema::columns::SERIES_ID;
use strata_server::limits::{Overrides, Refusal};

use crate::otlp::{Converted, Rejected};
use crate::sink::IngestError;

/// What a refusal of the whole request is on the wire.
pub fn to_ingest_error(r: Refusal) -> IngestError {
    IngestError::Limited {
        retry_after: r.retry_after_secs(),
        message: r.message,
    }
}

/// `converted` within `tenant`'s limits; `bytes` is the request's decoded size. Returns the
/// rows to store and what the limits left out.
pub fn apply(
    overrides: &Overrides,
    tenant: &str,
    signal: Signal,
    bytes: usize,
    mut converted: Converted,
) -> Result<(Converted, Rejected), IngestError> {
    let mut left_out = Rejected::default();
    let Some(mut batch) = converted.batch.take() else {
        return Ok((converted, left_out));
    };
    let limits = overrides.limits(tenant);
    let max_value = limits.max_attribute_value_bytes;
    if max_value > 0
        && let Some(keep) = strata_schema::value_length::rows_within(&batch, max_value)
    {
        left_out.kept = Some(keep.clone());
        let n = drop_rows(&mut batch, keep)?;
        overrides.refused(tenant, "value_length", n);
        left_out.add(
            n,
            format!("{n} items have an attribute or label value longer than {max_value} bytes"),
        );
    }
    if let Err(r) = overrides.admit_ingest(tenant, batch.num_rows() as u64, bytes as u64) {
        let n = (batch.num_rows() + left_out.count as usize) as u64;
        overrides.refused(tenant, r.reason, n);
        return Err(to_ingest_error(r));
    }
    if signal == Signal::Metrics
        && let Some(ids) = batch.column_by_name(SERIES_ID)
        && let Some(keep) =
            overrides.admit_series(tenant, ids.as_primitive::<UInt64Type>().values())
    {
        left_out.kept = Some(match left_out.kept.take() {
            None => keep.clone(),
            // Over the rows the first pass kept: back onto every row of the request.
            Some(first) => {
                let mut second = keep.iter().copied();
                first
                    .into_iter()
                    .map(|k| k && second.next().unwrap_or(false))
                    .collect()
            }
        });
        let n = drop_rows(&mut batch, keep)?;
        overrides.refused(tenant, "series", n);
        left_out.add(
            n,
            format!(
                "{n} points of new series refused: tenant {tenant} is at its limit of {} active series",
                limits.max_active_series
            ),
        );
    }
    converted.batch = (batch.num_rows() > 0).then_some(batch);
    Ok((converted, left_out))
}

/// Keeps the rows marked `true`; returns how many were dropped.
fn drop_rows(
    batch: &mut arrow::record_batch::RecordBatch,
    keep: Vec<bool>,
) -> Result<u64, IngestError> {
    let dropped = keep.iter().filter(|k| !**k).count() as u64;
    *batch = filter_record_batch(batch, &BooleanArray::from(keep))
        .map_err(|e| IngestError::Internal(e.to_string()))?;
    Ok(dropped)
}
