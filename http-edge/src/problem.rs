//! RFC 9457 problem details: every error a client sees says what was wrong.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Extension members: `field`, `rule`, `current_version` …
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
    #[serde(skip)]
    pub www_authenticate: bool,
}

impl Problem {
    /// `code` names the problem type (`/problems/<code>`); `title` is its short summary.
    pub fn new(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("/problems/{code}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            extra: Map::new(),
            retry_after_secs: None,
            www_authenticate: false,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Problem {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Problem {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Marks a 401, whose answer must say how to authenticate.
    pub fn www_authenticate(mut self) -> Problem {
        self.www_authenticate = true;
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", "The request is malformed", detail)
    }

    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Problem {
        let detail = detail.into();
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", "A field has an invalid value", format!("{field}: {detail}"))
            .with("field", field)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "No such resource", detail)
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "The body is too large", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "A dependency is unavailable", detail).retry_after(1)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(status = self.status, detail = %self.detail, "answering with a server error");
        }
        let retry_after = self.retry_after_secs;
        let www_authenticate = self.www_authenticate;
        let mut response = (status, serde_json::to_string(&self).expect("a problem serializes")).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Problem {
        // axum's text names the path of the offending field ("amount.value: invalid type …").
        let detail = rejection.body_text();
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Problem::payload_too_large(detail);
        }
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Send JSON with Content-Type: application/json",
                detail,
            ),
            _ => Problem::bad_request(detail),
        }
    }
}

/// `Json<T>` whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct ProblemJson<T>(pub T);

/// `Query<T>` whose rejections are problem+json: a value a parameter does not take is a
/// `422` naming the parameter (as the OpenAPI documents promise); a query that cannot be
/// read at all, or lacks a required parameter, is a `400`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ProblemQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Problem> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ProblemQuery).map_err(|e| {
            let field = e.path().to_string();
            match field.as_str() {
                "." | "" => Problem::bad_request(format!("the query string: {}", e.inner())),
                _ => Problem::invalid_field(&field, e.inner().to_string()),
            }
        })
    }
}

impl From<axum::extract::rejection::PathRejection> for Problem {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Problem {
        Problem::bad_request(rejection.body_text())
    }
}

/// `Path<T>` whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct ProblemPath<T>(pub T);
