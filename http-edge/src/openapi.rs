//! Every service's OpenAPI document says what its operations may answer. The answers that
//! the edge gives on any operation (a malformed request, a missing token, a rate limit, a
//! timeout) and the rules it applies to every text (no control characters) are written here
//! once, so that no handler's annotation can forget them; each handler declares only the
//! answers and constraints of its own.

use serde_json::{json, Map, Value};

/// Free text in a body: no control character but newline and tab ([`crate::text`]).
pub const TEXT: &str = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$";
/// A name the domain trims and requires: free text with at least one visible character.
pub const NAME: &str = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$";
/// Text in a path, a query or a header: no control character at all.
pub const LINE: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";

/// A string that takes one of `names`, for `#[schema(schema_with = …)]` and
/// `#[param(schema_with = …)]`: the names come from the domain's own list, never a copy.
pub fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(names.into_iter().map(String::from)))
        .build()
}

/// A string matching `pattern`.
pub fn matching(pattern: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).pattern(Some(pattern)).build()
}

/// An integer in `range`.
pub fn integer_in(range: std::ops::RangeInclusive<i64>) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .minimum(Some(*range.start() as f64))
        .maximum(Some(*range.end() as f64))
        .build()
}

/// A consistency token as answers give it: sealed, so no pattern can tell a valid one, hence
/// a format of its own.
pub fn consistency_token() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::Custom("consistency-token".into())))
        .description(Some("`consistency_token` of an earlier answer to the same tenant"))
        .build()
}

/// A name the domain trims and requires (an account's, a deal's, a reason), as
/// `valid_name` takes it.
pub fn name() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(NAME))
        .min_length(Some(1))
        .max_length(Some(tidemark_events::opportunity::MAX_TEXT))
        .build()
}

/// A day within the window the domain takes ([`tidemark_events::dates`]). The pattern
/// names days 01 to 28 only; the rest of each month is valid too, but no pattern of
/// reasonable size says which.
pub const DATE: &str = r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$";

pub fn date() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Date)))
        .pattern(Some(DATE))
        .description(Some(format!("a day from {} to {}", tidemark_events::dates::FIRST, tidemark_events::dates::LAST)))
        .build()
}

/// Money as the domain takes it: a currency in use (ISO 4217) and a plain decimal string,
/// not negative, with at most the currency's minor unit's decimal places (one schema per
/// number of places, hence `oneOf`).
pub fn money() -> utoipa::openapi::Schema {
    let mut by_places: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
    for (code, places) in tidemark_events::money::currencies_in_use() {
        by_places.entry(places).or_default().push(code);
    }
    let mut schema = utoipa::openapi::schema::OneOfBuilder::new()
        .description(Some("An exact amount: `value` is a decimal string such as \"12000.00\", never a number."));
    for (places, codes) in by_places {
        let value = matching(&decimal_pattern(places));
        let object = utoipa::openapi::ObjectBuilder::new()
            .property("value", value)
            .property("currency", one_of(codes))
            .required("value")
            .required("currency")
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
            .build();
        schema = schema.item(object);
    }
    utoipa::openapi::Schema::OneOf(schema.build())
}

/// A plain decimal, not negative, with at most `places` decimal places and the integer
/// digits the domain allows.
pub fn decimal_pattern(places: u32) -> String {
    let whole = format!("[0-9]{{1,{}}}", tidemark_events::money::MAX_INTEGER_DIGITS);
    match places {
        0 => format!("^{whole}$"),
        _ => format!(r"^{whole}(\.[0-9]{{1,{places}}})?$"),
    }
}

/// A currency in use (ISO 4217).
pub fn currency() -> utoipa::openapi::Object {
    one_of(tidemark_events::money::currencies_in_use().map(|(code, _)| code))
}

/// An address of the shape name@domain.tld, as the domain checks it.
pub fn email() -> utoipa::openapi::Object {
    let label = "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?";
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(format!(r"^[^\s@\x00-\x1F\x7F-\x9F]+@({label}\.)+{label}$")))
        .max_length(Some(254))
        .examples([json!("ana@example.com")])
        .build()
}

/// A phone number in the international format: a plus, then 8 to 15 digits. The server
/// also takes spaces, dashes, dots and parentheses between them; the document names the
/// plain form only.
pub fn phone() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(r"^\+[1-9][0-9]{7,14}$"))
        .examples([json!("+49301234567")])
        .build()
}

/// The path parameters that mean the same on every path; a path may declare its own instead.
fn path_parameter(name: &str) -> Option<Value> {
    let uuid = json!({"type": "string", "format": "uuid"});
    let (schema, description) = match name {
        "id" => (uuid, "the resource's id"),
        "quote_id" => (uuid, "the quote's id"),
        "review_id" => (uuid, "the review's id"),
        "user_id" => (json!({"type": "string", "minLength": 1}), "a user of the tenant, e.g. bob"),
        _ => return None,
    };
    Some(json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema}))
}

/// The problems the edge may answer on any operation, and why.
const EVERY_OPERATION: &[(u16, &str)] = &[
    (400, "The request is malformed: a header, the path or the query (a control character, an id that is not one)"),
    (503, "A dependency did not answer in time; retry after Retry-After"),
];
const AUTHENTICATED: &[(u16, &str)] = &[
    (401, "No valid bearer token"),
    (403, "The policy denies this principal the operation (recorded for auditors)"),
    (429, "Too many requests from this principal or tenant; retry after Retry-After"),
];
const WITH_BODY: &[(u16, &str)] = &[
    (400, "The body is not JSON of the documented shape"),
    (413, "The body is larger than 64 KiB"),
    (415, "The body is not sent as application/json"),
    (422, "A field breaks this document's constraints (`invalid-field`, naming `field`), or a domain rule refuses the command (its `rule`)"),
];
const WITH_PATH_PARAMETERS: &[(u16, &str)] = &[(404, "No such resource, or none that this principal may know of")];
const WITH_QUERY_PARAMETERS: &[(u16, &str)] = &[(422, "A query parameter breaks this document's constraints (`invalid-field`, naming `field`)")];

/// The document as served: `api` completed with what the edge adds to every operation.
pub fn complete(api: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).expect("an OpenAPI document serializes");
    doc["components"]["schemas"]["Problem"] = problem_schema();
    doc["components"]["securitySchemes"]["bearer"] = json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"});
    doc["security"] = json!([{"bearer": []}]);
    let paths = doc["paths"].as_object_mut().expect("a document has paths");
    for (path, item) in paths.iter_mut() {
        for (method, operation) in item.as_object_mut().expect("a path item").iter_mut() {
            if matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch") {
                complete_operation(path, operation);
            }
        }
    }
    constrain_text(&mut doc["components"]["schemas"], TEXT);
    for name in request_schemas(&doc) {
        merge_all_of(&mut doc["components"]["schemas"], &name);
        close(&mut doc["components"]["schemas"][&name]);
    }
    split_nullable(&mut doc);
    doc
}

/// The component schemas that request bodies use, directly or through others.
fn request_schemas(doc: &Value) -> std::collections::BTreeSet<String> {
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.trim_start_matches("#/components/schemas/").to_string());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut pending = Vec::new();
    for item in doc["paths"].as_object().into_iter().flat_map(|paths| paths.values()) {
        for operation in item.as_object().into_iter().flat_map(|ops| ops.values()) {
            refs(&operation["requestBody"], &mut pending);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if seen.insert(name.clone()) {
            refs(&doc["components"]["schemas"][&name], &mut pending);
        }
    }
    seen
}

/// A body flattened from parts (`#[serde(flatten)]`, an `allOf` of objects) becomes one
/// object, so that it can be closed: each part closed on its own would refuse the others'
/// fields.
fn merge_all_of(schemas: &mut Value, name: &str) {
    let Some(parts) = schemas[name]["allOf"].as_array().cloned() else { return };
    let mut merged = json!({"type": "object", "properties": {}, "required": []});
    for part in parts {
        let part = match part["$ref"].as_str() {
            Some(target) => schemas[target.trim_start_matches("#/components/schemas/")].clone(),
            None => part,
        };
        assert_eq!(part["type"], "object", "{name}: only objects are flattened into a request body");
        for (field, schema) in part["properties"].as_object().into_iter().flatten() {
            merged["properties"][field] = schema.clone();
        }
        for field in part["required"].as_array().into_iter().flatten() {
            merged["required"].as_array_mut().expect("required").push(field.clone());
        }
    }
    if let Some(description) = schemas[name].get("description") {
        merged["description"] = description.clone();
    }
    schemas[name] = merged;
}

/// A request names only the fields its schema lists: the server ignores others, and the
/// document says not to send them.
fn close(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("type") == Some(&json!("object")) && map.contains_key("properties") {
                map.entry("additionalProperties").or_insert(json!(false));
            }
            map.values_mut().for_each(close);
        }
        Value::Array(items) => items.iter_mut().for_each(close),
        _ => {}
    }
}

/// `"type": ["string", "null"]` with a format or pattern becomes `anyOf` a string and null:
/// generators that read the array form drop the string's constraints.
fn split_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let nullable = map.get("type").and_then(Value::as_array).filter(|t| t.len() == 2 && t.contains(&json!("null"))).cloned();
            if let Some(types) = nullable {
                let kind = types.into_iter().find(|t| t != "null").expect("a type besides null");
                let mut inner = std::mem::take(map);
                let description = inner.remove("description");
                inner.insert("type".into(), kind);
                map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                if let Some(description) = description {
                    map.insert("description".into(), description);
                }
            }
            map.values_mut().for_each(split_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(split_nullable),
        _ => {}
    }
}

fn complete_operation(path: &str, operation: &mut Value) {
    let op = operation.as_object_mut().expect("an operation");
    let parameters = op.entry("parameters").or_insert_with(|| json!([])).as_array_mut().expect("parameters");
    for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
        if !parameters.iter().any(|p| p["in"] == "path" && p["name"] == name) {
            let known = path_parameter(name).unwrap_or_else(|| panic!("{path}: declare path parameter {name} on its operation, or in path_parameter"));
            parameters.push(known);
        }
    }
    for parameter in parameters.iter_mut() {
        // A header, path or query value is absent or a string: never null.
        if let Some(types) = parameter["schema"]["type"].as_array() {
            let kind = types.iter().find(|t| *t != "null").cloned().expect("a type besides null");
            parameter["schema"]["type"] = kind;
        }
        constrain_text(&mut parameter["schema"], LINE);
    }
    let has_path_parameters = path.contains('{');
    let has_query_parameters = parameters.iter().any(|p| p["in"] == "query");
    let has_body = op.contains_key("requestBody");
    // `security: [{}]` marks an operation that anyone may call.
    let authenticated = op.get("security").is_none_or(|s| !s.as_array().is_some_and(|a| a.iter().any(|r| r.as_object().is_some_and(Map::is_empty))));
    let responses = op.entry("responses").or_insert_with(|| json!({})).as_object_mut().expect("responses");
    let mut add = |statuses: &[(u16, &str)]| {
        for (status, description) in statuses {
            let response = responses.entry(status.to_string()).or_insert_with(|| json!({"description": ""}));
            if response["description"] == "" {
                response["description"] = json!(description);
            }
        }
    };
    add(EVERY_OPERATION);
    if authenticated {
        add(AUTHENTICATED);
    }
    if has_body {
        add(WITH_BODY);
    }
    if has_path_parameters {
        add(WITH_PATH_PARAMETERS);
    }
    if has_query_parameters {
        add(WITH_QUERY_PARAMETERS);
    }
    for (status, response) in responses.iter_mut() {
        let is_problem = status.starts_with('4') || status.starts_with('5');
        if is_problem && response.get("content").is_none() {
            response["content"] = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
        }
    }
}

/// Gives every string schema under `schema` that says nothing of its characters the
/// `pattern` that the edge enforces.
fn constrain_text(schema: &mut Value, pattern: &str) {
    match schema {
        Value::Object(map) => {
            let is_free_string = map.get("type").is_some_and(|t| t == "string" || t.as_array().is_some_and(|a| a.contains(&json!("string"))))
                && !["pattern", "format", "enum", "const"].iter().any(|k| map.contains_key(*k));
            if is_free_string {
                map.insert("pattern".into(), json!(pattern));
            }
            for value in map.values_mut() {
                constrain_text(value, pattern);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| constrain_text(v, pattern)),
        _ => {}
    }
}

/// RFC 9457 problem details, as [`crate::Problem`] writes them.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "the problem's type, e.g. /problems/invalid-field", "example": "/problems/invalid-field"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "what was wrong, in words"},
            "field": {"type": "string", "description": "the field that was wrong, for invalid-field"},
            "rule": {"type": "string", "description": "the domain rule that refused the command"},
        },
        "additionalProperties": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_need_a_visible_character_and_no_text_holds_a_control_character() {
        let matches = |pattern: &str, text: &str| regex::Regex::new(pattern).unwrap().is_match(text);
        assert!(matches(NAME, "Acme GmbH") && matches(NAME, " x\n") && !matches(NAME, "  \n\t") && !matches(NAME, "a\u{0}b"));
        assert!(matches(TEXT, "two\nlines\tand tabs") && !matches(TEXT, "a\u{7f}") && !matches(TEXT, "a\u{85}"));
        assert!(matches(LINE, "bob") && !matches(LINE, "b\nob"));
    }

    #[test]
    fn the_date_pattern_spans_the_domains_window() {
        use tidemark_events::dates::{FIRST, LAST};
        let date = regex::Regex::new(DATE).unwrap();
        let day = chrono::Days::new(1);
        assert!(date.is_match(&FIRST.to_string()) && !date.is_match(&(FIRST - day).to_string()));
        assert!(date.is_match(&(LAST - chrono::Days::new(3)).to_string()) && !date.is_match(&(LAST + day).to_string()));
    }

    #[test]
    fn the_money_schema_has_every_currency_in_use_once() {
        let money = serde_json::to_value(money()).unwrap();
        let codes: Vec<&str> = money["oneOf"].as_array().unwrap().iter().flat_map(|o| o["properties"]["currency"]["enum"].as_array().unwrap()).map(|c| c.as_str().unwrap()).collect();
        assert!(codes.contains(&"EUR") && codes.contains(&"JPY") && !codes.contains(&"XAU") && !codes.contains(&"ZZZ"));
        assert_eq!(codes.len(), tidemark_events::money::currencies_in_use().count());
        let cents = regex::Regex::new(&decimal_pattern(2)).unwrap();
        assert!(cents.is_match("12000.00") && cents.is_match("5") && !cents.is_match("1.234") && !cents.is_match("-1") && !cents.is_match("1e3"));
    }
}
