//! The settings a PostgreSQL session reports, in one table: what `current_setting(name)`
//! returns and what `SHOW name`, `SHOW TIME ZONE`, `SHOW TRANSACTION ISOLATION LEVEL` and
//! `SHOW ALL` answer. They agree with the `ParameterStatus` messages of the login
//! ([`super::startup`]) and follow the connection's startup parameters and `SET`s.
//!
//! Strata answers `SHOW` itself, ahead of datafusion-postgres's hook, because that hook reports
//! `server_version` as DataFusion's version (drivers parse a PostgreSQL version there), names
//! the isolation level two ways, and answers an unknown name with a row instead of
//! PostgreSQL's error (SQLSTATE 42704). It also keeps `SET TimeZone = 'x'` (psql's way of
//! writing it), which that hook hands to DataFusion, where it is lost; an unknown zone is
//! SQLSTATE 22023, as in PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Set, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use futures::stream;
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::startup::ParameterStatus;

use super::startup::SERVER_VERSION;

/// Each setting: its name as PostgreSQL spells it, its value before the client changes it, and
/// what `SHOW ALL` says of it.
const DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "application_name",
        "",
        "Sets the application name to be reported.",
    ),
    (
        "client_encoding",
        "UTF8",
        "Sets the client's character set encoding.",
    ),
    (
        "DateStyle",
        "ISO, MDY",
        "Sets the display format for date and time values.",
    ),
    (
        "default_transaction_isolation",
        "read committed",
        "Sets the transaction isolation level of each new transaction.",
    ),
    (
        "default_transaction_read_only",
        "on",
        "Strata's tables are read-only over SQL.",
    ),
    (
        "extra_float_digits",
        "1",
        "Sets the number of digits displayed for floating-point values.",
    ),
    (
        "integer_datetimes",
        "on",
        "Shows whether datetimes are integer based.",
    ),
    (
        "IntervalStyle",
        "postgres",
        "Sets the display format for interval values.",
    ),
    (
        "is_superuser",
        "off",
        "Shows whether the current user is a superuser.",
    ),
    ("lc_collate", "C", "Shows the collation order locale."),
    (
        "lc_ctype",
        "C",
        "Shows the character classification locale.",
    ),
    (
        "max_identifier_length",
        "63",
        "Shows the maximum identifier length.",
    ),
    (
        "max_index_keys",
        "32",
        "Shows the maximum number of index keys.",
    ),
    (
        "search_path",
        "public",
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    (
        "server_encoding",
        "UTF8",
        "Shows the server (database) character set encoding.",
    ),
    (
        "server_version",
        SERVER_VERSION,
        "Shows the server version.",
    ),
    (
        "server_version_num",
        "",
        "Shows the server version as an integer.",
    ),
    (
        "standard_conforming_strings",
        "on",
        "Causes '...' strings to treat backslashes literally.",
    ),
    (
        "statement_timeout",
        "0",
        "Sets the maximum allowed duration of any statement.",
    ),
    (
        "TimeZone",
        "UTC",
        "Sets the time zone for displaying and interpreting time stamps.",
    ),
    (
        "transaction_isolation",
        "read committed",
        "Sets the current transaction's isolation level.",
    ),
    (
        "transaction_read_only",
        "on",
        "Sets the current transaction's read-only status.",
    ),
];

/// Settings a client cannot change: what the server is, and what Strata's parser and
/// read-only tables always do.
const FIXED: &[&str] = &[
    "default_transaction_read_only",
    "integer_datetimes",
    "is_superuser",
    "lc_collate",
    "lc_ctype",
    "max_identifier_length",
    "max_index_keys",
    "server_encoding",
    "server_version",
    "server_version_num",
    "standard_conforming_strings",
    "statement_timeout",
    "transaction_read_only",
];

/// `server_version_num` of [`SERVER_VERSION`]: `16.6` is `160006`.
fn version_num() -> String {
    let mut parts = SERVER_VERSION
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(16);
    let minor = parts.next().unwrap_or(0);
    (major * 10_000 + minor).to_string()
}

/// The connection's settings by lowercase name: the defaults, then what the client sent at
/// login or `SET`, except for the [`FIXED`] ones (`statement_timeout` comes from its own key).
pub fn settings(client: &HashMap<String, String>) -> HashMap<String, String> {
    let mut s: HashMap<String, String> = DEFAULTS
        .iter()
        .map(|(name, value, _)| (name.to_ascii_lowercase(), value.to_string()))
        .collect();
    s.insert("server_version_num".into(), version_num());
    for (k, v) in client {
        let k = k.to_ascii_lowercase();
        if s.contains_key(&k) && !FIXED.contains(&k.as_str()) {
            s.insert(k, v.clone());
        }
    }
    // datafusion-postgres's `SET statement_timeout` keeps milliseconds under its own key.
    if let Some(ms) = client.get("statement_timeout_ms") {
        s.insert("statement_timeout".into(), format!("{ms}ms"));
    }
    s
}

/// What a `SHOW` asks for.
enum Show {
    One(String),
    All,
}

fn show(statement: &Statement) -> Option<Show> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let words: Vec<String> = variable
        .iter()
        .map(|v| v.value.to_ascii_lowercase())
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Some(match words.as_slice() {
        ["all"] => Show::All,
        ["time", "zone"] => Show::One("timezone".into()),
        ["transaction", "isolation", "level"] => Show::One("transaction_isolation".into()),
        _ => Show::One(words.join(" ")),
    })
}

/// The column name PostgreSQL gives a setting (`TimeZone`, `DateStyle`, `search_path`).
fn display_name(lower: &str) -> &'static str {
    DEFAULTS
        .iter()
        .map(|(n, _, _)| *n)
        .find(|n| n.eq_ignore_ascii_case(lower))
        .unwrap_or("setting")
}

/// The rows of `SHOW`: column names, then rows of text.
fn answer(
    show: &Show,
    client: &HashMap<String, String>,
) -> PgWireResult<(Vec<&'static str>, Vec<Vec<String>>)> {
    let s = settings(client);
    match show {
        Show::All => {
            let rows = DEFAULTS
                .iter()
                .map(|(name, _, description)| {
                    let value = s
                        .get(&name.to_ascii_lowercase())
                        .cloned()
                        .unwrap_or_default();
                    vec![name.to_string(), value, description.to_string()]
                })
                .collect();
            Ok((vec!["name", "setting", "description"], rows))
        }
        Show::One(name) => match s.get(name) {
            Some(v) => Ok((vec![display_name(name)], vec![vec![v.clone()]])),
            None => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "42704".into(),
                format!("unrecognized configuration parameter \"{name}\""),
            )))),
        },
    }
}

fn response(columns: &[&str], rows: Vec<Vec<String>>) -> PgWireResult<Response> {
    let fields: Arc<Vec<FieldInfo>> = Arc::new(
        columns
            .iter()
            .map(|c| FieldInfo::new(c.to_string(), None, None, Type::TEXT, FieldFormat::Text))
            .collect(),
    );
    let encoded: Vec<_> = rows
        .into_iter()
        .map(|row| {
            let mut encoder = DataRowEncoder::new(fields.clone());
            for value in &row {
                encoder.encode_field(&Some(value.as_str()))?;
            }
            Ok(encoder.take_row())
        })
        .collect();
    Ok(Response::Query(QueryResponse::new(
        fields,
        stream::iter(encoded),
    )))
}

/// The zone of `SET TimeZone = 'x'` / `SET timezone TO x` (`DEFAULT` is UTC).
fn time_zone_assignment(statement: &Statement) -> Option<String> {
    let Statement::Set(Set::SingleAssignment {
        scope: None,
        hivevar: false,
        variable,
        values,
    }) = statement
    else {
        return None;
    };
    if !variable.to_string().eq_ignore_ascii_case("timezone") {
        return None;
    }
    Some(match values.first()? {
        Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default") => "UTC".into(),
        Expr::Identifier(i) => i.value.clone(),
        Expr::Value(v) => v.clone().into_string()?,
        other => other.to_string(),
    })
}

/// Keeps the client's zone where `SHOW`, `current_setting()` and datafusion-postgres's own
/// `SET TIME ZONE` keep it, and reports it as PostgreSQL does (`ParameterStatus`).
async fn set_time_zone(zone: String, client: &mut dyn HookClient) -> PgWireResult<Response> {
    if zone.parse::<arrow::array::timezone::Tz>().is_err() {
        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "22023".into(),
            format!("invalid value for parameter \"TimeZone\": \"{zone}\""),
        ))));
    }
    client
        .metadata_mut()
        .insert("timezone".into(), zone.clone());
    client
        .send_message(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
            "TimeZone".into(),
            zone,
        )))
        .await?;
    Ok(Response::Execution(Tag::new("SET")))
}

/// The answer to `statement` in either protocol, `None` when it is not this hook's.
async fn respond(
    statement: &Statement,
    client: &mut dyn HookClient,
) -> Option<PgWireResult<Response>> {
    if let Some(zone) = time_zone_assignment(statement) {
        return Some(set_time_zone(zone, client).await);
    }
    let show = show(statement)?;
    Some(answer(&show, client.metadata()).and_then(|(c, r)| response(&c, r)))
}

/// Answers `SHOW` from [`settings`] and keeps `SET TimeZone`.
pub struct SettingsHook;

#[async_trait]
impl QueryHook for SettingsHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        respond(statement, client).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if time_zone_assignment(statement).is_some() {
            return Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::empty()),
            })));
        }
        let show = show(statement)?;
        Some(answer(&show, client.metadata()).and_then(|(columns, _)| {
            let schema = Schema::new(
                columns
                    .iter()
                    .map(|c| Field::new(*c, DataType::Utf8, false))
                    .collect::<Vec<_>>(),
            );
            let schema = DFSchema::try_from(schema).map_err(|e| PgWireError::ApiError(e.into()))?;
            Ok(LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: true,
                schema: Arc::new(schema),
            }))
        }))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        respond(statement, client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_follow_the_client_but_not_the_server_ones() {
        let s = settings(&client(&[
            ("TimeZone", "Europe/Paris"),
            ("server_version", "99"),
            ("is_superuser", "on"),
            ("statement_timeout_ms", "1500"),
            ("user", "x"),
        ]));
        assert_eq!(s["timezone"], "Europe/Paris");
        assert_eq!(s["server_version"], SERVER_VERSION);
        assert_eq!(s["server_version_num"], "160006");
        assert_eq!(s["is_superuser"], "off");
        assert_eq!(s["statement_timeout"], "1500ms");
        assert!(!s.contains_key("user"));
    }

    fn parse(sql: &str) -> Statement {
        use datafusion::sql::sqlparser::{dialect::PostgreSqlDialect, parser::Parser};
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn set_timezone_is_read_in_each_spelling() {
        let zone = |sql: &str| time_zone_assignment(&parse(sql));
        assert_eq!(
            zone("SET TimeZone = 'Europe/Paris'").as_deref(),
            Some("Europe/Paris")
        );
        assert_eq!(zone("SET timezone TO UTC").as_deref(), Some("UTC"));
        assert_eq!(zone("SET TIMEZONE = DEFAULT").as_deref(), Some("UTC"));
        assert_eq!(zone("SET search_path = public"), None);
        assert!("Europe/Paris".parse::<arrow::array::timezone::Tz>().is_ok());
        assert!(
            "Mars/Olympus"
                .parse::<arrow::array::timezone::Tz>()
                .is_err()
        );
    }

    #[test]
    fn show_answers_each_setting_under_its_own_name() {
        let c = client(&[]);
        let (columns, rows) = answer(&show(&parse("SHOW TIME ZONE")).unwrap(), &c).unwrap();
        assert_eq!(
            (columns, rows),
            (vec!["TimeZone"], vec![vec!["UTC".to_string()]])
        );
        let (columns, rows) = answer(
            &show(&parse("SHOW TRANSACTION ISOLATION LEVEL")).unwrap(),
            &c,
        )
        .unwrap();
        assert_eq!(columns, vec!["transaction_isolation"]);
        assert_eq!(rows[0][0], "read committed");
        let (columns, _) = answer(&show(&parse("show datestyle")).unwrap(), &c).unwrap();
        assert_eq!(columns, vec!["DateStyle"]);
        let (columns, rows) = answer(&show(&parse("SHOW ALL")).unwrap(), &c).unwrap();
        assert_eq!(columns.len(), 3);
        assert_eq!(rows.len(), DEFAULTS.len());
        let Err(PgWireError::UserError(e)) = answer(&show(&parse("SHOW nope")).unwrap(), &c) else {
            panic!("an unknown setting is an error");
        };
        assert_eq!(e.code, "42704");
    }
}
