//! Leads: capture, assignment by the rules (as the `lead-router` automation, with its
//! rationale), qualification, and conversion into an account, a contact and an
//! opportunity.
//!
//! A conversion is one transaction: the lead's `LeadConverted` and the records it creates
//! become visible together or not at all.
//!
//! The router assigns a lead right after its capture, as a command of its own (its actor is
//! the automation, not the user who captured the lead). A crash between the two, or an
//! assignment that failed, leaves the lead unassigned; the router's sweep every few seconds
//! assigns such leads, and that is its only job. Every command it sends has an
//! Idempotency-Key derived from the lead, so a repeat is harmless.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use tidemark_events::assignment::{self, Rule};
use tidemark_events::lead::{self, Conversion, Lead, LeadCommand, LeadStatus, NewLead};
use tidemark_events::policy::{self, Action, Owned, Subject};
use tidemark_events::{account, contact, opportunity, ActorKind, AnyAggregate, CommandMeta, Money, Rejection, POLICY_VERSION};
use tidemark_http::{Problem, ProblemJson, ProblemPath};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::api::{decision, authorize, run, run_with, AppState, CommandAnswer, CommandContext};
use crate::writer::{fingerprint, CommandError, CommandRequest, Decide, FollowUps, Writer};

/// The automation principal that assigns leads.
pub const ROUTER: &str = "lead-router";
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(capture_lead))
        .routes(routes!(qualify_lead))
        .routes(routes!(disqualify_lead))
        .routes(routes!(convert_lead))
}

/// A command Tidemark sends itself, as `actor`, under `command_id` (an idempotency key).
fn own_command(code_version: &str, tenant: &str, (aggregate_type, id): (&'static str, Uuid), command_id: String, (actor, kind): (&str, ActorKind), correlation_id: &str, rationale: Option<String>) -> CommandRequest {
    CommandRequest {
        meta: CommandMeta {
            command_id: command_id.clone(),
            tenant_id: tenant.to_string(),
            actor_id: actor.to_string(),
            actor_kind: kind,
            client_id: "tidemark-lead-router".into(),
            correlation_id: correlation_id.to_string(),
            causation_id: Some(format!("lead/{id}")),
            policy_version: POLICY_VERSION.to_string(),
            code_version: code_version.to_string(),
            rationale,
            received_at: Utc::now(),
        },
        aggregate_type,
        aggregate_id: id,
        expected_version: None,
        idempotent: true,
        fingerprint: fingerprint(&command_id),
    }
}

/// Assigns the lead by the rules, as the router, and names the team it went to (none when
/// no rule matches). `turns` counts the leads each team got.
async fn assign(writer: &Writer, rules: &[Rule], (tenant, id, lead): (&str, Uuid, &Lead), turns: &HashMap<(String, String), u64>) -> Result<Option<String>, CommandError> {
    let router = Subject { user: ROUTER.into(), kind: ActorKind::Automation, roles: vec![], team: None };
    policy::authorize(&router, &Action::AssignLead).map_err(CommandError::Denied)?;
    let Some(chosen) = assignment::assign(rules, lead, |team| turns.get(&(tenant.to_string(), team.to_string())).copied().unwrap_or(0)) else {
        tracing::warn!(lead = %id, territory = %lead.territory, segment = %lead.segment, "no assignment rule matches the lead");
        return Ok(None);
    };
    let team = chosen.team_id.clone();
    let request = own_command(writer.code_version(), tenant, (lead::AGGREGATE_TYPE, id), format!("assign-lead-{id}"), (ROUTER, ActorKind::Automation), &id.to_string(), Some(chosen.rationale.clone()));
    let cmd = LeadCommand::Assign { owner_id: chosen.owner_id, team_id: chosen.team_id, rule: chosen.rationale, at: request.meta.received_at };
    match writer.execute(request, decision::<lead::Lead>(cmd)).await {
        Ok(_) | Err(CommandError::Rejected(Rejection::NoChange(_))) => Ok(Some(team)),
        Err(e) => Err(e),
    }
}

/// Leads each team was given so far, by (tenant, team).
fn turns(leads: &[(String, Uuid, Lead)]) -> HashMap<(String, String), u64> {
    let mut turns = HashMap::new();
    for (tenant, _, lead) in leads {
        if let Some(team) = &lead.team_id {
            *turns.entry((tenant.clone(), team.clone())).or_insert(0) += 1;
        }
    }
    turns
}

/// The records a conversion creates (the account unless it exists, the contact, the
/// opportunity), for the user who converted, under the conversion's correlation id: they
/// follow the lead's `LeadConverted` in its transaction.
fn conversion(code_version: String, tenant: String, id: Uuid) -> FollowUps {
    Box::new(move |after: &AnyAggregate| {
        let AnyAggregate::Lead(lead) = after else { return Vec::new() };
        let Some(c) = &lead.conversion else { return Vec::new() };
        let (account, contact, opportunity) = lead::conversion_commands(lead, c);
        let by = (c.converted_by.as_str(), ActorKind::User);
        let request = |kind: &'static str, target: Uuid| own_command(&code_version, &tenant, (kind, target), format!("convert-lead-{id}-{kind}"), by, &c.correlation_id, None);
        let mut steps: Vec<(CommandRequest, Decide)> = Vec::new();
        if let Some((account_id, cmd)) = account {
            steps.push((request(account::AGGREGATE_TYPE, account_id), Box::new(decision::<account::Account>(cmd))));
        }
        let (contact_id, cmd) = contact;
        steps.push((request(contact::AGGREGATE_TYPE, contact_id), Box::new(decision::<contact::Contact>(cmd))));
        let (opportunity_id, cmd) = opportunity;
        steps.push((request(opportunity::AGGREGATE_TYPE, opportunity_id), Box::new(decision::<opportunity::Opportunity>(cmd))));
        steps
    })
}

/// Runs until `shutdown`: every few seconds, assigns the leads left unassigned.
pub async fn route_leads(writer: Arc<Writer>, rules: Vec<Rule>, shutdown: CancellationToken) {
    loop {
        if let Err(e) = sweep(&writer, &rules).await {
            tracing::warn!(error = %e, "lead router: will try again");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

async fn sweep(writer: &Writer, rules: &[Rule]) -> Result<(), CommandError> {
    // Each writer assigns the leads of its own shards.
    let leads = writer.all_owned::<Lead>().await;
    let mut turns = turns(&leads);
    for (tenant, id, lead) in &leads {
        if lead.owner_id.is_none() && lead.status == LeadStatus::New && lead.erased_at.is_none() {
            if let Some(team) = assign(writer, rules, (tenant, *id, lead), &turns).await? {
                // The team's next lead takes the next turn.
                *turns.entry((tenant.clone(), team)).or_insert(0) += 1;
            }
        }
    }
    Ok(())
}

#[derive(Deserialize, ToSchema, Hash)]
struct CaptureLead {
    /// The person (personal data).
    #[schema(schema_with = tidemark_http::openapi::name)]
    name: String,
    #[schema(schema_with = tidemark_http::openapi::name)]
    company: String,
    #[schema(schema_with = tidemark_http::openapi::email)]
    email: Option<String>,
    #[schema(schema_with = tidemark_http::openapi::phone)]
    phone: Option<String>,
    /// Where the lead is, for the assignment rules (e.g. east, west).
    #[schema(schema_with = tidemark_http::openapi::name)]
    territory: String,
    /// e.g. smb or enterprise, for the assignment rules.
    #[schema(schema_with = tidemark_http::openapi::name)]
    segment: String,
    /// e.g. web form, trade fair, partner.
    #[schema(schema_with = tidemark_http::openapi::name)]
    source: String,
}

/// Captures a lead. The assignment rules give it an owner at once (the `lead-router`
/// automation's command, with its rationale); the time it took is the lead's assignment
/// latency.
#[utoipa::path(post, path = "/v1/leads", request_body = CaptureLead, tag = "leads",
    responses((status = 201, body = CommandAnswer), (status = 400), (status = 403), (status = 422), (status = 503)))]
async fn capture_lead(State(state): State<AppState>, ctx: CommandContext, ProblemJson(body): ProblemJson<CaptureLead>) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    authorize(&state, &who, Action::CaptureLead, "lead/new").await?;
    let call = ctx.request_new(&state, lead::AGGREGATE_TYPE, ("capture-lead", &body));
    let id = call.0.aggregate_id;
    let cmd = LeadCommand::Capture(NewLead {
        name: body.name,
        company: body.company,
        email: body.email,
        phone: body.phone,
        territory: body.territory,
        segment: body.segment,
        source: body.source,
        at: call.0.meta.received_at,
    });
    let answer = run(&state, call, "capture-lead", decision::<lead::Lead>(cmd)).await?;
    // Assign now; if that fails, the router's next sweep does it.
    if let Some(lead) = state.writer.state::<Lead>(&who.tenant_id, id).await {
        let leads = state.writer.all::<Lead>().await;
        if let Err(e) = assign(&state.writer, &state.lead_rules, (&who.tenant_id, id, &lead), &turns(&leads)).await {
            tracing::warn!(lead = %id, error = %e, "assigning the lead failed; the router will try again");
        }
    }
    Ok(answer)
}

/// Authorizes work on a lead against its owner and team, as the writer holds them.
async fn work(state: &AppState, ctx: CommandContext, id: Uuid, action: &'static str, cmd: LeadCommand, content: impl std::hash::Hash) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    let lead = state.writer.state::<Lead>(&who.tenant_id, id).await;
    let owner = lead.as_ref().and_then(|l| Some((l.owner_id.clone()?, l.team_id.clone())));
    let record = owner.as_ref().map(|(owner, team)| Owned { owner, team: team.as_deref(), shared_with: &[] });
    if lead.is_some() {
        authorize(state, &who, Action::WorkLead { record }, &format!("lead/{id}")).await?;
    }
    let call = ctx.request(state, lead::AGGREGATE_TYPE, id, (action, id, content));
    let follow_ups = (action == "convert-lead").then(|| conversion(state.writer.code_version().to_string(), who.tenant_id.clone(), id));
    run_with(state, call, action, Box::new(decision::<lead::Lead>(cmd)), follow_ups).await
}

/// Qualifies a lead (its owner, or a manager of its team).
#[utoipa::path(post, path = "/v1/leads/{id}/qualify", tag = "leads",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn qualify_lead(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>) -> Result<Response, Problem> {
    work(&state, ctx, id, "qualify-lead", LeadCommand::Qualify { at: Utc::now() }, ()).await
}

#[derive(Deserialize, ToSchema, Hash)]
struct DisqualifyLead {
    #[schema(schema_with = tidemark_http::openapi::name)]
    reason: String,
}

/// Disqualifies a lead, with a reason.
#[utoipa::path(post, path = "/v1/leads/{id}/disqualify", request_body = DisqualifyLead, tag = "leads",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn disqualify_lead(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>, ProblemJson(body): ProblemJson<DisqualifyLead>) -> Result<Response, Problem> {
    let reason = body.reason.clone();
    work(&state, ctx, id, "disqualify-lead", LeadCommand::Disqualify { reason: body.reason, at: Utc::now() }, reason).await
}

#[derive(Deserialize, ToSchema, Hash)]
struct ConvertLead {
    /// An account of the tenant to convert into; without it, one is opened (named after the company).
    account_id: Option<Uuid>,
    #[schema(schema_with = tidemark_http::openapi::name)]
    opportunity_name: String,
    #[schema(schema_with = tidemark_http::openapi::money)]
    amount: Money,
    #[schema(schema_with = tidemark_http::openapi::date)]
    close_date: NaiveDate,
}

/// Converts a qualified lead into an account (new or existing), a contact and an
/// opportunity owned by the lead's owner: one decision on the lead, then the three records,
/// all under the request's correlation id. The answer is the lead's; `GET /v1/leads/{id}`
/// names what was created.
#[utoipa::path(post, path = "/v1/leads/{id}/convert", request_body = ConvertLead, tag = "leads",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn convert_lead(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>, ProblemJson(body): ProblemJson<ConvertLead>) -> Result<Response, Problem> {
    let who = &ctx.principal;
    let existing_account = match body.account_id {
        Some(a) => Some((a, state.writer.exists(&who.tenant_id, account::AGGREGATE_TYPE, a).await)),
        None => None,
    };
    // In the lead's shard: the writer that owns the lead appends them in its transaction.
    let new_id = |what: &str| state.writer.id_beside(lead::AGGREGATE_TYPE, id, |n| Uuid::new_v5(&id, format!("{what}-{n}").as_bytes()));
    let cmd = LeadCommand::Convert(Conversion {
        existing_account,
        new_ids: (new_id("account"), new_id("contact"), new_id("opportunity")),
        opportunity_name: body.opportunity_name.clone(),
        amount: body.amount.clone(),
        close_date: body.close_date,
        by: who.actor_id.clone(),
        correlation_id: who.correlation_id.clone(),
    });
    work(&state, ctx, id, "convert-lead", cmd, &body).await
}
