//! A PromQL engine over the `metrics` table.
//!
//! A query is parsed with `promql-parser`, its selectors are fetched through DataFusion with
//! the time range, date partitions and metric name pushed into the Parquet scan
//! ([`select`]), and the expression is then evaluated step by step in memory ([`eval`]),
//! with Prometheus 3's semantics. OTLP metrics are read under the names Prometheus's OTLP
//! receiver gives them ([`naming`]).
//!
//! Not evaluated: native histograms (and so exponential histograms) and `info`.

pub mod aggregate;
pub mod binary;
pub mod catalog;
pub mod eval;
pub mod functions;
pub mod gather;
pub mod histogram;
pub mod naming;
pub mod select;
pub mod value;

use std::collections::HashMap;

use datafusion::prelude::SessionContext;
use promql_parser::parser::Expr;

pub use eval::Options;
use eval::{Evaluator, QueryBounds, plan};
pub use value::{Labels, RawSeries, Series, Steps, Value};

use crate::error::QueryError;

/// Parses a PromQL expression; a syntax error is `bad_data`.
///
/// promql-parser 0.11 panics on some inputs instead of answering an error (a range of
/// `[555555555555555555555555]` seconds overflows `Duration::from_secs_f64`; found by
/// AFL++), so a panic inside it is answered as a parse error too.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    std::panic::catch_unwind(|| promql_parser::parser::parse(query))
        .unwrap_or_else(|_| Err("the expression is out of range".into()))
        .map_err(|e| QueryError::BadRequest(format!("parse error: {e}")))
}

/// A query whose samples have been fetched, ready to evaluate (CPU only, no I/O).
pub struct Prepared {
    expr: Expr,
    steps: Steps,
    opts: Options,
    data: HashMap<String, Vec<RawSeries>>,
}

/// Fetches every selector of `expr` for evaluation over `steps`.
pub async fn prepare(
    ctx: &SessionContext,
    expr: Expr,
    steps: Steps,
    opts: Options,
) -> Result<Prepared, QueryError> {
    if steps.step <= 0 {
        return Err(QueryError::BadRequest(
            "zero or negative query resolution step widths are not accepted".into(),
        ));
    }
    if steps.end < steps.start {
        return Err(QueryError::BadRequest(
            "end timestamp must not be before start time".into(),
        ));
    }
    let bounds = QueryBounds {
        start: steps.start,
        end: steps.end,
        step: steps.step,
    };
    let mut fetches = HashMap::new();
    plan(&expr, steps.start, steps.end, bounds, &opts, &mut fetches);
    let mut data = HashMap::with_capacity(fetches.len());
    let mut samples = 0usize;
    for (key, f) in fetches {
        let limit = opts.max_samples.saturating_sub(samples);
        let series = select::fetch(ctx, &f.selector, (f.min_ms, f.max_ms), limit).await?;
        samples += series.iter().map(|s| s.times.len()).sum::<usize>();
        data.insert(key, series);
    }
    Ok(Prepared {
        expr,
        steps,
        opts,
        data,
    })
}

impl Prepared {
    /// Evaluates the query. For a range query (more than one step) the result must be a
    /// scalar or an instant vector.
    pub fn eval(&self) -> Result<Value, QueryError> {
        let evaluator = Evaluator {
            data: &self.data,
            opts: self.opts,
            cells: std::cell::Cell::new(0),
            bounds: QueryBounds {
                start: self.steps.start,
                end: self.steps.end,
                step: self.steps.step,
            },
        };
        let cells = self
            .steps
            .len()
            .saturating_mul(self.data.values().map(Vec::len).sum::<usize>().max(1));
        if cells > self.opts.max_samples {
            return Err(QueryError::Execution(format!(
                "query would evaluate {cells} series steps, more than the sample limit of {}; narrow the range, raise the step or select fewer series",
                self.opts.max_samples
            )));
        }
        match evaluator.eval(&self.expr, self.steps)? {
            Value::Vector(v) => Ok(Value::Vector(eval::apply_name_drops(v)?)),
            other => Ok(other),
        }
    }
}

/// Parses, fetches and evaluates in one call (for tests and tools; the HTTP API evaluates on
/// a blocking thread).
pub async fn query(
    ctx: &SessionContext,
    query: &str,
    steps: Steps,
    opts: Options,
) -> Result<Value, QueryError> {
    let expr = parse(query)?;
    prepare(ctx, expr, steps, opts).await?.eval()
}
