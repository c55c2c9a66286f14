//! Activity commands: log a call, email or meeting, or set a task, on an account, a contact
//! or an opportunity; complete or reopen a task.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use tidemark_events::activity::{self, About, ActivityCommand, Kind, NewActivity, Target};
use tidemark_events::{account, contact};
use tidemark_events::policy::{Action, Owned};
use tidemark_http::{Problem, ProblemJson, ProblemPath};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::api::{decision, authorize, run, AppState, CommandAnswer, CommandContext};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(log_activity)).routes(routes!(complete_task)).routes(routes!(reopen_task))
}

fn kinds() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(Kind::names())
}

fn abouts() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(About::names())
}

#[derive(Deserialize, ToSchema, Hash)]
struct LogActivity {
    #[schema(schema_with = kinds)]
    kind: Kind,
    /// What the activity is about; `about_id` names an existing one.
    #[schema(schema_with = abouts)]
    about: About,
    about_id: Uuid,
    #[schema(schema_with = tidemark_http::openapi::name)]
    subject: String,
    /// Calls, emails and meetings: when it happened (default: now).
    occurred_at: Option<DateTime<Utc>>,
    /// Tasks (only tasks): the day it is due, and who does it (default: you; otherwise a
    /// member of one of the tenant's teams).
    #[schema(schema_with = tidemark_http::openapi::date)]
    due_date: Option<NaiveDate>,
    #[schema(schema_with = tidemark_http::openapi::name)]
    assignee: Option<String>,
    /// Say so to log on a closed opportunity; without it, that is refused.
    #[serde(default)]
    on_closed_opportunity: bool,
}

/// Logs a call, email or meeting, or sets a task, on an account, a contact or an
/// opportunity you can see. A closed opportunity takes one only with
/// `"on_closed_opportunity": true`.
#[utoipa::path(post, path = "/v1/activities", request_body = LogActivity, tag = "activities",
    responses((status = 201, body = CommandAnswer), (status = 400), (status = 403), (status = 422), (status = 503)))]
async fn log_activity(State(state): State<AppState>, ctx: CommandContext, ProblemJson(body): ProblemJson<LogActivity>) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    let (target, card) = match body.about {
        About::Opportunity => match state.writer.opportunity_card(&who.tenant_id, body.about_id).await {
            Some(card) => (if card.closed { Target::Closed } else { Target::Open }, Some(card)),
            None => (Target::Missing, None),
        },
        About::Account | About::Contact => {
            let kind = if body.about == About::Account { account::AGGREGATE_TYPE } else { contact::AGGREGATE_TYPE };
            (if state.writer.exists(&who.tenant_id, kind, body.about_id).await { Target::Open } else { Target::Missing }, None)
        }
    };
    let record = card.as_ref().map(|c| Owned { owner: &c.owner_id, team: c.team_id.as_deref(), shared_with: &c.shared_with });
    authorize(&state, &who, Action::LogActivity { record }, &format!("{}/{}", body.about.name(), body.about_id)).await?;
    let call = ctx.request_new(&state, activity::AGGREGATE_TYPE, ("log-activity", &body));
    let cmd = ActivityCommand::Log(NewActivity {
        kind: body.kind,
        about: body.about,
        about_id: body.about_id,
        target,
        on_closed: body.on_closed_opportunity,
        subject: body.subject,
        logged_by: who.actor_id,
        occurred_at: body.occurred_at,
        due_date: body.due_date,
        assignee_known: body.assignee.as_deref().is_some_and(|a| state.teams.knows(&who.tenant_id, a)),
        assignee: body.assignee,
        now: call.0.meta.received_at,
    });
    run(&state, call, "log-activity", decision::<activity::Activity>(cmd)).await
}

async fn task_status(state: AppState, ctx: CommandContext, id: Uuid, complete: bool) -> Result<Response, Problem> {
    let by = ctx.principal.actor_id.clone();
    let action = if complete { "complete-task" } else { "reopen-task" };
    let call = ctx.request(&state, activity::AGGREGATE_TYPE, id, (action, id));
    let at = call.0.meta.received_at;
    let cmd = if complete { ActivityCommand::Complete { by, at } } else { ActivityCommand::Reopen { by, at } };
    run(&state, call, action, decision::<activity::Activity>(cmd)).await
}

/// Completes a task (its assignee, or whoever set it).
#[utoipa::path(post, path = "/v1/activities/{id}/complete", tag = "activities",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn complete_task(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    task_status(state, ctx, id, true).await
}

/// Reopens a completed task.
#[utoipa::path(post, path = "/v1/activities/{id}/reopen", tag = "activities",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn reopen_task(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    task_status(state, ctx, id, false).await
}
