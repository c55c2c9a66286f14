//! Quote commands: draft, revise, submit for approval, approve or reject a step, recall,
//! and record the customer's answer. A quote lives in its opportunity's stream, so each is
//! a command on the opportunity (`If-Match` is the opportunity's version).

use std::hash::Hash;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tidemark_events::opportunity::{self, OpportunityCommand};
use tidemark_events::approval::Acting;
use tidemark_events::quote::{Decision, LineItem, QuoteCommand};
use tidemark_events::{CommandMeta, Currency};
use tidemark_http::{Principal, Problem, ProblemJson, ProblemPath};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::api::{opportunity_decision, run, AppState, CommandAnswer, CommandContext};
use crate::writer::CommandError;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(draft_quote))
        .routes(routes!(revise_quote))
        .routes(routes!(submit_quote))
        .routes(routes!(approve_step))
        .routes(routes!(reject_step))
        .routes(routes!(recall_quote))
        .routes(routes!(accept_quote))
        .routes(routes!(decline_quote))
        .routes(routes!(preview_quote))
}

/// Runs one quote command; `make` builds it from the request's metadata (its time, its id).
async fn quote_command(
    state: AppState,
    ctx: CommandContext,
    (id, quote_id): (Uuid, Option<Uuid>),
    action: &'static str,
    body: impl Hash,
    make: impl FnOnce(&CommandMeta, Uuid, Acting) -> QuoteCommand,
) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    let (request, mut session) = ctx.request(&state, opportunity::AGGREGATE_TYPE, id, (action, id, quote_id, body));
    // A new quote's id follows from the command's and its sender's (the key's scope), so
    // that a retry names the same quote.
    let quote_id = quote_id.unwrap_or_else(|| Uuid::new_v5(&id, format!("{}\0{}", request.meta.actor_id, request.meta.command_id).as_bytes()));
    session.quote_id = Some(quote_id);
    session.new_quote = action == "draft-quote";
    let delegations = state.writer.delegated_to(&who.tenant_id, &who.actor_id, request.meta.received_at.date_naive()).await;
    let acting = Acting::new(&who.subject(), delegations);
    let cmd = make(&request.meta, quote_id, acting);
    run(&state, (request, session), action, opportunity_decision(OpportunityCommand::Quote(cmd), who.subject())).await
}

#[derive(Deserialize, ToSchema, Hash)]
struct DraftQuote {
    /// The opportunity's currency.
    #[schema(schema_with = tidemark_http::openapi::currency)]
    currency: Currency,
    /// The last day the customer may accept it (ISO 8601), today or later.
    #[schema(schema_with = tidemark_http::openapi::date)]
    valid_until: NaiveDate,
    #[schema(schema_with = line_items)]
    lines: Vec<LineItem>,
}

/// Quote lines as the domain takes them: decimal strings, a quantity above 0 (the pattern
/// says 0.0001 to 1000000), a unit price with at most four decimals, a discount percent of
/// 0 to 100 with at most two.
pub(crate) fn line_items() -> utoipa::openapi::Array {
    use tidemark_http::openapi::{decimal_pattern, matching, name};
    let line = utoipa::openapi::ObjectBuilder::new()
        .property("product", name())
        .property("quantity", matching(&format!(r"^([1-9][0-9]{{0,5}}(\.[0-9]{{1,4}})?|0\.[0-9]{{0,3}}[1-9]|{}(\.0{{1,4}})?)$", tidemark_events::quote::MAX_QUANTITY)))
        .property("unit_price", matching(&decimal_pattern(4)))
        .property("discount_percent", matching(r"^([0-9]{1,2}(\.[0-9]{1,2})?|100(\.0{1,2})?)$"))
        .required("product")
        .required("quantity")
        .required("unit_price")
        .examples([serde_json::json!({"product": "Truck", "quantity": "4", "unit_price": "2500.00", "discount_percent": "15"})])
        .build();
    utoipa::openapi::ArrayBuilder::new().items(line).min_items(Some(1)).max_items(Some(tidemark_events::quote::MAX_LINES)).build()
}

/// Drafts a quote on an open opportunity, in the opportunity's currency; the domain
/// computes its totals. The answer names the new quote (`quote_id`).
#[utoipa::path(post, path = "/v1/opportunities/{id}/quotes", request_body = DraftQuote, tag = "quotes",
    responses((status = 201, body = CommandAnswer), (status = 400), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn draft_quote(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>, ProblemJson(body): ProblemJson<DraftQuote>) -> Result<Response, Problem> {
    let fingerprint = (body.currency.clone(), body.valid_until, body.lines.clone());
    quote_command(state, ctx, (id, None), "draft-quote", fingerprint, move |meta, quote_id, _| QuoteCommand::Draft {
        quote_id,
        currency: body.currency,
        lines: body.lines,
        valid_until: body.valid_until,
        today: meta.received_at.date_naive(),
    })
    .await
}

#[derive(Deserialize, ToSchema, Hash)]
struct ReviseQuote {
    #[schema(schema_with = tidemark_http::openapi::date)]
    valid_until: NaiveDate,
    #[schema(schema_with = line_items)]
    lines: Vec<LineItem>,
}

/// Replaces a quote's lines with a new revision, a draft again. Refused while the quote is
/// pending approval (recall it first) and once the customer accepted it.
#[utoipa::path(post, path = "/v1/opportunities/{id}/quotes/{quote_id}/revisions", request_body = ReviseQuote, tag = "quotes",
    responses((status = 200, body = CommandAnswer), (status = 400), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn revise_quote(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath((id, quote_id)): ProblemPath<(Uuid, Uuid)>,
    ProblemJson(body): ProblemJson<ReviseQuote>,
) -> Result<Response, Problem> {
    let fingerprint = (body.valid_until, body.lines.clone());
    quote_command(state, ctx, (id, Some(quote_id)), "revise-quote", fingerprint, move |meta, quote_id, _| QuoteCommand::Revise {
        quote_id,
        lines: body.lines,
        valid_until: body.valid_until,
        today: meta.received_at.date_naive(),
    })
    .await
}

/// Submits a draft. The discount policy fixes the approvals it needs: none up to 10%
/// discount (approved at once), the team's manager up to 20%, the manager then finance
/// beyond, and finance for 500,000 or more. The quote is locked while pending.
#[utoipa::path(post, path = "/v1/opportunities/{id}/quotes/{quote_id}/submit", tag = "quotes",
    responses((status = 200, body = CommandAnswer), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn submit_quote(State(state): State<AppState>, ctx: CommandContext, ProblemPath((id, quote_id)): ProblemPath<(Uuid, Uuid)>) -> Result<Response, Problem> {
    quote_command(state, ctx, (id, Some(quote_id)), "submit-quote", (), |meta, quote_id, by| QuoteCommand::Submit { quote_id, by: by.user, at: meta.received_at }).await
}

#[derive(Deserialize, ToSchema, Hash, Default)]
struct StepDecision {
    /// Optional when approving; a rejection must say why.
    comment: Option<String>,
}

async fn decide(state: AppState, ctx: CommandContext, (id, quote_id): (Uuid, Uuid), decision: Decision, body: StepDecision) -> Result<Response, Problem> {
    let action = if decision == Decision::Approved { "approve-quote" } else { "reject-quote" };
    quote_command(state, ctx, (id, Some(quote_id)), action, body.comment.clone(), move |meta, quote_id, by| QuoteCommand::Decide {
        quote_id,
        decision,
        comment: body.comment,
        by,
        at: meta.received_at,
    })
    .await
}

/// Approves the step of the approval chain that waits for you (or for someone who
/// delegated to you). Nobody approves their own quote; a `403` says whom the step waits for.
#[utoipa::path(post, path = "/v1/opportunities/{id}/quotes/{quote_id}/approve", request_body = StepDecision, tag = "quotes",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn approve_step(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath(ids): ProblemPath<(Uuid, Uuid)>,
    body: Bytes,
) -> Result<Response, Problem> {
    // The body is optional here (none, `null` or `{}`): an approval needs no comment.
    let body = match body.is_empty() {
        true => StepDecision::default(),
        false => serde_json::from_slice::<Option<StepDecision>>(&body)
            .map_err(|e| Problem::bad_request(format!("the body is not a decision: {e}")))?
            .unwrap_or_default(),
    };
    decide(state, ctx, ids, Decision::Approved, body).await
}

/// Rejects the quote at the step that waits for you, with a comment; the rep may revise
/// and resubmit it.
#[utoipa::path(post, path = "/v1/opportunities/{id}/quotes/{quote_id}/reject", request_body = StepDecision, tag = "quotes",
    responses((status = 200, body = CommandAnswer), (status = 400), (status = 403), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn reject_step(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath(ids): ProblemPath<(Uuid, Uuid)>,
    ProblemJson(body): ProblemJson<StepDecision>,
) -> Result<Response, Problem> {
    decide(state, ctx, ids, Decision::Rejected, body).await
}

/// Takes a pending quote back (its submitter only); it becomes a draft again.
#[utoipa::path(post, path = "/v1/opportunities/{id}/quotes/{quote_id}/recall", tag = "quotes",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn recall_quote(State(state): State<AppState>, ctx: CommandContext, ProblemPath((id, quote_id)): ProblemPath<(Uuid, Uuid)>) -> Result<Response, Problem> {
    quote_command(state, ctx, (id, Some(quote_id)), "recall-quote", (), |meta, quote_id, by| QuoteCommand::Recall { quote_id, by: by.user, at: meta.received_at }).await
}

/// Records that the customer accepted an approved quote. The opportunity's amount follows
/// the quote's net total from then on (one synced quote at a time).
#[utoipa::path(post, path = "/v1/opportunities/{id}/quotes/{quote_id}/accept", tag = "quotes",
    responses((status = 200, body = CommandAnswer), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn accept_quote(State(state): State<AppState>, ctx: CommandContext, ProblemPath((id, quote_id)): ProblemPath<(Uuid, Uuid)>) -> Result<Response, Problem> {
    quote_command(state, ctx, (id, Some(quote_id)), "accept-quote", (), |meta, quote_id, _| QuoteCommand::Accept { quote_id, at: meta.received_at }).await
}

#[derive(Deserialize, ToSchema, Hash)]
struct DeclineQuote {
    #[schema(schema_with = tidemark_http::openapi::name)]
    reason: String,
}

/// Records that the customer declined an approved quote, and why.
#[utoipa::path(post, path = "/v1/opportunities/{id}/quotes/{quote_id}/decline", request_body = DeclineQuote, tag = "quotes",
    responses((status = 200, body = CommandAnswer), (status = 400), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn decline_quote(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath((id, quote_id)): ProblemPath<(Uuid, Uuid)>,
    ProblemJson(body): ProblemJson<DeclineQuote>,
) -> Result<Response, Problem> {
    quote_command(state, ctx, (id, Some(quote_id)), "decline-quote", body.reason.clone(), move |meta, quote_id, _| QuoteCommand::Decline {
        quote_id,
        reason: body.reason,
        at: meta.received_at,
    })
    .await
}

#[derive(Deserialize, ToSchema)]
struct PreviewQuote {
    #[schema(schema_with = line_items)]
    lines: Vec<LineItem>,
    /// The opportunity's team, whose manager a manager step waits for.
    team: Option<String>,
}

/// A quote's figures: exact decimal strings, two places for money.
#[derive(Serialize, ToSchema)]
struct PreviewTotals {
    list: String,
    discount: String,
    net: String,
    max_line_discount_percent: String,
    discount_percent: String,
}

/// One approval that a submission would need.
#[derive(Serialize, ToSchema)]
struct PreviewStep {
    /// manager or finance
    approver: &'static str,
    team: Option<String>,
    /// Who decides it, in words ("a manager of team east").
    description: String,
}

#[derive(Serialize, ToSchema)]
struct QuotePreview {
    totals: PreviewTotals,
    /// In order; empty when the quote needs no approval.
    approvals: Vec<PreviewStep>,
}

/// What a quote with these lines would total, and which approvals submitting it would
/// need: the discount policy itself, before anything is drafted or submitted. Appends
/// nothing.
#[utoipa::path(post, path = "/v1/quotes/preview", request_body = PreviewQuote, tag = "quotes",
    responses((status = 200, body = QuotePreview), (status = 400), (status = 401), (status = 422)))]
async fn preview_quote(_who: Principal, ProblemJson(body): ProblemJson<PreviewQuote>) -> Result<axum::Json<QuotePreview>, Problem> {
    let (totals, chain) = tidemark_events::quote::preview(&body.lines, body.team.as_deref()).map_err(|r| Problem::from(CommandError::Rejected(r)))?;
    Ok(axum::Json(QuotePreview {
        totals: PreviewTotals {
            list: totals.list.to_string(),
            discount: totals.discount.to_string(),
            net: totals.net.to_string(),
            max_line_discount_percent: totals.max_line_discount_percent.to_string(),
            discount_percent: totals.discount_percent.to_string(),
        },
        approvals: chain.iter().map(|step| PreviewStep { approver: step.approver.name(), team: step.team.clone(), description: step.to_string() }).collect(),
    }))
}
