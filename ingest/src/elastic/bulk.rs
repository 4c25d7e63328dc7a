//! The `_bulk` body: newline-delimited JSON, an action line (`index`, `create`, `update`,
//! `delete`) followed by a document line for all but `delete`.
//!
//! Blank lines between items are skipped (the body ends with a newline); the line after an
//! action is its document, blank or not. A line that is not an action is an error of the
//! whole request, as in Elasticsearch (the
//! lines after it cannot be told apart any more); everything else is an error of its item:
//! a document that is not JSON, an action without an index, and `update` / `delete`, which
//! a log store does not do.

use serde_json::{Map, Value};

/// An item's error: HTTP status, Elasticsearch error type and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    pub status: u16,
    pub kind: &'static str,
    pub reason: String,
}

impl ItemError {
    pub fn new(status: u16, kind: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            reason: reason.into(),
        }
    }
}

/// One item of a bulk request.
#[derive(Debug)]
pub struct Item {
    /// `index`, `create`, `update` or `delete`: the key of its answer.
    pub action: &'static str,
    pub index: String,
    pub id: Option<String>,
    /// The document, or why the item cannot be taken.
    pub doc: Result<Value, ItemError>,
}

const ACTIONS: &[&str] = &["index", "create", "update", "delete"];

fn action_line(line: &[u8], number: usize) -> Result<(&'static str, Map<String, Value>), String> {
    let malformed = |what: &str| format!("Malformed action/metadata line [{number}], {what}");
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| malformed(&format!("expected a JSON object: {e}")))?;
    let Value::Object(map) = value else {
        return Err(malformed("expected START_OBJECT"));
    };
    if map.len() != 1 {
        return Err(malformed("expected exactly one action"));
    }
    let (name, meta) = map.into_iter().next().unwrap_or_default();
    let action = ACTIONS
        .iter()
        .find(|a| **a == name)
        .ok_or_else(|| malformed(&format!("unknown action [{name}]")))?;
    match meta {
        Value::Object(m) => Ok((action, m)),
        _ => Err(malformed("expected an object of metadata")),
    }
}

/// The items of a bulk body; `default_index` is the path's (`/{index}/_bulk`).
pub fn parse(body: &[u8], default_index: Option<&str>) -> Result<Vec<Item>, String> {
    let blank = |l: &[u8]| l.iter().all(u8::is_ascii_whitespace);
    // The newline that ends the body ends its last line; it does not start another.
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    let mut lines = body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)));
    let mut items = Vec::new();
    while let Some((number, line)) = lines.next() {
        // Blank lines between items are skipped; a blank document line is a document.
        if blank(line) {
            continue;
        }
        let (action, meta) = action_line(line, number)?;
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(default_index)
            .unwrap_or_default()
            .to_string();
        let id = meta.get("_id").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let source = if action == "delete" {
            None
        } else {
            let (_, l) = lines.next().ok_or_else(|| {
                format!("the [{action}] action on line [{number}] has no document line after it")
            })?;
            Some(l)
        };
        let doc = if action == "update" || action == "delete" {
            Err(ItemError::new(
                400,
                "illegal_argument_exception",
                format!("[{action}] is not supported: Strata keeps log records as they arrived"),
            ))
        } else if index.is_empty() {
            Err(ItemError::new(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
            ))
        } else {
            serde_json::from_slice::<Value>(source.unwrap_or_default()).map_err(|e| {
                ItemError::new(
                    400,
                    "document_parsing_exception",
                    format!("failed to parse the document: {e}"),
                )
            })
        };
        items.push(Item {
            action,
            index,
            id,
            doc,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_documents_and_item_errors() {
        let body = b"{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"one\"}\n\
            {\"create\":{\"_id\":7}}\n{\"message\":\"two\"}\n\
            {\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n\
            {\"update\":{\"_id\":\"1\"}}\n{\"doc\":{}}\n\
            {\"index\":{}}\n{not json\n";
        let items = parse(body, Some("dflt")).unwrap();
        assert_eq!(items.len(), 5);
        // A blank document line is that document (not JSON), not a line to skip.
        let shifted = parse(b"{\"index\":{}}\n\n{\"index\":{}}\n{}\n", Some("i")).unwrap();
        assert_eq!(shifted.len(), 2);
        assert!(shifted[0].doc.is_err() && shifted[1].doc.is_ok());
        assert_eq!(items[0].index, "a");
        assert!(items[0].doc.is_ok());
        assert_eq!(
            (items[1].index.as_str(), items[1].id.as_deref()),
            ("dflt", Some("7"))
        );
        assert_eq!(
            items[2].doc.as_ref().unwrap_err().kind,
            "illegal_argument_exception"
        );
        assert_eq!(items[3].action, "update");
        assert_eq!(
            items[4].doc.as_ref().unwrap_err().kind,
            "document_parsing_exception"
        );
        let none = parse(b"{\"index\":{}}\n{}\n", None).unwrap();
        assert_eq!(
            none[0].doc.as_ref().unwrap_err().kind,
            "action_request_validation_exception"
        );
    }

    #[test]
    fn a_bad_action_line_fails_the_request() {
        let e = parse(b"{\"index\":{}}\n{}\n{\"upsert\":{}}\n{}\n", Some("i")).unwrap_err();
        assert!(e.contains("line [3]") && e.contains("upsert"), "{e}");
        assert!(parse(b"{\"index\":{}}\n", Some("i")).is_err());
        assert!(parse(b"[1]\n", Some("i")).is_err());
        assert!(parse(b"", Some("i")).unwrap().is_empty());
    }
}
