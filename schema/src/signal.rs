//! The three telemetry signals and their table-level facts: name, Arrow schema, sort order and
//! time column.
//!
//! Invariants: [`Signal::schema`] is built once per process and every call returns the same
//! `Arc`; the batches produced by `traces::to_batch` / `logs::to_batch` / `metrics::to_batch`
//! have exactly this schema. `as_str` is the wire / path spelling parsed by `FromStr`.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{Schema, SchemaRef};

use crate::columns::{METRIC_NAME, SERIES_ID, SERVICE_NAME, START_TIME, TIME, TRACE_ID};
use crate::error::Error;

/// A telemetry signal; each is stored in its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Spans (table `spans`).
    Traces,
    /// Log records (table `logs`).
    Logs,
    /// Metric data points (table `metrics`).
    Metrics,
}

static TRACES_SCHEMA: LazyLock<SchemaRef> =
    LazyLock::new(|| Arc::new(Schema::new(crate::traces::fields())));
static LOGS_SCHEMA: LazyLock<SchemaRef> =
    LazyLock::new(|| Arc::new(Schema::new(crate::logs::fields())));
static METRICS_SCHEMA: LazyLock<SchemaRef> =
    LazyLock::new(|| Arc::new(Schema::new(crate::metrics::fields())));

impl Signal {
    /// Every signal, in declaration order.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    /// `"traces"`, `"logs"` or `"metrics"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// SQL table name: `"spans"`, `"logs"` or `"metrics"`.
    pub fn table_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// The table's Arrow schema (built once; the same `Arc` on every call).
    pub fn schema(self) -> SchemaRef {
        match self {
            Signal::Traces => TRACES_SCHEMA.clone(),
            Signal::Logs => LOGS_SCHEMA.clone(),
            Signal::Metrics => METRICS_SCHEMA.clone(),
        }
    }

    /// Checks that `batch` has this signal's columns, by name and type, in order: what every
    /// batch read from outside bytes (an agent's Flight message, a WAL or disk-buffer record)
    /// must pass before code that indexes its columns by position sees it. The error says
    /// which column differs.
    pub fn check_batch(self, batch: &arrow::record_batch::RecordBatch) -> Result<(), String> {
        let expected = self.schema();
        let got = batch.schema();
        if got.fields().len() != expected.fields().len() {
            return Err(format!(
                "{} columns, expected {}",
                got.fields().len(),
                expected.fields().len()
            ));
        }
        for (g, e) in got.fields().iter().zip(expected.fields()) {
            if g.name() != e.name() || !g.data_type().equals_datatype(e.data_type()) {
                return Err(format!(
                    "column {} is {}, expected {} {}",
                    g.name(),
                    g.data_type(),
                    e.name(),
                    e.data_type()
                ));
            }
        }
        Ok(())
    }

    /// Columns a persisted file is sorted by, most significant first.
    pub fn sort_columns(self) -> &'static [&'static str] {
        match self {
            Signal::Traces => &[TRACE_ID, START_TIME],
            Signal::Logs => &[SERVICE_NAME, TIME],
            Signal::Metrics => &[METRIC_NAME, SERVICE_NAME, SERIES_ID, TIME],
        }
    }

    /// The row timestamp column used for time pruning.
    pub fn time_column(self) -> &'static str {
        match self {
            Signal::Traces => START_TIME,
            Signal::Logs | Signal::Metrics => TIME,
        }
    }
}

impl FromStr for Signal {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Signal::ALL
            .into_iter()
            .find(|sig| sig.as_str() == s)
            .ok_or_else(|| Error::UnknownSignal {
                value: s.to_owned(),
            })
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in Signal::ALL {
            assert_eq!(s.to_string().parse::<Signal>().expect("parses"), s);
        }
        assert!(matches!(
            "spans".parse::<Signal>(),
            Err(Error::UnknownSignal { .. })
        ));
        assert!("Traces".parse::<Signal>().is_err());
    }

    #[test]
    fn schema_is_cached_and_has_sort_and_time_columns() {
        for s in Signal::ALL {
            assert!(Arc::ptr_eq(&s.schema(), &s.schema()));
            let schema = s.schema();
            for c in s.sort_columns() {
                assert!(schema.field_with_name(c).is_ok(), "{s}: sort column {c}");
            }
            assert!(schema.field_with_name(s.time_column()).is_ok());
        }
        assert_eq!(Signal::Traces.table_name(), "spans");
    }

    #[test]
    fn column_names_are_unique() {
        for s in Signal::ALL {
            let schema = s.schema();
            let mut names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), schema.fields().len(), "{s}");
        }
    }
}
