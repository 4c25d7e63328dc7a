//! Series selection: a PromQL vector selector becomes one DataFusion scan of the `metrics`
//! table, with the time range, the date partitions and the metric name pushed into the scan.
//!
//! The name filter is exact for names stored in Prometheus's model and a superset for OTLP
//! names (any stored name whose Prometheus translation is a word prefix of the wanted name, so
//! unit and type suffixes can follow); every label matcher, the name included, is then checked
//! on the translated series, so the result is exact either way.
//!
//! Scans stream: batches are turned into series as they arrive ([`Gather`]), so a query's
//! memory is bounded by its sample limit, not by the rows scanned.

use datafusion::dataframe::DataFrame;
use datafusion::prelude::{Expr, SessionContext, col, lit};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::VectorSelector;
use strata_schema::columns::{METRIC_NAME, METRIC_TYPE, TIME};
use strata_schema::metrics::{HISTOGRAM, SUMMARY, from_batches};

use super::gather::{Gather, NUMBER_COLUMNS};
use super::value::{Labels, NAME, RawSeries};
use crate::error::QueryError;

/// The metric name a selector asks for, when it names exactly one.
pub fn selector_name(vs: &VectorSelector) -> Option<&str> {
    vs.name.as_deref().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.as_str())
    })
}

fn matcher_ok(m: &Matcher, labels: &Labels) -> bool {
    m.is_match(labels.get(&m.name))
}

/// Whether `labels` satisfy the selector (its name and every matcher).
pub fn matches(vs: &VectorSelector, labels: &Labels) -> bool {
    if let Some(name) = &vs.name
        && labels.name() != name
    {
        return false;
    }
    let all = vs.matchers.matchers.iter().all(|m| matcher_ok(m, labels));
    let any = vs.matchers.or_matchers.is_empty()
        || vs
            .matchers
            .or_matchers
            .iter()
            .any(|group| group.iter().all(|m| matcher_ok(m, labels)));
    all && any
}

/// Whether the selector's name matchers accept `name` (used to skip whole metrics early).
pub fn name_ok(vs: &VectorSelector, name: &str) -> bool {
    if let Some(n) = &vs.name
        && n != name
    {
        return false;
    }
    let check = |ms: &[Matcher]| {
        ms.iter()
            .filter(|m| m.name == NAME)
            .all(|m| m.is_match(name))
    };
    check(&vs.matchers.matchers)
        && (vs.matchers.or_matchers.is_empty() || vs.matchers.or_matchers.iter().any(|g| check(g)))
}

/// The scan filter on stored metric names for a wanted Prometheus name.
fn name_filter(name: &str) -> Expr {
    let words: Vec<&str> = name.split('_').filter(|w| !w.is_empty()).collect();
    let exact = col(METRIC_NAME).eq(lit(name));
    let Some(first) = words.first() else {
        return exact;
    };
    // Stored OTLP names translate by splitting on anything but [A-Za-z0-9:]; match those whose
    // word sequence is a prefix of the wanted name's.
    const SEP: &str = "[^A-Za-z0-9:]";
    let mut pattern = format!("^{SEP}*{}", regex::escape(first));
    for w in &words[1..] {
        pattern.push_str(&format!("(?:{SEP}+{}", regex::escape(w)));
    }
    pattern.push_str(&")?".repeat(words.len() - 1));
    pattern.push_str(&format!("{SEP}*$"));
    let otlp = datafusion::functions::expr_fn::regexp_like(col(METRIC_NAME), lit(pattern), None);
    // The first word is a plain prefix of every candidate (names start with a letter), which
    // row-group statistics can prune on.
    let prefix = col(METRIC_NAME).like(lit(format!("{first}%")));
    prefix.and(exact.or(otlp))
}

fn ts(ms: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ms.saturating_mul(1_000_000)),
        Some("UTC".into()),
    ))
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// The scan filter for rows in `[min_ms, max_ms]` (with date partitions when the table has
/// them).
pub async fn time_filter(ctx: &SessionContext, min_ms: i64, max_ms: i64) -> Expr {
    let mut filter = col(TIME).gt_eq(ts(min_ms)).and(col(TIME).lt_eq(ts(max_ms)));
    if let Ok(schema) = ctx.table_provider("metrics").await.map(|t| t.schema())
        && schema.field_with_name("date").is_ok()
    {
        filter = filter.and(
            col("date")
                .gt_eq(lit(date(min_ms)))
                .and(col("date").lt_eq(lit(date(max_ms)))),
        );
    }
    filter
}

/// The rows a selector may match in `[min_ms, max_ms]`.
async fn rows(
    ctx: &SessionContext,
    vs: &VectorSelector,
    (min_ms, max_ms): (i64, i64),
) -> Result<DataFrame, QueryError> {
    let mut filter = time_filter(ctx, min_ms, max_ms).await;
    if let Some(name) = selector_name(vs) {
        filter = filter.and(name_filter(name));
    }
    Ok(ctx.table("metrics").await?.filter(filter)?)
}

/// The stored metrics a selector may match in `[min_ms, max_ms]`, as OTLP (for exemplars;
/// samples go through [`fetch`]).
pub async fn scan(
    ctx: &SessionContext,
    vs: &VectorSelector,
    range: (i64, i64),
) -> Result<Vec<ResourceMetrics>, QueryError> {
    let batches = rows(ctx, vs, range).await?.collect().await?;
    from_batches(&batches).map_err(|e| QueryError::Internal(e.to_string()))
}

/// Streams the rows a selector may match in `[min_ms, max_ms]` into `gather`.
async fn scan_into(
    ctx: &SessionContext,
    vs: &VectorSelector,
    gather: &mut Gather<'_>,
    range: (i64, i64),
) -> Result<(), QueryError> {
    // Gauges and sums, nearly every row, need a third of the columns. Histograms and
    // summaries need all of them: a second scan reads just those rows, when the first saw any
    // (exponential histograms are native histograms to PromQL, which it does not read).
    let rows = rows(ctx, vs, range).await?;
    let mut others = 0;
    let mut numbers = rows
        .clone()
        .select_columns(&NUMBER_COLUMNS)?
        .execute_stream()
        .await?;
    while let Some(batch) = numbers.next().await {
        others += gather.add_numbers(&batch?)?;
    }
    if others > 0 {
        let is_other = col(METRIC_TYPE).in_list(vec![lit(HISTOGRAM), lit(SUMMARY)], false);
        let mut rest = rows.filter(is_other)?.execute_stream().await?;
        while let Some(batch) = rest.next().await {
            gather.add_rows(&batch?)?;
        }
    }
    Ok(())
}

/// Fetches every series the selector matches with samples in `[min_ms, max_ms]`, failing
/// with `Execution` past `limit` samples.
pub async fn fetch(
    ctx: &SessionContext,
    vs: &VectorSelector,
    (min_ms, max_ms): (i64, i64),
    limit: usize,
) -> Result<Vec<RawSeries>, QueryError> {
    let mut gather = Gather::new(vs, min_ms, max_ms, limit);
    scan_into(ctx, vs, &mut gather, (min_ms, max_ms)).await?;
    Ok(gather.finish())
}

/// The label sets of the series the selector matches with samples in `[min_ms, max_ms]`,
/// without keeping samples.
pub async fn fetch_labels(
    ctx: &SessionContext,
    vs: &VectorSelector,
    (min_ms, max_ms): (i64, i64),
) -> Result<Vec<Labels>, QueryError> {
    let mut gather = Gather::labels_only(vs, min_ms, max_ms);
    scan_into(ctx, vs, &mut gather, (min_ms, max_ms)).await?;
    Ok(gather.labels().collect())
}
