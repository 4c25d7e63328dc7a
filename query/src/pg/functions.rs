//! The PostgreSQL functions clients call on connect that DataFusion and the pg_catalog crate
//! lack or answer differently: `version()` (drivers match `PostgreSQL <major>.<minor>` in it),
//! `current_setting(name [, missing_ok])` over the session's reported settings, and
//! `to_regtype(name)` (psycopg and SQLAlchemy look up optional types such as `hstore` with it:
//! the oid of a built-in type, NULL for any other).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

use super::settings::settings;
use super::startup::SERVER_VERSION;

/// What `version()` answers.
pub fn version_text() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Strata {}) on {}-{}, compiled by rustc",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// Registers the functions on `ctx`; `settings` are the connection's (`TimeZone`,
/// `search_path`, ...) over the server's defaults.
pub fn register(ctx: &SessionContext, client: &HashMap<String, String>) {
    let version = version_text();
    ctx.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version.clone(),
            ))))
        }),
    ));
    ctx.register_udf(create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| match &args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(name)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Int32(name.as_deref().and_then(type_oid)),
            )),
            ColumnarValue::Scalar(_) => Ok(ColumnarValue::Scalar(ScalarValue::Int32(None))),
            ColumnarValue::Array(a) => {
                let names = a.as_string::<i32>();
                let oids: arrow::array::Int32Array = (0..a.len())
                    .map(|i| {
                        (!names.is_null(i))
                            .then(|| type_oid(names.value(i)))
                            .flatten()
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(oids)))
            }
        }),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting {
        settings: settings(client).into(),
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
    }));
}

/// The oid of a built-in type by any of its names (`pg_catalog.` prefix allowed).
fn type_oid(name: &str) -> Option<i32> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    Some(match name {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "char" => 18,
        "name" => 19,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "numeric" | "decimal" => 1700,
        "uuid" => 2950,
        "jsonb" => 3802,
        _ => return None,
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    settings: HashMapKey,
    signature: Signature,
}

/// A `HashMap` with the `Eq` and `Hash` a UDF needs (by its sorted pairs).
#[derive(Debug, PartialEq, Eq)]
struct HashMapKey(HashMap<String, String>);

impl std::hash::Hash for HashMapKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut pairs: Vec<_> = self.0.iter().collect();
        pairs.sort();
        pairs.hash(state);
    }
}

impl From<HashMap<String, String>> for HashMapKey {
    fn from(m: HashMap<String, String>) -> Self {
        Self(m)
    }
}

impl CurrentSetting {
    fn lookup(&self, name: &str, missing_ok: bool) -> Result<Option<String>> {
        match self.settings.0.get(&name.to_ascii_lowercase()) {
            Some(v) => Ok(Some(v.clone())),
            None if missing_ok => Ok(None),
            None => plan_err!("unrecognized configuration parameter \"{name}\""),
        }
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let missing_ok = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(b))) => b.unwrap_or(false),
            _ => false,
        };
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let name = match s {
                    ScalarValue::Utf8(Some(n)) => n.as_str(),
                    _ => return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                    self.lookup(name, missing_ok)?,
                )))
            }
            ColumnarValue::Array(a) => {
                let names = a.as_string::<i32>();
                let mut out = StringBuilder::with_capacity(a.len(), a.len() * 8);
                for i in 0..a.len() {
                    if names.is_null(i) {
                        out.append_null();
                    } else {
                        out.append_option(self.lookup(names.value(i), missing_ok)?);
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn version_and_settings_answer_as_postgresql_does() {
        let ctx = SessionContext::new();
        let client: HashMap<String, String> = [("TimeZone".to_string(), "Europe/Paris".into())]
            .into_iter()
            .collect();
        register(&ctx, &client);
        let batches = ctx
            .sql("SELECT version(), current_setting('server_version_num'), current_setting('timezone'), current_setting('nope', true), to_regtype('timestamptz'), to_regtype('hstore') IS NULL")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let row = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(row.contains("PostgreSQL 16.6 (Strata"), "{row}");
        assert!(row.contains("| 160006 "), "{row}");
        assert!(row.contains("Europe/Paris"), "{row}");
        assert!(row.contains("| 1184 ") && row.contains("| true "), "{row}");
        let err = match ctx.sql("SELECT current_setting('nope')").await {
            Err(e) => Some(e.to_string()),
            Ok(df) => df.collect().await.err().map(|e| e.to_string()),
        };
        assert!(
            err.is_some_and(|e| e.contains("unrecognized configuration parameter")),
            "an unknown setting is an error"
        );
    }
}
