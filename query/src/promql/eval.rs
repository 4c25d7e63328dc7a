//! The evaluator: every node of the expression is evaluated over all steps at once, like
//! Prometheus's range evaluation, on samples fetched before evaluation starts.
//!
//! Evaluation runs in two phases. [`plan`] walks the expression and works out, for every
//! distinct selector, the time span any step can look at (offsets, `@`, ranges, subqueries
//! and the lookback delta included); the caller fetches each selector's series once for
//! that span. [`Evaluator::eval`] then computes without further I/O.
//!
//! Semantics follow Prometheus 3: instant selectors see the newest sample in the left-open
//! lookback window `(t - lookback, t]` unless it is a staleness marker; range selectors and
//! subqueries see `(t - range, t]` without staleness markers; `@` pins a selector or subquery
//! to one time (`start()`/`end()` are the query's); subquery steps are aligned to multiples
//! of their step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::value::{ABSENT, Labels, RawSeries, Series, Steps, Value, is_stale, present};
use crate::error::QueryError;

/// Evaluation settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_ms: i64,
    /// The step of subqueries that do not name one (Prometheus: the evaluation interval).
    pub subquery_step_ms: i64,
    /// The most samples one query may hold, like Prometheus's `--query.max-samples`: fetched
    /// samples may not pass it, and neither may the series × step cells evaluation allocates
    /// for selections, subquery steps and `count_values` outputs, added up over the query.
    pub max_samples: usize,
    /// When evaluation gives up with [`QueryError::Timeout`]; checked before every node and
    /// every selected series, so a timed-out query stops using its thread soon after.
    pub deadline: Option<Deadline>,
}

/// The end of a query's time limit.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    /// The limit, for the error message.
    pub limit: Duration,
}

impl Deadline {
    /// A deadline `limit` from now; none when that is past what `Instant` can hold.
    pub fn after(limit: Duration) -> Option<Self> {
        Instant::now()
            .checked_add(limit)
            .map(|at| Self { at, limit })
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lookback_ms: 5 * 60 * 1000,
            subquery_step_ms: 60 * 1000,
            max_samples: 50_000_000,
            deadline: None,
        }
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// An `execution` error of PromQL.
pub fn exec_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(QueryError::Execution(msg.into()))
}

/// The key under which a selector's fetched series are kept: its matchers without
/// offset and `@`, which only move the time span.
pub fn selector_key(vs: &VectorSelector) -> String {
    let mut plain = vs.clone();
    plain.offset = None;
    plain.at = None;
    plain.to_string()
}

pub fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

/// A duration in milliseconds, saturating at about 31,700 years so that time arithmetic on
/// it cannot overflow.
pub fn duration_ms(d: &Duration) -> i64 {
    d.as_millis().min(1_000_000_000_000_000) as i64
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

/// One selector to fetch: its matchers and the time span evaluation may read.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub selector: VectorSelector,
    pub min_ms: i64,
    pub max_ms: i64,
}

/// The query-wide times `@ start()` and `@ end()` refer to.
#[derive(Debug, Clone, Copy)]
pub struct QueryBounds {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

fn at_ms(at: &AtModifier, q: QueryBounds) -> i64 {
    match at {
        AtModifier::Start => q.start,
        AtModifier::End => q.end,
        AtModifier::At(t) => system_time_ms(t),
    }
}

/// The time span a node with `at`/`offset` reads when evaluated over `[start, end]`.
fn shifted(
    at: &Option<AtModifier>,
    offset: &Option<Offset>,
    start: i64,
    end: i64,
    q: QueryBounds,
) -> (i64, i64) {
    let off = offset_ms(offset);
    match at {
        Some(at) => {
            let t = at_ms(at, q);
            (t - off, t - off)
        }
        None => (start - off, end - off),
    }
}

/// Collects the selectors of `expr` and the span each must be fetched for.
pub fn plan(
    expr: &Expr,
    start: i64,
    end: i64,
    q: QueryBounds,
    opts: &Options,
    out: &mut HashMap<String, Fetch>,
) {
    let mut add = |vs: &VectorSelector, min: i64, max: i64| {
        let entry = out.entry(selector_key(vs)).or_insert_with(|| Fetch {
            selector: vs.clone(),
            min_ms: min,
            max_ms: max,
        });
        entry.min_ms = entry.min_ms.min(min);
        entry.max_ms = entry.max_ms.max(max);
    };
    match expr {
        Expr::VectorSelector(vs) => {
            let (s, e) = shifted(&vs.at, &vs.offset, start, end, q);
            add(vs, s - opts.lookback_ms, e);
        }
        Expr::MatrixSelector(ms) => {
            let (s, e) = shifted(&ms.vs.at, &ms.vs.offset, start, end, q);
            add(&ms.vs, s - duration_ms(&ms.range), e);
        }
        Expr::Subquery(sq) => {
            let (s, e) = shifted(&sq.at, &sq.offset, start, end, q);
            plan(&sq.expr, s - duration_ms(&sq.range), e, q, opts, out);
        }
        Expr::Aggregate(a) => {
            plan(&a.expr, start, end, q, opts, out);
            if let Some(p) = &a.param {
                plan(p, start, end, q, opts, out);
            }
        }
        Expr::Unary(u) => plan(&u.expr, start, end, q, opts, out),
        Expr::Binary(b) => {
            plan(&b.lhs, start, end, q, opts, out);
            plan(&b.rhs, start, end, q, opts, out);
        }
        Expr::Paren(p) => plan(&p.expr, start, end, q, opts, out),
        Expr::Call(c) => {
            for a in &c.args.args {
                plan(a, start, end, q, opts, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The series of a range argument, and per step the window end each step reads.
pub struct RangeArg {
    pub series: Vec<RawSeries>,
    /// The window length in milliseconds.
    pub range: i64,
    /// Per step, the effective time `t` of the window `(t - range, t]`.
    pub ends: Vec<i64>,
    /// Per step, the evaluation time (before offset and `@`).
    pub step_times: Vec<i64>,
    /// The matrix selector's labels are kept as fetched (`false` for subqueries too).
    pub from_selector: bool,
}

impl RangeArg {
    /// The sample range of `series[s]` at step `i`.
    pub fn window(&self, s: usize, i: usize) -> std::ops::Range<usize> {
        let t = self.ends[i];
        self.series[s].window(t - self.range, t)
    }
}

pub struct Evaluator<'a> {
    pub data: &'a HashMap<String, Vec<RawSeries>>,
    pub opts: Options,
    pub bounds: QueryBounds,
    /// Cells counted so far against `opts.max_samples`.
    pub cells: std::cell::Cell<usize>,
}

impl Evaluator<'_> {
    /// Fails once the query's deadline has passed.
    pub fn check_deadline(&self) -> Result<()> {
        match self.opts.deadline {
            Some(d) if Instant::now() >= d.at => Err(QueryError::Timeout(d.limit)),
            _ => Ok(()),
        }
    }

    /// Counts `cells` more series × step values; fails when the query's total passes the
    /// sample limit.
    pub fn check_cells(&self, cells: usize, what: impl std::fmt::Display) -> Result<()> {
        let total = self.cells.get().saturating_add(cells);
        self.cells.set(total);
        if total > self.opts.max_samples {
            return exec_err(format!(
                "query processing would load too many samples into memory ({what} brings the query to {total} series steps, more than {}); narrow the range, raise the step or select fewer series",
                self.opts.max_samples
            ));
        }
        Ok(())
    }

    pub fn eval(&self, expr: &Expr, steps: Steps) -> Result<Value> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; steps.len()])),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, steps),
            Expr::Unary(u) => match self.eval(&u.expr, steps)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(vs) => Ok(Value::Vector(super::functions::map_values(vs, |x| -x)?)),
                other => exec_err(format!(
                    "unary expression only allowed on scalars and vectors, got {}",
                    other.type_name()
                )),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.select(vs, steps)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                if steps.len() != 1 {
                    return Err(QueryError::BadRequest(
                        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
                    ));
                }
                let arg = self.range_arg(expr, steps)?;
                let series = arg
                    .series
                    .iter()
                    .enumerate()
                    .filter_map(|(s, raw)| {
                        let w = arg.window(s, 0);
                        (!w.is_empty()).then(|| RawSeries {
                            labels: raw.labels.clone(),
                            times: raw.times[w.clone()].to_vec(),
                            values: raw.values[w].to_vec(),
                        })
                    })
                    .collect();
                Ok(Value::Matrix(series))
            }
            Expr::Call(c) => super::functions::call(self, c, steps),
            Expr::Aggregate(a) => super::aggregate::eval(self, a, steps),
            Expr::Binary(b) => super::binary::eval(self, b, steps),
            Expr::Extension(_) => Err(QueryError::BadRequest(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluates to an instant vector (or fails with Prometheus's type error).
    pub fn eval_vector(&self, expr: &Expr, steps: Steps) -> Result<Vec<Series>> {
        match self.eval(expr, steps)? {
            Value::Vector(v) => Ok(v),
            other => Err(QueryError::BadRequest(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates to one scalar per step.
    pub fn eval_scalar(&self, expr: &Expr, steps: Steps) -> Result<Vec<f64>> {
        match self.eval(expr, steps)? {
            Value::Scalar(v) => Ok(v),
            other => Err(QueryError::BadRequest(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    fn fetched(&self, vs: &VectorSelector) -> &[RawSeries] {
        self.data
            .get(&selector_key(vs))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The effective (offset and `@` applied) times of `steps` for a node.
    fn effective_times(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        steps: Steps,
    ) -> Vec<i64> {
        let off = offset_ms(offset);
        match at {
            Some(at) => vec![at_ms(at, self.bounds) - off; steps.len()],
            None => steps.times().map(|t| t - off).collect(),
        }
    }

    /// An instant selector at every step.
    pub fn select(&self, vs: &VectorSelector, steps: Steps) -> Result<Vec<Series>> {
        Ok(self.select_with_times(vs, steps)?.0)
    }

    /// An instant selector at every step, and the timestamps of the samples it picked.
    pub fn select_with_times(
        &self,
        vs: &VectorSelector,
        steps: Steps,
    ) -> Result<(Vec<Series>, Vec<Vec<i64>>)> {
        let times = self.effective_times(&vs.at, &vs.offset, steps);
        let fetched = self.fetched(vs);
        self.check_cells(fetched.len().saturating_mul(times.len()), vs)?;
        let mut out = Vec::new();
        let mut sample_times = Vec::new();
        for raw in fetched {
            self.check_deadline()?;
            let mut values = vec![ABSENT; times.len()];
            let mut ts = vec![0; times.len()];
            let mut any = false;
            for (i, &t) in times.iter().enumerate() {
                let idx = raw.times.partition_point(|&x| x <= t);
                if idx == 0 {
                    continue;
                }
                let j = idx - 1;
                if raw.times[j] > t - self.opts.lookback_ms && !is_stale(raw.values[j]) {
                    values[i] = raw.values[j];
                    ts[i] = raw.times[j];
                    any = true;
                }
            }
            if any {
                out.push(Series::new(raw.labels.clone(), values));
                sample_times.push(ts);
            }
        }
        Ok((out, sample_times))
    }

    /// The series and per-step windows of a range argument (matrix selector or subquery).
    pub fn range_arg(&self, expr: &Expr, steps: Steps) -> Result<RangeArg> {
        match expr {
            Expr::Paren(p) => self.range_arg(&p.expr, steps),
            Expr::MatrixSelector(ms) => Ok(RangeArg {
                series: self
                    .fetched(&ms.vs)
                    .iter()
                    .map(RawSeries::without_stale)
                    .collect(),
                range: duration_ms(&ms.range),
                ends: self.effective_times(&ms.vs.at, &ms.vs.offset, steps),
                step_times: steps.times().collect(),
                from_selector: true,
            }),
            Expr::Subquery(sq) => {
                let ends = self.effective_times(&sq.at, &sq.offset, steps);
                let range = duration_ms(&sq.range);
                let step = sq
                    .step
                    .as_ref()
                    .map(duration_ms)
                    .filter(|s| *s > 0)
                    .unwrap_or(self.opts.subquery_step_ms);
                let (Some(&first), Some(&last)) = (ends.iter().min(), ends.iter().max()) else {
                    return Ok(RangeArg {
                        series: Vec::new(),
                        range,
                        ends,
                        step_times: steps.times().collect(),
                        from_selector: false,
                    });
                };
                let lo = first - range;
                // The first multiple of `step` not before `lo` (Go truncates toward zero).
                let mut start = (lo / step) * step;
                if start < lo {
                    start += step;
                }
                let inner = Steps {
                    start,
                    end: last,
                    step,
                };
                self.check_cells(inner.len(), format_args!("subquery {expr}"))?;
                let series = if start > last {
                    Vec::new()
                } else {
                    let values = apply_name_drops(self.eval_vector(&sq.expr, inner)?)?;
                    values
                        .into_iter()
                        .map(|s| {
                            let mut times = Vec::new();
                            let mut vals = Vec::new();
                            for (i, v) in s.values.into_iter().enumerate() {
                                if present(v) {
                                    times.push(inner.at(i));
                                    vals.push(v);
                                }
                            }
                            RawSeries {
                                labels: s.labels,
                                times,
                                values: vals,
                            }
                        })
                        .collect()
                };
                Ok(RangeArg {
                    series,
                    range,
                    ends,
                    step_times: steps.times().collect(),
                    from_selector: false,
                })
            }
            other => Err(QueryError::BadRequest(format!(
                "expected a range vector, got {}",
                other.value_type()
            ))),
        }
    }
}

/// Removes the names marked for removal (see [`Series::drop_name`]); two series left with
/// equal labels and a point at one step are an error.
pub fn apply_name_drops(series: Vec<Series>) -> Result<Vec<Series>> {
    if !series.iter().any(|s| s.drop_name) {
        return Ok(series);
    }
    let out = series
        .into_iter()
        .map(|s| {
            if s.drop_name {
                Series::new(Arc::new(s.labels.without_name()), s.values)
            } else {
                s
            }
        })
        .collect();
    merge_same_labels(out)
}

/// Merges series with equal labels (a function or operator that drops labels can make them
/// equal); two of them with a point at the same step is Prometheus's execution error.
pub fn merge_same_labels(series: Vec<Series>) -> Result<Vec<Series>> {
    let mut index: HashMap<(Arc<Labels>, bool), usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        if !s.any_present() {
            continue;
        }
        match index.get(&(s.labels.clone(), s.drop_name)) {
            None => {
                index.insert((s.labels.clone(), s.drop_name), out.len());
                out.push(s);
            }
            Some(&i) => {
                let target = &mut out[i];
                for (slot, v) in target.values.iter_mut().zip(s.values) {
                    if present(v) {
                        if present(*slot) {
                            return exec_err(
                                "vector cannot contain metrics with the same labelset",
                            );
                        }
                        *slot = v;
                    }
                }
            }
        }
    }
    Ok(out)
}
