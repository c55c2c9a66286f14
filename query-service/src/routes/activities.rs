//! Activity reads: "my open tasks", and the timeline of an opportunity.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use tidemark_http::Problem;
use utoipa::ToSchema;
use uuid::Uuid;

use axum::extract::State;
use axum::response::Response;
use tidemark_http::Principal;
use tidemark_projectors::Activities;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::cache::Cached;
use crate::freshness::database;
use crate::read::{AskedBound, BoundParams, Refusal};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(my_tasks))
}

/// An activity as the read model holds it.
#[derive(Serialize, ToSchema)]
pub struct ActivityRow {
    id: Uuid,
    /// call, email, meeting or task
    kind: String,
    /// account, contact or opportunity
    about: String,
    about_id: Uuid,
    subject: String,
    logged_by: String,
    occurred_at: Option<DateTime<Utc>>,
    due_date: Option<NaiveDate>,
    assignee: Option<String>,
    done: bool,
    logged_at: DateTime<Utc>,
    version: i64,
}

/// An activity as of a day.
#[derive(Serialize, ToSchema)]
pub struct ActivityView {
    #[serde(flatten)]
    row: ActivityRow,
    /// A task not done whose due date has passed.
    overdue: bool,
}

fn dated(rows: Vec<ActivityRow>, today: NaiveDate) -> Vec<ActivityView> {
    rows.into_iter().map(|row| ActivityView { overdue: row.kind == "task" && !row.done && row.due_date.is_some_and(|d| d < today), row }).collect()
}

/// Open tasks assigned to `user`, the most urgent first.
async fn open_tasks(db: &mut PgConnection, tenant: &str, user: &str, today: NaiveDate) -> Result<Vec<ActivityView>, Problem> {
    let rows = sqlx::query_as!(
        ActivityRow,
        "SELECT id, kind, about, about_id, subject, logged_by, occurred_at, due_date, assignee, done, logged_at, version
         FROM activities WHERE tenant_id = $1 AND assignee = $2 AND kind = 'task' AND NOT done ORDER BY due_date, logged_at, id",
        tenant,
        user,
    )
    .fetch_all(db)
    .await
    .map_err(database)?;
    Ok(dated(rows, today))
}

/// Everything logged on one record, newest first.
pub async fn timeline(db: &mut PgConnection, tenant: &str, about_id: Uuid, today: NaiveDate) -> Result<Vec<ActivityView>, Problem> {
    let rows = sqlx::query_as!(
        ActivityRow,
        "SELECT id, kind, about, about_id, subject, logged_by, occurred_at, due_date, assignee, done, logged_at, version
         FROM activities WHERE tenant_id = $1 AND about_id = $2 ORDER BY coalesce(occurred_at, logged_at) DESC, id DESC",
        tenant,
        about_id,
    )
    .fetch_all(db)
    .await
    .map_err(database)?;
    Ok(dated(rows, today))
}

/// The open tasks of `user`, marked overdue as of `today`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MyTasks {
    user: String,
    today: NaiveDate,
}

impl MyTasks {
    pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
        Ok(Cached::data(open_tasks(db, tenant, &self.user, self.today).await?))
    }
}

/// Your open tasks, the most urgent first, each marked `overdue` when its due date has
/// passed. Eventual unless asked otherwise.
#[utoipa::path(get, path = "/v1/tasks/mine", params(BoundParams), tag = "activities",
    responses((status = 200, description = "`data`: open tasks; `staleness`; `consistency_token`"), (status = 400), (status = 503)))]
async fn my_tasks(State(state): State<AppState>, who: Principal, asked: AskedBound) -> Result<Response, Problem> {
    let query = MyTasks { user: who.actor_id.clone(), today: Utc::now().date_naive() };
    state.read::<Activities>(&who, asked.with_default(false), query).await
}
