//! Text hygiene: no control character gets past the edge. NUL in particular, which
//! PostgreSQL cannot store in text: a record carrying one would be acknowledged and then
//! stop the projector that cannot write it. Free text in a body may hold newlines and tabs;
//! paths, queries, headers and token claims hold none.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::problem::Problem;

/// The first character of `text` that may not appear in it, if any.
pub fn forbidden_char(text: &str, free_text: bool) -> Option<char> {
    text.chars().find(|c| c.is_control() && !(free_text && matches!(c, '\n' | '\t')))
}

/// Whether `text` is an id as clients may choose one (a correlation or causation id): a
/// UUID, or up to 64 letters, digits and `-_.:/`.
pub fn is_id(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
}

/// Refuses the value of header `name` unless it is an id ([`is_id`]).
pub fn require_id(name: &'static str, value: &str) -> Result<(), Problem> {
    if is_id(value) {
        return Ok(());
    }
    Err(Problem::bad_request(format!("{name} must be an id: a UUID, or up to 64 letters, digits and -_.:/")).with("field", name))
}

fn describe(c: char) -> String {
    format!("U+{:04X} (a control character) is not allowed", c as u32)
}

/// Refuses a request whose path, query, headers or JSON body hold a control character, with
/// a 400 (a 422 naming the field, for a body), before any handler sees it.
pub async fn refuse_control_characters(request: Request, next: Next) -> Response {
    match checked(request).await {
        Ok(request) => next.run(request).await,
        Err(problem) => problem.into_response(),
    }
}

async fn checked(request: Request) -> Result<Request, Problem> {
    let uri = request.uri();
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
    if let Some(c) = forbidden_char(&path, false) {
        return Err(Problem::bad_request(format!("the path: {}", describe(c))));
    }
    if let Some(query) = uri.query() {
        // '+' is a space in a query; neither is a control character.
        let decoded = percent_encoding::percent_decode_str(query).decode_utf8_lossy();
        if let Some(c) = forbidden_char(&decoded, false) {
            return Err(Problem::bad_request(format!("the query: {}", describe(c))));
        }
    }
    for (name, value) in request.headers() {
        // A header value may hold tabs (RFC 9110, field-value); nothing else below a space.
        if let Some(b) = value.as_bytes().iter().find(|b| (**b < 0x20 && **b != b'\t') || **b == 0x7f) {
            return Err(Problem::bad_request(format!("header {name}: byte 0x{b:02X} (a control character) is not allowed")));
        }
    }
    let is_json = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("application/") && t.contains("json"));
    if !is_json {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, crate::MAX_BODY)
        .await
        .map_err(|_| Problem::payload_too_large(format!("at most {} bytes", crate::MAX_BODY)))?;
    // A body that is not JSON is the handler's to refuse, with its own words.
    if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
        check_json(&value, &mut String::new())?;
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Walks every key and string of a JSON body; `at` is the path so far ("lines[2].product").
fn check_json(value: &Value, at: &mut String) -> Result<(), Problem> {
    match value {
        Value::String(text) => match forbidden_char(text, true) {
            Some(c) => Err(Problem::invalid_field(if at.is_empty() { "(body)" } else { at }, describe(c))),
            None => Ok(()),
        },
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| within(at, &format!("[{i}]"), |at| check_json(item, at))),
        Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            if let Some(c) = forbidden_char(key, false) {
                return Err(Problem::bad_request(format!("a field name: {}", describe(c))));
            }
            let step = if at.is_empty() { key.clone() } else { format!(".{key}") };
            within(at, &step, |at| check_json(item, at))
        }),
        _ => Ok(()),
    }
}

fn within<T>(at: &mut String, step: &str, f: impl FnOnce(&mut String) -> T) -> T {
    let len = at.len();
    at.push_str(step);
    let result = f(at);
    at.truncate(len);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_tabs_are_free_text_only() {
        assert_eq!(forbidden_char("two\nlines\tand a tab", true), None);
        assert_eq!(forbidden_char("two\nlines", false), Some('\n'));
        assert_eq!(forbidden_char("nul\0byte", true), Some('\0'));
        assert_eq!(forbidden_char("carriage\rreturn", true), Some('\r'));
        assert_eq!(forbidden_char("c1 \u{85} control", true), Some('\u{85}'));
        assert_eq!(forbidden_char("Zoë Ω 東京", false), None);
    }

    #[test]
    fn ids_are_short_and_plain() {
        assert!(is_id("corr-42") && is_id("0193e3c0-7d1a-7c4e-9a53-2f0c1b7d9e10") && is_id("lead/0193e3c0"));
        assert!(!is_id("") && !is_id("two words") && !is_id(&"x".repeat(65)) && !is_id("<script>"));
    }

    #[test]
    fn a_body_is_refused_naming_the_field() {
        let body = serde_json::json!({"name": "ok", "lines": [{"product": "fine"}, {"product": "bad\u{0}"}]});
        let problem = check_json(&body, &mut String::new()).unwrap_err();
        assert_eq!((problem.status, problem.extra["field"].as_str()), (422, Some("lines[1].product")));
        assert!(check_json(&serde_json::json!({"note": "line one\nline two"}), &mut String::new()).is_ok());
    }
}
