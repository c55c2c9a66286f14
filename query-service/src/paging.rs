//! Page sizes and cursors: lists are read a page at a time, in id order, and a page's
//! `next_cursor` says where the next one starts.

use std::ops::RangeInclusive;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::json;
use tidemark_http::Problem;
use uuid::Uuid;

use crate::cache::Cached;

/// A page size from the caller: 1 to 200, 50 when not given.
const PAGE_SIZES: RangeInclusive<i64> = 1..=200;
/// Audit lists: 1 to 1000, 100 when not given.
const AUDIT_PAGE_SIZES: RangeInclusive<i64> = 1..=1000;

pub(crate) fn page_size(limit: Option<i64>) -> Result<i64, Problem> {
    within("limit", limit.unwrap_or(50), PAGE_SIZES)
}

pub(crate) fn audit_limit(limit: Option<i64>) -> Result<i64, Problem> {
    within("limit", limit.unwrap_or(100), AUDIT_PAGE_SIZES)
}

fn within(field: &str, n: i64, range: RangeInclusive<i64>) -> Result<i64, Problem> {
    match range.contains(&n) {
        true => Ok(n),
        false => Err(Problem::invalid_field(field, format!("must be between {} and {}", range.start(), range.end()))),
    }
}

pub(crate) fn page_sizes() -> utoipa::openapi::Object {
    tidemark_http::openapi::integer_in(PAGE_SIZES)
}

pub(crate) fn audit_page_sizes() -> utoipa::openapi::Object {
    tidemark_http::openapi::integer_in(AUDIT_PAGE_SIZES)
}

/// A `next_cursor`: the URL-safe base64 of the last id of a page (16 bytes, so 22
/// characters, the last of which carries 2 bits).
pub(crate) fn cursors() -> utoipa::openapi::Object {
    tidemark_http::openapi::matching(r"^[A-Za-z0-9_-]{21}[AQgw]$")
}

/// A page of `rows` read with one row more than `limit`: that row, when there, says a next
/// page exists, whose cursor is the page's last id.
pub(crate) fn page<T: Serialize>(rows: Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> Cached {
    let more = rows.len() as i64 > limit;
    let page: Vec<T> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = page.last().filter(|_| more).map(|last| URL_SAFE_NO_PAD.encode(id(last).as_bytes()));
    Cached::with_extra(page, serde_json::Map::from_iter([("next_cursor".to_string(), json!(next_cursor))]))
}

/// The id after which a page starts, from the previous page's `next_cursor`.
pub(crate) fn cursor(text: Option<String>) -> Result<Option<Uuid>, Problem> {
    text.map(|text| {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|b| Uuid::from_slice(&b).ok())
            .ok_or_else(|| Problem::bad_request("cursor: not a cursor from a previous page"))
    })
    .transpose()
}
