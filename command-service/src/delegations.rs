//! Delegation commands: an approver hands their approvals to someone else for a date
//! range, and may end that early.

use axum::extract::State;
use axum::response::Response;
use chrono::NaiveDate;
use serde::Deserialize;
use tidemark_events::delegation::{self, DelegationCommand};
use tidemark_events::ActorKind;
use tidemark_http::{Problem, ProblemJson, ProblemPath};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::api::{decision, run, AppState, CommandAnswer, CommandContext};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(grant_delegation)).routes(routes!(revoke_delegation))
}

#[derive(Deserialize, ToSchema, Hash)]
struct GrantDelegation {
    /// Who decides your approval steps in your stead (someone else).
    #[schema(schema_with = tidemark_http::openapi::name)]
    delegate: String,
    /// First and last day (inclusive, ISO 8601): at most 90 days, not ending in the past.
    #[schema(schema_with = tidemark_http::openapi::date)]
    valid_from: NaiveDate,
    #[schema(schema_with = tidemark_http::openapi::date)]
    valid_until: NaiveDate,
}

/// Hands your approval authority (your roles and team, as your token states them now) to
/// a delegate from `valid_from` to `valid_until`. Their decisions record that they acted
/// on your behalf, and your steps appear in their "my approvals".
#[utoipa::path(post, path = "/v1/delegations", request_body = GrantDelegation, tag = "approvals",
    responses((status = 201, body = CommandAnswer), (status = 403), (status = 422), (status = 503)))]
async fn grant_delegation(State(state): State<AppState>, ctx: CommandContext, ProblemJson(body): ProblemJson<GrantDelegation>) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    let call = ctx.request_new(&state, delegation::AGGREGATE_TYPE, ("grant-delegation", &body));
    let cmd = DelegationCommand::Grant {
        delegator: who.actor_id,
        // Roles in a token grant an automation nothing (see the policy).
        roles: if who.actor_kind == ActorKind::User { who.roles } else { vec![] },
        team: who.team,
        delegate: body.delegate,
        valid_from: body.valid_from,
        valid_until: body.valid_until,
        today: call.0.meta.received_at.date_naive(),
    };
    run(&state, call, "grant-delegation", decision::<delegation::Delegation>(cmd)).await
}

/// Ends a delegation now (the delegator only).
#[utoipa::path(delete, path = "/v1/delegations/{id}", tag = "approvals",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn revoke_delegation(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    let by = ctx.principal.actor_id.clone();
    let call = ctx.request(&state, delegation::AGGREGATE_TYPE, id, ("revoke-delegation", id));
    let cmd = DelegationCommand::Revoke { by, at: call.0.meta.received_at };
    run(&state, call, "revoke-delegation", decision::<delegation::Delegation>(cmd)).await
}
