//! The metric catalog: which Prometheus metric names exist in a time range, with their type,
//! help and unit, read from one `DISTINCT` over the metric identity columns (cheap on sorted,
//! dictionary-encoded Parquet) instead of from samples.
//!
//! Invariants: memory grows with the number of distinct metric identities in the range, never
//! with samples; a stored name that translates to several Prometheus names (a histogram's
//! `_bucket`/`_sum`/`_count`) lists each; of several identities with the same name (a
//! remote-written series stored before and after its metadata arrived), the one with a known
//! type and then with help wins.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use datafusion::prelude::{SessionContext, col};
use strata_schema::columns::{
    IS_MONOTONIC, METRIC_DESCRIPTION, METRIC_NAME, METRIC_TYPE, METRIC_UNIT, SCOPE_NAME,
};
use strata_schema::metrics::{
    EXPONENTIAL_HISTOGRAM, GAUGE, HISTOGRAM, PROMETHEUS_SCOPE, SUM, SUMMARY,
};

use super::naming::metric_name;
use super::select::time_filter;
use crate::error::QueryError;

/// What the metadata API says of one metric.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Metadata {
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

fn string_at(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return String::new();
    }
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => array.as_string_view().value(row).to_string(),
        _ => arrow::util::display::array_value_to_string(array, row).unwrap_or_default(),
    }
}

/// A metric family: its metadata and the series names it has (`_bucket`, `_sum`, `_count`
/// for a histogram).
#[derive(Debug, Clone)]
pub struct Family {
    pub metadata: Metadata,
    pub series_names: Vec<String>,
}

/// Every Prometheus metric family with samples in `[min_ms, max_ms]`, by family name.
pub async fn metrics(
    ctx: &SessionContext,
    min_ms: i64,
    max_ms: i64,
) -> Result<BTreeMap<String, Family>, QueryError> {
    let filter = time_filter(ctx, min_ms, max_ms).await;
    let batches = ctx
        .table("metrics")
        .await?
        .filter(filter)?
        .select(vec![
            col(METRIC_NAME),
            col(METRIC_TYPE),
            col(METRIC_UNIT),
            col(METRIC_DESCRIPTION),
            col(IS_MONOTONIC),
            col(SCOPE_NAME),
        ])?
        .distinct()?
        .collect()
        .await?;
    let mut out = BTreeMap::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let get = |i: usize| string_at(batch.column(i).as_ref(), row);
            let (name, kind, unit, help) = (get(0), get(1), get(2), get(3));
            let monotonic = {
                let a = batch.column(4);
                !a.is_null(row) && a.as_boolean().value(row)
            };
            let native = get(5) == PROMETHEUS_SCOPE;
            let prom = |counter: bool, gauge: bool| {
                if native {
                    name.clone()
                } else {
                    metric_name(&name, &unit, counter, gauge)
                }
            };
            let family = |kind: &'static str, series_names: Vec<String>| Family {
                metadata: Metadata {
                    kind,
                    help: help.clone(),
                    unit: unit.clone(),
                },
                series_names,
            };
            match kind.as_str() {
                GAUGE => {
                    let name = prom(false, true);
                    let kind = if native { "unknown" } else { "gauge" };
                    put(&mut out, name.clone(), family(kind, vec![name]));
                }
                SUM => {
                    let name = prom(monotonic, false);
                    let kind = if monotonic { "counter" } else { "gauge" };
                    put(&mut out, name.clone(), family(kind, vec![name]));
                }
                HISTOGRAM => {
                    let base = prom(false, false);
                    let names = ["_bucket", "_sum", "_count"].map(|s| format!("{base}{s}"));
                    put(&mut out, base, family("histogram", names.to_vec()));
                }
                SUMMARY => {
                    let base = prom(false, false);
                    let names = vec![base.clone(), format!("{base}_sum"), format!("{base}_count")];
                    put(&mut out, base, family("summary", names));
                }
                // Native histograms in Prometheus; not read by this engine.
                EXPONENTIAL_HISTOGRAM => {}
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Adds a family, keeping an existing one of the same name when it says more.
fn put(out: &mut BTreeMap<String, Family>, name: String, family: Family) {
    let rank = |f: &Family| (f.metadata.kind != "unknown", !f.metadata.help.is_empty());
    match out.get(&name) {
        Some(known) if rank(known) >= rank(&family) => {}
        _ => {
            out.insert(name, family);
        }
    }
}
