//! Reviews of offline intents: the conflicts that no rule merges (stage, amount, the same
//! quote line changed on both sides). Each shows the base, the server's side ("theirs") and
//! the intent's ("mine"); resolving one is a command (`POST
//! /v1/opportunities/{id}/reviews/{review_id}/resolve` on the command API).

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use tidemark_events::policy::{self, Action, Owned, Subject};
use tidemark_http::{Principal, Problem, ProblemPath, ProblemQuery};
use tidemark_projectors::Opportunities;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::cache::Cached;
use crate::freshness::database;
use crate::paging::{cursor, cursors, page, page_size, page_sizes};
use crate::read::{AskedBound, BoundParams, Refusal};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(my_reviews)).routes(routes!(get_review))
}

/// A review as the API shows it: each side parsed, its status, and its resolution.
fn view(opportunity_id: Uuid, opportunity_name: &str, version: i64, opened: Value, resolved: Option<Value>) -> Value {
    let side = |v: &Value| v.as_str().and_then(|text| serde_json::from_str::<Value>(text).ok()).unwrap_or(Value::Null);
    let mut resolution = resolved.clone().unwrap_or(Value::Null);
    if let Some(value) = resolved.as_ref().map(|r| side(&r["value"])) {
        resolution["value"] = value;
    }
    json!({
        "id": opened["review_id"],
        "opportunity_id": opportunity_id,
        "opportunity_name": opportunity_name,
        // The version to base the next change on, once resolved.
        "opportunity_version": version,
        "subject": opened["subject"],
        "quote_id": opened["quote_id"],
        "author": opened["author"],
        "intent": opened["intent"],
        "reason": opened["reason"],
        "base": side(&opened["base"]),
        "theirs": side(&opened["theirs"]),
        "mine": side(&opened["mine"]),
        "theirs_version": opened["theirs_version"],
        "status": if resolved.is_some() { "resolved" } else { "open" },
        "resolution": resolution,
    })
}

/// The reviews of the intents `user` recorded, open ones unless `all`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Mine {
    user: String,
    all: bool,
    after: Option<Uuid>,
    limit: i64,
}

impl Mine {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let rows = sqlx::query!(
            r#"SELECT r.review_id, r.opportunity_id, o.name, o.version, r.opened, r.resolved
               FROM offline_reviews r JOIN opportunities o ON o.id = r.opportunity_id
               WHERE r.tenant_id = $1 AND r.author = $2 AND (r.open OR $3) AND ($4::uuid IS NULL OR r.review_id > $4)
               ORDER BY r.review_id LIMIT $5"#,
            tenant,
            self.user,
            self.all,
            self.after,
            self.limit + 1,
        )
        .fetch_all(db)
        .await
        .map_err(database)?;
        let views: Vec<Value> = rows.into_iter().map(|r| view(r.opportunity_id, &r.name, r.version, r.opened, r.resolved)).collect();
        Ok(page(views, self.limit, |v| v["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_default()))
    }
}

/// One review: for its author, and for whoever may read its opportunity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct One {
    id: Uuid,
    subject: Subject,
}

impl One {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        let row = sqlx::query!(
            r#"SELECT r.opportunity_id, r.author, o.name, o.version, o.owner_id, o.team_id, o.shared_with, r.opened, r.resolved
               FROM offline_reviews r JOIN opportunities o ON o.id = r.opportunity_id
               WHERE r.review_id = $1 AND r.tenant_id = $2"#,
            self.id,
            tenant,
        )
        .fetch_optional(db)
        .await
        .map_err(database)?
        .ok_or_else(|| Problem::not_found(format!("no review {}", self.id)))?;
        if row.author != self.subject.user {
            let record = Owned { owner: &row.owner_id, team: row.team_id.as_deref(), shared_with: &row.shared_with };
            if let Err(denial) = policy::authorize(&self.subject, &Action::ReadOpportunity { record }) {
                return Err(Refusal::Denied { denial, action: "read-review", target: format!("review/{}", self.id) });
            }
        }
        Ok(Cached::data(view(row.opportunity_id, &row.name, row.version, row.opened, row.resolved)))
    }
}

fn statuses() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(["open", "all"])
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MineParams {
    /// `all` to list resolved reviews too; open ones only by default.
    #[param(schema_with = statuses)]
    status: Option<String>,
    #[param(schema_with = page_sizes)]
    limit: Option<i64>,
    #[param(schema_with = cursors)]
    cursor: Option<String>,
}

/// The reviews of the offline intents you recorded: each with the base, the server's side
/// (`theirs`) and yours (`mine`). Open ones, unless `status=all`.
#[utoipa::path(get, path = "/v1/reviews", params(MineParams, BoundParams), tag = "sync",
    responses((status = 200, description = "`data`: reviews; `next_cursor`; `staleness`"), (status = 400), (status = 503)))]
async fn my_reviews(State(state): State<AppState>, who: Principal, asked: AskedBound, ProblemQuery(params): ProblemQuery<MineParams>) -> Result<Response, Problem> {
    let all = match params.status.as_deref() {
        None | Some("open") => false,
        Some("all") => true,
        Some(other) => return Err(Problem::invalid_field("status", format!("'{other}' is not open or all"))),
    };
    let query = Mine { user: who.actor_id.clone(), all, after: cursor(params.cursor)?, limit: page_size(params.limit)? };
    state.read::<Opportunities>(&who, asked.with_default(false), query).await
}

/// One review, with both sides and the base.
#[utoipa::path(get, path = "/v1/reviews/{id}", params(BoundParams), tag = "sync",
    responses((status = 200, description = "`data`: the review; `staleness`"), (status = 403), (status = 404), (status = 503)))]
async fn get_review(State(state): State<AppState>, who: Principal, asked: AskedBound, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let query = One { id, subject: who.subject() };
    state.read::<Opportunities>(&who, asked.with_default(false), query).await
}
