//! Tag names and values for search autocompletion, from a bounded sample of recent spans.
//!
//! Invariant: every scan reads at most [`SCAN_ROWS`] spans of the time range, so the cost of
//! autocompletion does not grow with the data stored; at most [`MAX_VALUES`] values come back.

use std::collections::BTreeSet;
use std::time::Duration;

use arrow::array::{Array, Float64Array};
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use strata_schema::columns;

use super::filter::{PROMOTED_RESOURCE, quote};
use super::traceql::{KINDS, STATUSES};
use super::{TimeRange, bools, ints, run, strings, text, typed};
use crate::error::QueryError;

/// Most spans one tag scan reads.
pub const SCAN_ROWS: usize = 100_000;
/// Most distinct names or values returned.
pub const MAX_VALUES: usize = 5_000;

/// Intrinsic tags, as Tempo lists them in the `intrinsic` scope.
pub const INTRINSICS: [&str; 5] = ["duration", "kind", "name", "status", "statusMessage"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Span,
    Resource,
}

impl Scope {
    fn map(self) -> &'static str {
        match self {
            Scope::Span => columns::ATTRIBUTES,
            Scope::Resource => columns::RESOURCE_ATTRIBUTES,
        }
    }
}

/// Attribute keys seen in `scope` in the range, sorted.
pub async fn names(
    ctx: &SessionContext,
    scope: Scope,
    range: TimeRange,
    timeout: Duration,
) -> Result<Vec<String>, QueryError> {
    let map = scope.map();
    let sql = format!(
        "SELECT DISTINCT k FROM (SELECT unnest(map_keys({map})) AS k FROM \
           (SELECT {map} FROM spans WHERE {} AND {map} IS NOT NULL LIMIT {SCAN_ROWS})) \
         ORDER BY k LIMIT {MAX_VALUES}",
        range.sql()
    );
    let mut out = Vec::new();
    for batch in run(ctx, &sql, timeout).await? {
        let k = strings(&batch, "k")?;
        out.extend((0..batch.num_rows()).map(|i| text(&k, i).to_string()));
    }
    Ok(out)
}

/// A tag value and its TraceQL type (`string`, `int`, `float`, `bool`, `keyword`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TagValue {
    pub kind: &'static str,
    pub value: String,
}

/// The tag a values request names: an intrinsic, a scoped attribute or an unscoped one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    Intrinsic(&'static str),
    Attribute(Option<Scope>, String),
}

impl Tag {
    /// Reads Tempo's tag names: `name`, `span.x`, `resource.x`, `.x`, and (API v1) a bare
    /// attribute name `x`.
    pub fn parse(tag: &str) -> Result<Tag, QueryError> {
        let stripped = tag.strip_prefix("span:").or(tag.strip_prefix("trace:"));
        if let Some(i) = INTRINSICS
            .iter()
            .find(|i| **i == tag || Some(**i) == stripped)
        {
            return Ok(Tag::Intrinsic(i));
        }
        let (scope, key) = if let Some(k) = tag.strip_prefix("span.") {
            (Some(Scope::Span), k)
        } else if let Some(k) = tag.strip_prefix("resource.") {
            (Some(Scope::Resource), k)
        } else if let Some(k) = tag.strip_prefix('.') {
            (None, k)
        } else {
            (None, tag)
        };
        if key.is_empty() {
            return Err(QueryError::BadRequest(format!("{tag:?} names no tag")));
        }
        Ok(Tag::Attribute(scope, key.to_string()))
    }
}

/// Distinct values of `tag` on spans in the range that satisfy `filter` (SQL, `TRUE` for
/// all).
pub async fn values(
    ctx: &SessionContext,
    tag: &Tag,
    range: TimeRange,
    filter: &str,
    timeout: Duration,
) -> Result<Vec<TagValue>, QueryError> {
    let keyword = |list: &[(&str, i32)]| {
        list.iter()
            .map(|(n, _)| TagValue {
                kind: "keyword",
                value: n.to_string(),
            })
            .collect()
    };
    let mut out = BTreeSet::new();
    match tag {
        Tag::Intrinsic("status") => return Ok(keyword(&STATUSES)),
        Tag::Intrinsic("kind") => return Ok(keyword(&KINDS)),
        Tag::Intrinsic(name) => {
            let column = match *name {
                "name" => columns::NAME,
                "statusMessage" => columns::STATUS_MESSAGE,
                _ => return Ok(Vec::new()),
            };
            column_values(ctx, column, range, filter, timeout, &mut out).await?;
        }
        Tag::Attribute(scope, key) => {
            if scope != &Some(Scope::Span)
                && let Some((_, column)) = PROMOTED_RESOURCE.iter().find(|(k, _)| k == key)
            {
                column_values(ctx, column, range, filter, timeout, &mut out).await?;
            } else {
                for s in [Scope::Span, Scope::Resource] {
                    if scope.is_none_or(|want| want == s) {
                        map_values(ctx, s.map(), key, range, filter, timeout, &mut out).await?;
                    }
                }
            }
        }
    }
    Ok(out.into_iter().take(MAX_VALUES).collect())
}

async fn column_values(
    ctx: &SessionContext,
    column: &str,
    range: TimeRange,
    filter: &str,
    timeout: Duration,
    out: &mut BTreeSet<TagValue>,
) -> Result<(), QueryError> {
    let sql = format!(
        "SELECT DISTINCT v FROM (SELECT {column} AS v FROM spans \
           WHERE {} AND {column} IS NOT NULL AND ({filter}) LIMIT {SCAN_ROWS}) LIMIT {MAX_VALUES}",
        range.sql()
    );
    for batch in run(ctx, &sql, timeout).await? {
        let v = strings(&batch, "v")?;
        out.extend((0..batch.num_rows()).map(|i| TagValue {
            kind: "string",
            value: text(&v, i).to_string(),
        }));
    }
    Ok(())
}

async fn map_values(
    ctx: &SessionContext,
    map: &str,
    key: &str,
    range: TimeRange,
    filter: &str,
    timeout: Duration,
    out: &mut BTreeSet<TagValue>,
) -> Result<(), QueryError> {
    let entry = format!("{map}[{}]", quote(key));
    let sql = format!(
        "SELECT DISTINCT s, i, d, b FROM (SELECT {entry}['str'] AS s, {entry}['int'] AS i, \
           {entry}['double'] AS d, {entry}['bool'] AS b FROM spans \
           WHERE {} AND {entry} IS NOT NULL AND ({filter}) LIMIT {SCAN_ROWS}) LIMIT {MAX_VALUES}",
        range.sql()
    );
    for batch in run(ctx, &sql, timeout).await? {
        let s = strings(&batch, "s")?;
        let i = ints(&batch, "i")?;
        let d: Float64Array = typed(&batch, "d", &DataType::Float64)?;
        let b = bools(&batch, "b")?;
        for row in 0..batch.num_rows() {
            let value = if s.is_valid(row) {
                ("string", s.value(row).to_string())
            } else if i.is_valid(row) {
                ("int", i.value(row).to_string())
            } else if d.is_valid(row) {
                ("float", d.value(row).to_string())
            } else if b.is_valid(row) {
                ("bool", b.value(row).to_string())
            } else {
                continue;
            };
            out.insert(TagValue {
                kind: value.0,
                value: value.1,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_in_every_form() {
        assert_eq!(Tag::parse("name").unwrap(), Tag::Intrinsic("name"));
        assert_eq!(Tag::parse("span:status").unwrap(), Tag::Intrinsic("status"));
        assert_eq!(
            Tag::parse("span.http.method").unwrap(),
            Tag::Attribute(Some(Scope::Span), "http.method".into())
        );
        assert_eq!(
            Tag::parse("resource.service.name").unwrap(),
            Tag::Attribute(Some(Scope::Resource), "service.name".into())
        );
        assert_eq!(Tag::parse(".x").unwrap(), Tag::Attribute(None, "x".into()));
        assert_eq!(
            Tag::parse("service.name").unwrap(),
            Tag::Attribute(None, "service.name".into())
        );
        assert!(Tag::parse("span.").is_err());
    }
}
