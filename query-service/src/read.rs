//! The read path every answer takes: the bound the caller asked for, waiting for it, one
//! repeatable-read snapshot, the answer cache, and the staleness note and consistency
//! token on the answer.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use tidemark_events::policy::Denial;
use tidemark_http::{audit, denials, Principal, Problem, ProblemQuery, CONSISTENCY_TOKEN};
use tidemark_projectors::Projection;
use utoipa::{IntoParams, ToSchema};

use crate::bound::{self, Bound};
use crate::cache::CacheKey;
use crate::freshness::{self, database, Staleness};
use crate::query::Query;
use crate::AppState;

/// The bound a caller asks for. Endpoints choose their own default consistency.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BoundParams {
    /// `strong` (reflect everything appended before the request arrived) or `eventual`.
    #[param(inline)]
    consistency: Option<Consistency>,
    /// Reflect every record older than this many milliseconds at arrival.
    max_staleness_ms: Option<u64>,
    /// How long to wait for the bound, in ms (default 5000; more is taken as 30000).
    wait_ms: Option<u64>,
    /// `fail` (default: 503 with Retry-After) or `serve` (answer anyway, marked `fresh: false`).
    #[param(inline)]
    on_stale: Option<OnStale>,
    /// A token from a command's or a read's answer (also as header `Consistency-Token`).
    #[param(schema_with = tidemark_http::openapi::consistency_token)]
    consistency_token: Option<String>,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Consistency {
    Strong,
    Eventual,
}

#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum OnStale {
    #[default]
    Fail,
    Serve,
}

pub(crate) struct AskedBound {
    bound: Bound,
    consistency: Option<bool>,
}

impl AskedBound {
    /// The bound, with `strong_by_default` deciding when the caller named no consistency.
    pub(crate) fn with_default(self, strong_by_default: bool) -> Bound {
        Bound { strong: self.consistency.unwrap_or(strong_by_default), ..self.bound }
    }
}

impl FromRequestParts<AppState> for AskedBound {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let ProblemQuery(p) = ProblemQuery::<BoundParams>::from_request_parts(parts, state).await?;
        let header = match parts.headers.get(CONSISTENCY_TOKEN) {
            Some(v) => Some(v.to_str().map_err(|_| Problem::bad_request("Consistency-Token must be visible ASCII"))?.to_string()),
            None => None,
        };
        let token = match header.or(p.consistency_token) {
            Some(text) => {
                let who = Principal::from_request_parts(parts, state).await?;
                Some(state.tokens.decode(&who.tenant_id, &text).map_err(|e| Problem::bad_request(e.to_string()).with("field", "consistency_token"))?)
            }
            None => None,
        };
        let consistency = p.consistency.map(|c| matches!(c, Consistency::Strong));
        let serve_stale = matches!(p.on_stale.unwrap_or_default(), OnStale::Serve);
        let wait = p.wait_ms.map_or(bound::DEFAULT_WAIT, |ms| Duration::from_millis(ms).min(bound::MAX_WAIT));
        let bound = Bound { strong: false, max_staleness: p.max_staleness_ms.map(Duration::from_millis), token, wait, serve_stale };
        Ok(AskedBound { bound, consistency })
    }
}

/// Where another projection that an answer reads stood: (partition, next offset, generation).
/// Read only as part of the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Standings(pub(crate) Vec<(i32, i64, i64)>);

/// Why a read was refused.
pub(crate) enum Refusal {
    Problem(Problem),
    Denied { denial: Denial, action: &'static str, target: String },
}

impl From<Problem> for Refusal {
    fn from(p: Problem) -> Refusal {
        Refusal::Problem(p)
    }
}

impl AppState {
    /// Holds a second projection that an answer reads to the same bound, and says where it
    /// stands. The staleness note speaks of the first projection, where the answer's main
    /// rows are.
    pub(crate) async fn also_hold<P: Projection>(&self, bound: &Bound) -> Result<Standings, Problem> {
        let ends = self.freshness.log_end_offsets(&P::topics(&self.topics)).await?;
        self.freshness.await_bound(&self.reads, P::NAME, &ends, bound).await?;
        let mut db = self.reads.acquire().await.map_err(database)?;
        let mut standing: Vec<_> =
            freshness::standings(&mut db, P::NAME).await.map_err(database)?.into_iter().map(|s| (s.partition, s.next_offset, s.generation)).collect();
        standing.sort();
        Ok(Standings(standing))
    }

    /// Waits for the bound, then answers from one repeatable-read snapshot, so the note
    /// speaks of exactly the rows returned.
    #[tracing::instrument(name = "read", skip_all, fields(projection = P::NAME, tenant = %who.tenant_id, user = %who.actor_id))]
    pub(crate) async fn read<P: Projection>(&self, who: &Principal, bound: Bound, query: impl Into<Query>) -> Result<Response, Problem> {
        let tenant = who.tenant_id.as_str();
        let topics = P::topics(&self.topics);
        let ends = self.freshness.log_end_offsets(&topics).await?;
        self.freshness.await_bound(&self.reads, P::NAME, &ends, &bound).await?;

        let mut tx = self.reads.begin().await.map_err(database)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await.map_err(database)?;
        let standing = freshness::standings(&mut tx, P::NAME).await.map_err(database)?;
        // A read that waited for a command's records: its trace leads on to the batches that
        // applied them (the last batch of each partition the token names).
        if let Some(token) = &bound.token {
            for s in standing.iter().filter(|s| token.0.contains_key(&(s.topic.clone(), s.partition))) {
                if let Some(traceparent) = &s.traceparent {
                    tidemark_http::traces::link(&tracing::Span::current(), traceparent);
                }
            }
        }
        let key = CacheKey::new(tenant, query.into(), &standing);
        let answer = match self.cache.get(&key).await {
            Some(answer) => answer,
            None => match key.query().run(&mut tx, tenant).await {
                Ok(answer) => {
                    let answer = Arc::new(answer);
                    self.cache.insert(key, answer.clone()).await;
                    answer
                }
                Err(Refusal::Problem(problem)) => return Err(problem),
                Err(Refusal::Denied { denial, action, target }) => return Err(denials::deny(&self.pool, who, action, &target, denial).await),
            },
        };
        tx.commit().await.map_err(database)?;

        let note: Staleness = self.freshness.note(P::NAME, &ends, &standing, &bound).await;
        let token = self.tokens.encode(tenant, &freshness::answer_token(bound.token.as_ref(), &standing));
        let headers = staleness_headers(&note, &token);
        let body = Answer { data: &answer.data, staleness: &note, consistency_token: &token, extra: &answer.extra };
        let mut response = (StatusCode::OK, headers, Json(body)).into_response();
        if answer.shows_personal_data {
            response.extensions_mut().insert(PersonalDataShown);
        }
        Ok(response)
    }
}

/// The staleness note and the consistency token as headers, which every read's answer has
/// (a body that is no JSON, like a PDF, has only these).
pub(crate) fn staleness_headers(note: &Staleness, token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("staleness-lag-events", HeaderValue::from(note.lag_events));
    if let Some(ms) = note.lag_ms {
        headers.insert("staleness-lag-ms", HeaderValue::from(ms));
    }
    headers.insert("staleness-fresh", HeaderValue::from_static(if note.fresh { "true" } else { "false" }));
    headers.insert(CONSISTENCY_TOKEN, HeaderValue::from_str(token).expect("tokens are ASCII"));
    headers
}

/// Records, for auditors, that an answer showed personal fields, when it did: an empty
/// list, or rows whose fields were withheld or erased, showed nobody's.
pub(crate) async fn seen(state: &AppState, who: &Principal, target: String, answer: Result<Response, Problem>) -> Result<Response, Problem> {
    let answer = answer?;
    if answer.extensions().get::<PersonalDataShown>().is_some() {
        audit::record_personal_read(&state.pool, who, &target).await;
    }
    Ok(answer)
}

/// The body of every read's answer.
#[derive(serde::Serialize)]
struct Answer<'a> {
    data: &'a serde_json::value::RawValue,
    staleness: &'a Staleness,
    consistency_token: &'a str,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, Value>,
}

/// Marks an answer in which some row's personal fields are shown.
#[derive(Clone, Copy)]
struct PersonalDataShown;

