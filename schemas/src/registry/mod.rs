//! A schema registry that speaks the Confluent Schema Registry REST API, backed by
//! PostgreSQL, with real Avro compatibility checks. Any other Confluent-API registry can
//! stand in for it: Tidemark's writers and readers only use the public API.

mod store;

use apache_avro::Schema;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::compatibility::Level;
use tidemark_events::policy::{self, Denial};
use tidemark_http::Principal;
pub use store::Store;

/// This crate's tables. Crates share one migration history, so each ignores the others'.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Errors with the registry's usual bodies: `{"error_code": 40401, "message": "…"}`.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {1} not found for subject '{0}'.")]
    VersionNotFound(String, String),
    #[error("Schema {0} not found")]
    SchemaNotFound(i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\" under {}: {}", level.name(), problems.join("; "))]
    Incompatible { subject: String, level: Level, problems: Vec<String> },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level '{0}'. Valid values are NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE")]
    InvalidLevel(String),
    #[error("Error in the backend data store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("Internal error: {0}")]
    Internal(String),
}

impl RegistryError {
    fn codes(&self) -> (StatusCode, u32) {
        use RegistryError::*;
        match self {
            SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            VersionNotFound(..) => (StatusCode::NOT_FOUND, 40402),
            SchemaNotFound(_) => (StatusCode::NOT_FOUND, 40403),
            SubjectConfigNotFound(_) => (StatusCode::NOT_FOUND, 40408),
            Incompatible { .. } => (StatusCode::CONFLICT, 409),
            InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            InvalidLevel(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        // The database's own words stay in the log, under a reference the client is given.
        let message = if status.is_server_error() {
            let reference = uuid::Uuid::now_v7();
            tracing::error!(%reference, error = %self, "registry request failed");
            format!("Internal error (reference {reference})")
        } else {
            self.to_string()
        };
        registry_json(status, json!({"error_code": code, "message": message}))
    }
}

fn registry_json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

fn ok(body: impl Serialize) -> Response {
    registry_json(StatusCode::OK, serde_json::to_value(body).expect("serializable"))
}

type Shared = Arc<Store>;

#[derive(OpenApi)]
#[openapi(info(title = "Tidemark schema registry", description = "Confluent Schema Registry REST API subset, backed by PostgreSQL."))]
struct ApiDoc;

/// The registry's routes, with `/openapi.json`, `/healthz` and `/metrics`. Reads are open, as in
/// Confluent's registry; writes need a bearer token of an operator or of the system.
pub fn router(pool: PgPool, gate: Arc<tidemark_http::Gate>) -> axum::Router {
    let metrics = tidemark_http::ServiceMetrics::default();
    let scrape = tidemark_http::telemetry::Scrape { pool: pool.clone(), metrics: metrics.clone() };
    let store: Shared = Arc::new(Store::new(pool));
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(register))
        .routes(routes!(schema_by_id))
        .routes(routes!(subjects))
        .routes(routes!(subject_versions))
        .routes(routes!(subject_version))
        .routes(routes!(check_compatibility))
        .routes(routes!(get_global_config, put_global_config))
        .routes(routes!(get_subject_config, put_subject_config))
        .routes(routes!(healthz))
        .merge(tidemark_http::telemetry::routes(scrape))
        .with_state(store)
        .split_for_parts();
    tidemark_http::finish(router, api, gate, metrics)
}

/// A principal allowed to change the registry, which every tenant shares: an operator of the
/// deployment, or the system (Tidemark's writer). A tenant's admin may read it only.
struct Writer;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Writer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Response> {
        let who = Principal::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        if policy::may_operate(&who.subject()) {
            return Ok(Writer);
        }
        let denial = Denial { code: "registry-writes-need-operator", reason: "changing schemas or compatibility levels needs the operator role: the registry is the deployment's".into() };
        Err(tidemark_http::denials::problem(denial).into_response())
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    /// The Avro schema, as a JSON string.
    schema: String,
    #[schema(schema_with = schema_types)]
    schema_type: Option<String>,
    /// Schema references are not supported: none or an empty list.
    #[serde(default)]
    #[schema(schema_with = no_references)]
    references: Vec<serde_json::Value>,
}

fn schema_types() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(["AVRO"])
}

fn no_references() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new().items(utoipa::openapi::Object::new()).max_items(Some(0)).build()
}

impl SchemaRequest {
    fn parse(&self) -> Result<Schema, RegistryError> {
        if let Some(kind) = self.schema_type.as_deref().filter(|k| *k != "AVRO") {
            return Err(RegistryError::InvalidSchema(format!("schemaType {kind} is not supported; only AVRO is")));
        }
        if !self.references.is_empty() {
            return Err(RegistryError::InvalidSchema("schema references are not supported".into()));
        }
        Schema::parse_str(&self.schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))
    }
}

#[derive(Serialize, ToSchema)]
struct RegisteredId {
    id: i32,
}

/// Registers a schema under a subject (or returns the id it already has there).
#[utoipa::path(post, path = "/subjects/{subject}/versions", request_body = SchemaRequest,
    responses((status = 200, body = RegisteredId), (status = 409, description = "incompatible"), (status = 422, description = "invalid schema")))]
async fn register(
    State(store): State<Shared>,
    _writer: Writer,
    Path(subject): Path<String>,
    Json(req): Json<SchemaRequest>,
) -> Result<Response, RegistryError> {
    let schema = req.parse()?;
    let id = store.register(&subject, &req.schema, &schema).await?;
    Ok(ok(RegisteredId { id }))
}

#[derive(Serialize, ToSchema)]
struct SchemaString {
    schema: String,
}

/// The schema with this global id.
#[utoipa::path(get, path = "/schemas/ids/{id}", security(()), responses((status = 200, body = SchemaString), (status = 404)))]
async fn schema_by_id(State(store): State<Shared>, Path(id): Path<i32>) -> Result<Response, RegistryError> {
    let schema = store.schema_by_id(id).await?.ok_or(RegistryError::SchemaNotFound(id))?;
    Ok(ok(SchemaString { schema }))
}

/// Every subject with at least one version.
#[utoipa::path(get, path = "/subjects", security(()), responses((status = 200, body = Vec<String>)))]
async fn subjects(State(store): State<Shared>) -> Result<Response, RegistryError> {
    Ok(ok(store.subjects().await?))
}

/// The version numbers of a subject.
#[utoipa::path(get, path = "/subjects/{subject}/versions", security(()), responses((status = 200, body = Vec<i32>), (status = 404)))]
async fn subject_versions(State(store): State<Shared>, Path(subject): Path<String>) -> Result<Response, RegistryError> {
    let versions: Vec<i32> = store.versions(&subject).await?.iter().map(|v| v.version).collect();
    Ok(ok(versions))
}

#[derive(Serialize, ToSchema)]
struct VersionBody {
    subject: String,
    id: i32,
    version: i32,
    schema: String,
}

/// Finds `latest` or a version number among a subject's versions (oldest first), returning
/// its index.
async fn pick_version(store: &Store, subject: &str, version: &str) -> Result<(Vec<store::SubjectVersion>, usize), RegistryError> {
    let wanted = match version {
        "latest" | "-1" => None,
        v => Some(v.parse::<i32>().ok().filter(|n| *n > 0).ok_or_else(|| RegistryError::InvalidVersion(v.to_string()))?),
    };
    let versions = store.versions(subject).await?;
    let index = match wanted {
        None => versions.len() - 1,
        Some(n) => versions
            .iter()
            .position(|v| v.version == n)
            .ok_or_else(|| RegistryError::VersionNotFound(subject.to_string(), n.to_string()))?,
    };
    Ok((versions, index))
}

/// One version of a subject, or its latest.
#[utoipa::path(get, path = "/subjects/{subject}/versions/{version}", security(()),
    params(("version" = String, Path, description = "a version number or `latest`")),
    responses((status = 200, body = VersionBody), (status = 404), (status = 422)))]
async fn subject_version(State(store): State<Shared>, Path((subject, version)): Path<(String, String)>) -> Result<Response, RegistryError> {
    let (mut versions, index) = pick_version(&store, &subject, &version).await?;
    let v = versions.swap_remove(index);
    Ok(ok(VersionBody { subject: v.subject, id: v.id, version: v.version, schema: v.schema }))
}

#[derive(Serialize, ToSchema)]
struct CompatibilityBody {
    is_compatible: bool,
    messages: Vec<String>,
}

/// Tests a schema against a version of a subject (and, for transitive levels, the versions
/// before it) under the subject's compatibility level.
#[utoipa::path(post, path = "/compatibility/subjects/{subject}/versions/{version}", request_body = SchemaRequest,
    params(("version" = String, Path, description = "a version number or `latest`")),
    responses((status = 200, body = CompatibilityBody), (status = 404), (status = 422)))]
async fn check_compatibility(
    State(store): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Json(req): Json<SchemaRequest>,
) -> Result<Response, RegistryError> {
    let candidate = req.parse()?;
    let (versions, index) = pick_version(&store, &subject, &version).await?;
    let history = versions[..=index]
        .iter()
        .map(|v| Schema::parse_str(&v.schema))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    let level = store.effective_level(&subject).await?;
    let messages = crate::compatibility::check(level, &candidate, &history);
    Ok(ok(CompatibilityBody { is_compatible: messages.is_empty(), messages }))
}

#[derive(Deserialize, ToSchema)]
struct ConfigRequest {
    #[schema(schema_with = levels)]
    compatibility: String,
}

fn levels() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(Level::ALL.map(Level::name))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConfigBody {
    compatibility_level: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
struct ConfigQuery {
    /// Answer with the global level when the subject has none of its own.
    #[serde(default)]
    default_to_global: bool,
}

fn parse_level(req: &ConfigRequest) -> Result<Level, RegistryError> {
    Level::parse(&req.compatibility).ok_or_else(|| RegistryError::InvalidLevel(req.compatibility.clone()))
}

/// The global compatibility level.
#[utoipa::path(get, path = "/config", security(()), responses((status = 200, body = ConfigBody)))]
async fn get_global_config(State(store): State<Shared>) -> Result<Response, RegistryError> {
    let level = store.level(None).await?.unwrap_or(crate::compatibility::DEFAULT_LEVEL);
    Ok(ok(ConfigBody { compatibility_level: level.name().into() }))
}

/// Sets the global compatibility level.
#[utoipa::path(put, path = "/config", request_body = ConfigRequest, responses((status = 200, body = ConfigRequest), (status = 422)))]
async fn put_global_config(State(store): State<Shared>, _writer: Writer, Json(req): Json<ConfigRequest>) -> Result<Response, RegistryError> {
    let level = parse_level(&req)?;
    store.set_level(None, level).await?;
    Ok(ok(json!({"compatibility": level.name()})))
}

/// A subject's own compatibility level.
#[utoipa::path(get, path = "/config/{subject}", security(()), params(ConfigQuery), responses((status = 200, body = ConfigBody), (status = 404)))]
async fn get_subject_config(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Query<ConfigQuery>,
) -> Result<Response, RegistryError> {
    let level = match store.level(Some(&subject)).await? {
        Some(level) => level,
        None if q.default_to_global => store.effective_level(&subject).await?,
        None => return Err(RegistryError::SubjectConfigNotFound(subject)),
    };
    Ok(ok(ConfigBody { compatibility_level: level.name().into() }))
}

/// Sets a subject's own compatibility level.
#[utoipa::path(put, path = "/config/{subject}", request_body = ConfigRequest, responses((status = 200, body = ConfigRequest), (status = 422)))]
async fn put_subject_config(
    State(store): State<Shared>,
    _writer: Writer,
    Path(subject): Path<String>,
    Json(req): Json<ConfigRequest>,
) -> Result<Response, RegistryError> {
    let level = parse_level(&req)?;
    store.set_level(Some(&subject), level).await?;
    Ok(ok(json!({"compatibility": level.name()})))
}

/// Whether the registry's database answers.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200), (status = 503)))]
async fn healthz(State(store): State<Shared>) -> Response {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok", "postgres": "ok"}))).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "postgres": e.to_string()}))).into_response(),
    }
}
