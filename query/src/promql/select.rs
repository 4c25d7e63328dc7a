//! Series selection: a PromQL vector selector becomes one DataFusion scan of the `metrics`
//! table, with the time range, the date partitions and the metric name pushed into the scan.
//!
//! The name filter is exact for names stored in Prometheus's model and a superset for OTLP
//! names (any stored name whose Prometheus translation is a word prefix of the wanted name, so
//! unit and type suffixes can follow); every label matcher, the name included, is then checked
//! on the translated series, so the result is exact either way.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::prelude::{Expr, SessionContext, col, lit};
use datafusion::scalar::ScalarValue;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::VectorSelector;
use strata_schema::columns::{METRIC_NAME, TIME};
use strata_schema::metrics::from_batches;

use super::naming::for_each_sample;
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

/// The stored metrics a selector may match in `[min_ms, max_ms]`, as OTLP.
pub async fn scan(
    ctx: &SessionContext,
    vs: &VectorSelector,
    min_ms: i64,
    max_ms: i64,
) -> Result<Vec<ResourceMetrics>, QueryError> {
    let mut filter = time_filter(ctx, min_ms, max_ms).await;
    if let Some(name) = selector_name(vs) {
        filter = filter.and(name_filter(name));
    }
    let batches = ctx
        .table("metrics")
        .await?
        .filter(filter)?
        .collect()
        .await?;
    from_batches(&batches).map_err(|e| QueryError::Internal(e.to_string()))
}

/// Fetches every series the selector matches with samples in `[min_ms, max_ms]`.
pub async fn fetch(
    ctx: &SessionContext,
    vs: &VectorSelector,
    min_ms: i64,
    max_ms: i64,
) -> Result<Vec<RawSeries>, QueryError> {
    let resources = scan(ctx, vs, min_ms, max_ms).await?;
    let mut series: HashMap<Labels, (Vec<i64>, Vec<f64>)> = HashMap::new();
    for_each_sample(
        &resources,
        &|name| name_ok(vs, name),
        &mut |labels, t, v| {
            if t < min_ms || t > max_ms || !matches(vs, &labels) {
                return;
            }
            let entry = series.entry(labels).or_default();
            entry.0.push(t);
            entry.1.push(v);
        },
    );
    let mut out: Vec<RawSeries> = series
        .into_iter()
        .map(|(labels, (times, values))| {
            let mut points: Vec<(i64, f64)> = times.into_iter().zip(values).collect();
            // Stable, so the last write of a timestamp wins after the dedup below.
            points.sort_by_key(|p| p.0);
            let mut times = Vec::with_capacity(points.len());
            let mut values: Vec<f64> = Vec::with_capacity(points.len());
            for (t, v) in points {
                if times.last() == Some(&t)
                    && let Some(last) = values.last_mut()
                {
                    *last = v;
                } else {
                    times.push(t);
                    values.push(v);
                }
            }
            RawSeries {
                labels: Arc::new(labels),
                times,
                values,
            }
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}
