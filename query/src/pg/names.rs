//! The column names PostgreSQL gives a `SELECT`'s unaliased expressions, which clients show
//! as headers and key rows by (pandas' columns, JDBC's `getString("count")`): a function
//! call is named by the function (`count`, `date_bin`), a cast by what it casts (or else its
//! type), `CASE` is `case`, and any other expression is `?column?`. DataFusion names them by
//! their text (`count(*)`, `Int64(1)`).
//!
//! Invariants: only the top-level `SELECT`'s own list is renamed, and only when it has as many
//! items as the result has columns (no wildcard); columns and aliased expressions keep their
//! names. Names may repeat, as in PostgreSQL.

use arrow::datatypes::{Field, Schema};
use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Ident, ObjectNamePart, SelectItem, SetExpr, Statement, TimezoneInfo,
};

const UNNAMED: &str = "?column?";

/// `schema` with the names PostgreSQL would give the columns of `statement`.
pub fn rename(statement: &Statement, schema: &Schema) -> Schema {
    let Some(names) = names(statement).filter(|n| n.len() == schema.fields().len()) else {
        return schema.clone();
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(names)
        .map(|(f, name)| match name {
            Some(n) => f.as_ref().clone().with_name(n),
            None => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Per item of the top-level select list: `Some(name)` where PostgreSQL's name differs from
/// what DataFusion gives, `None` where it keeps DataFusion's.
fn names(statement: &Statement) -> Option<Vec<Option<String>>> {
    let Statement::Query(query) = statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some(figure(e)),
            SelectItem::ExprWithAlias { .. } => Some(None),
            _ => None,
        })
        .collect()
}

/// An identifier as PostgreSQL folds it: unquoted ones to lowercase.
fn folded(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

/// PostgreSQL's `FigureColname`, in short; `None`: a column, which keeps its name.
fn figure(e: &Expr) -> Option<String> {
    Some(match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => return None,
        Expr::Function(f) => match f.name.0.last() {
            Some(ObjectNamePart::Identifier(i)) => folded(i),
            _ => return None,
        },
        Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => return None,
            inner => figure(inner)
                .filter(|n| n != UNNAMED)
                .unwrap_or_else(|| type_name(data_type)),
        },
        Expr::Nested(inner) => return figure(inner),
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Subquery(_) => return None,
        _ => UNNAMED.into(),
    })
}

/// PostgreSQL's internal name of a cast's type (`'1'::int` is named `int4`).
fn type_name(t: &DataType) -> String {
    match t {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4".into(),
        DataType::BigInt(_) | DataType::Int8(_) => "int8".into(),
        DataType::SmallInt(_) | DataType::Int2(_) => "int2".into(),
        DataType::Real | DataType::Float4 => "float4".into(),
        DataType::Double(_) | DataType::DoublePrecision | DataType::Float8 => "float8".into(),
        DataType::Boolean | DataType::Bool => "bool".into(),
        DataType::Varchar(_) | DataType::CharacterVarying(_) => "varchar".into(),
        DataType::Numeric(_) | DataType::Decimal(_) => "numeric".into(),
        DataType::Timestamp(_, TimezoneInfo::Tz | TimezoneInfo::WithTimeZone) => {
            "timestamptz".into()
        }
        DataType::Timestamp(_, _) => "timestamp".into(),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType as Arrow;
    use datafusion::sql::sqlparser::{dialect::PostgreSqlDialect, parser::Parser};

    fn renamed(sql: &str, columns: usize) -> Vec<String> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let schema = Schema::new(
            (0..columns)
                .map(|i| Field::new(format!("df{i}"), Arrow::Int64, true))
                .collect::<Vec<_>>(),
        );
        rename(&statement, &schema)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[test]
    fn unaliased_expressions_get_postgresqls_names() {
        assert_eq!(
            renamed(
                "SELECT service_name, COUNT(*), count(x) AS n, 1 + 1, '7'::int, now()::date, \
                 CASE WHEN true THEN 1 END, (max(a)), pg_catalog.version(), s.name FROM spans s",
                10
            ),
            [
                "df0", "count", "df2", "?column?", "int4", "now", "case", "max", "version", "df9"
            ]
        );
    }

    #[test]
    fn other_statements_and_wildcards_keep_their_names() {
        assert_eq!(renamed("SELECT *, 1 FROM spans", 3), ["df0", "df1", "df2"]);
        assert_eq!(renamed("SELECT 1 UNION SELECT 2", 1), ["df0"]);
        assert_eq!(renamed("SELECT 1, 2", 3), ["df0", "df1", "df2"]);
        assert_eq!(renamed("SHOW search_path", 1), ["df0"]);
    }
}
