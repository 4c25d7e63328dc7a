//! Query-string parameters as the trace APIs read them: repeated keys kept (Jaeger's
//! `traceID` may repeat), blank values treated as absent, numbers checked.

use crate::error::QueryError;

/// The parameters of a raw query string, in order.
pub fn params(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The first non-blank value of `name`, trimmed.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// `name` as an integer; a value that is not one is a bad request.
pub fn number(params: &[(String, String)], name: &str) -> Result<Option<i64>, QueryError> {
    param(params, name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| QueryError::BadRequest(format!("{name}={v:?} is not an integer")))
        })
        .transpose()
}
