//! HTTP handlers: JSON in, problem+json or an outcome with its consistency token out.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tidemark_events::account::{self, AccountCommand};
use tidemark_events::opportunity::{self, NewOpportunity, OpportunityCommand, Outcome as DealOutcome, Stage};
use tidemark_events::policy::{self, Action, Denial, Owned, Subject};
use tidemark_events::offline::{Change, Intent, Preference, Side};
use tidemark_events::quote::QuoteCommand;
use tidemark_events::{CommandMeta, DomainEvent, Money, Rejection, POLICY_VERSION};
use tidemark_http::{audit, denials, ConsistencyToken, Gate, Position, Principal, Problem, ProblemJson, ProblemPath, TokenCodec, CONSISTENCY_TOKEN};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::writer::{fingerprint, new_aggregate_id, AppendedEvent, CommandError, CommandRequest, Decide, FollowUps, Outcome, Writer};
use tidemark_events::opportunity::Opportunity;
use tidemark_events::{Aggregate, AnyAggregate};

/// The decision of a command on one kind of aggregate: its state (none when new; not found
/// when the id names another kind), decided by that aggregate's own `decide`, its events
/// wrapped for the writer.
pub(crate) fn decision<A: Aggregate>(command: A::Command) -> impl FnOnce(Option<&AnyAggregate>) -> Result<Vec<DomainEvent>, CommandError> {
    move |state| {
        let state = state.map(|any| A::of(any).ok_or(Rejection::NotFound)).transpose()?;
        Ok(A::decide(state, &command)?.into_iter().map(A::event_into_any).collect())
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) writer: Arc<Writer>,
    pub(crate) lead_rules: Arc<Vec<tidemark_events::assignment::Rule>>,
    pub(crate) teams: Arc<tidemark_events::teams::Teams>,
    pub(crate) keys: Arc<dyn tidemark_privacy::KeyStore>,
    pub(crate) pool: sqlx::PgPool,
    /// Sends what another writer owns to that writer.
    pub(crate) forwarding: crate::forward::Forwarding,
    registry_url: String,
    code_version: String,
    tokens: TokenCodec,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Tidemark command API",
    description = "Commands change the world: each accepted one becomes events on Kafka. Every answer carries a consistency token for read-your-writes."
))]
struct ApiDoc;

/// The command API. `lead_rules` assign captured leads; `teams` say who may be named as a
/// colleague.
pub fn router(
    writer: Arc<Writer>,
    pool: sqlx::PgPool,
    (registry_url, code_version): (String, String),
    tokens: TokenCodec,
    gate: Arc<Gate>,
    (lead_rules, teams): (Vec<tidemark_events::assignment::Rule>, tidemark_events::teams::Teams),
) -> axum::Router {
    let keys = Arc::new(tidemark_privacy::PgKeyStore::new(pool.clone()));
    let metrics = writer.metrics().clone();
    let scrape = tidemark_http::telemetry::Scrape { pool: pool.clone(), metrics: metrics.clone() };
    let forwarding = crate::forward::Forwarding::new(writer.clone());
    let state = AppState { writer, lead_rules: Arc::new(lead_rules), teams: Arc::new(teams), keys, pool, forwarding: forwarding.clone(), registry_url, code_version, tokens };
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(open_account))
        .routes(routes!(create_opportunity))
        .routes(routes!(move_stage))
        .routes(routes!(change_amount))
        .routes(routes!(change_close_date))
        .routes(routes!(close_opportunity))
        .routes(routes!(share_opportunity))
        .routes(routes!(unshare_opportunity))
        .merge(crate::quotes::routes())
        .merge(crate::delegations::routes())
        .merge(crate::activities::routes())
        .merge(crate::contacts::routes())
        .merge(crate::leads::routes())
        .merge(crate::erasure::routes())
        .merge(crate::engagements::routes())
        .merge(crate::sync::routes())
        .routes(routes!(healthz))
        .merge(tidemark_http::telemetry::routes(scrape))
        .with_state(state)
        .split_for_parts();
    tidemark_http::finish(router, api, gate, metrics).layer(axum::middleware::from_fn_with_state(forwarding, crate::forward::to_owner))
}

impl From<CommandError> for Problem {
    fn from(error: CommandError) -> Problem {
        let detail = error.to_string();
        match error {
            CommandError::Rejected(Rejection::NotFound | Rejection::QuoteNotFound(_)) => Problem::not_found(detail),
            CommandError::Rejected(Rejection::InvalidField { field, message }) => Problem::invalid_field(field, message),
            CommandError::Rejected(rejection) => {
                let problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, rejection.rule(), "A domain rule refused the command", detail)
                    .with("rule", rejection.rule());
                match rejection.field() {
                    Some(field) => problem.with("field", field),
                    None => problem,
                }
            }
            CommandError::VersionConflict { current, .. } => {
                Problem::new(StatusCode::CONFLICT, "version-conflict", "The aggregate changed since you read it", detail)
                    .with("current_version", current)
            }
            CommandError::Denied(denial) => tidemark_http::denials::problem(denial),
            CommandError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "The Idempotency-Key belongs to another request",
                detail,
            ),
            CommandError::Unavailable(_) => Problem::unavailable(detail),
            // Never seen by a client: `forward` sends the command to the owner instead.
            CommandError::NotOwner { shard } => {
                Problem::new(StatusCode::MISDIRECTED_REQUEST, crate::forward::NOT_OWNER, "Another writer owns the command's shard", detail).with("shard", shard)
            }
            CommandError::Internal { reference } => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Tidemark failed", detail).with("reference", reference.to_string())
            }
            // Not a 503: a retry meets the same record until an operator resolves it.
            CommandError::Unreadable { .. } => Problem::new(
                StatusCode::CONFLICT,
                "stream-unreadable",
                "The aggregate's history cannot be read",
                format!("{detail}. Retrying will not help until an operator skips that record (`tidemark quarantine`)."),
            )
            .with("retryable", false),
        }
    }
}

/// What every command request carries besides its body: the principal and the headers
/// that govern concurrency and retries.
pub(crate) struct CommandContext {
    pub(crate) principal: Principal,
    expected_version: Option<i64>,
    idempotency_key: Option<String>,
    causation_id: Option<String>,
    pub(crate) rationale: Option<String>,
    /// The caller's session so far: the answer's token adds this command's write to it.
    session: Option<ConsistencyToken>,
}

impl FromRequestParts<AppState> for CommandContext {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let text = |name: &str| -> Result<Option<String>, Problem> {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().map(|s| s.trim().to_string()).map_err(|_| Problem::bad_request(format!("header {name} must be visible ASCII"))))
                .transpose()
        };
        let expected_version = match text("if-match")? {
            None => None,
            Some(tag) => Some(
                tag.trim_start_matches("W/")
                    .trim_matches('"')
                    .parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0)
                    .ok_or_else(|| Problem::bad_request(format!("If-Match: '{tag}' is not a version such as \"3\"")))?,
            ),
        };
        let idempotency_key = text("idempotency-key")?;
        if let Some(key) = &idempotency_key {
            if key.is_empty() || key.len() > 255 {
                return Err(Problem::bad_request("Idempotency-Key must have 1 to 255 characters"));
            }
        }
        let causation_id = text("x-causation-id")?;
        if let Some(id) = &causation_id {
            tidemark_http::text::require_id("X-Causation-Id", id)?;
        }
        let rationale = text("x-rationale")?;
        if rationale.is_some() && !policy::may_state_rationale(&principal.subject()) {
            let denial = Denial { code: "rationale-not-allowed", reason: "X-Rationale is for automations whose policy lets them state one".into() };
            return Err(denials::deny(&state.pool, &principal, "state-rationale", "command", denial).await);
        }
        let session = text("consistency-token")?
            .map(|t| state.tokens.decode(&principal.tenant_id, &t).map_err(|e| Problem::bad_request(e.to_string()).with("field", "Consistency-Token")))
            .transpose()?;
        Ok(CommandContext {
            principal,
            expected_version,
            idempotency_key,
            causation_id,
            rationale,
            session,
        })
    }
}

impl CommandContext {
    pub(crate) fn request(self, state: &AppState, aggregate_type: &'static str, aggregate_id: Uuid, content: impl std::hash::Hash) -> (CommandRequest, Session) {
        let key = self.idempotency_key.clone();
        self.request_keyed(state, aggregate_type, aggregate_id, key, content)
    }

    /// The caller's session, to which answers add their writes.
    pub(crate) fn session(&self, state: &AppState) -> Session {
        Session { principal: self.principal.clone(), asked: self.session.clone(), tokens: state.tokens.clone(), quote_id: None, new_quote: false }
    }

    /// A request under a key of its own: one of several commands that one HTTP request
    /// carries (an offline batch), each with its own key.
    pub(crate) fn request_keyed(&self, state: &AppState, aggregate_type: &'static str, aggregate_id: Uuid, key: Option<String>, content: impl std::hash::Hash) -> (CommandRequest, Session) {
        let idempotent = key.is_some();
        let command_id = key.unwrap_or_else(|| Uuid::now_v7().to_string());
        let p = self.principal.clone();
        let session = self.session(state);
        let request = CommandRequest {
            meta: CommandMeta {
                command_id,
                tenant_id: p.tenant_id,
                actor_id: p.actor_id,
                actor_kind: p.actor_kind,
                client_id: p.client_id,
                correlation_id: p.correlation_id,
                causation_id: self.causation_id.clone(),
                policy_version: POLICY_VERSION.to_string(),
                code_version: state.code_version.clone(),
                rationale: self.rationale.clone(),
                received_at: Utc::now(),
            },
            aggregate_type,
            aggregate_id,
            expected_version: self.expected_version,
            idempotent,
            fingerprint: fingerprint(content),
        };
        (request, session)
    }

    /// A command that creates an aggregate, whose id follows from the Idempotency-Key if
    /// there is one (see [`new_aggregate_id`]).
    pub(crate) fn request_new(self, state: &AppState, aggregate_type: &'static str, content: impl std::hash::Hash) -> (CommandRequest, Session) {
        let (mut request, session) = self.request(state, aggregate_type, Uuid::nil(), content);
        request.aggregate_id = match request.idempotent {
            true => new_aggregate_id(&request.meta, aggregate_type),
            // Any id will do: one of a shard this writer owns spares a forwarding.
            false => state.writer.new_id(),
        };
        (request, session)
    }
}

/// Who sent the command, and the token its answer builds on.
pub(crate) struct Session {
    principal: Principal,
    asked: Option<ConsistencyToken>,
    tokens: TokenCodec,
    /// The quote a quote command is about, named in the answer; `new_quote` when it drafts one.
    pub(crate) quote_id: Option<Uuid>,
    pub(crate) new_quote: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CommandAnswer {
    id: Uuid,
    version: i64,
    consistency_token: String,
    events: Vec<AppendedEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quote_id: Option<Uuid>,
}

/// The session's token, with these events' writes added.
pub(crate) fn consistency_token<'a>(session: &Session, events: impl Iterator<Item = &'a AppendedEvent>) -> String {
    let positions: Vec<Position> = events.map(|e| Position { topic: e.topic.clone(), partition: e.partition, offset: e.offset }).collect();
    let written = ConsistencyToken::from_positions(&positions);
    session.tokens.encode(&session.principal.tenant_id, &session.asked.clone().map_or(written.clone(), |asked| asked.merge(&written)))
}

fn answer(outcome: Outcome, session: Session) -> Response {
    let token = consistency_token(&session, outcome.events.iter());
    let status = if outcome.created || session.new_quote { StatusCode::CREATED } else { StatusCode::OK };
    let mut headers = HeaderMap::new();
    headers.insert(CONSISTENCY_TOKEN, HeaderValue::from_str(&token).expect("tokens are ASCII"));
    headers.insert(header::ETAG, HeaderValue::from_str(&format!("\"{}\"", outcome.version)).expect("ASCII"));
    if outcome.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    let body = CommandAnswer { id: outcome.aggregate_id, version: outcome.version, consistency_token: token, events: outcome.events, quote_id: session.quote_id };
    (status, headers, Json(body)).into_response()
}

/// Authorizes a change against the opportunity as the writer holds it, then decides.
pub(crate) fn opportunity_decision(cmd: OpportunityCommand, subject: Subject) -> impl FnOnce(Option<&AnyAggregate>) -> Result<Vec<DomainEvent>, CommandError> {
    move |state| {
        let state = state.map(|any| Opportunity::of(any).ok_or(Rejection::NotFound)).transpose()?;
        if let Some(o) = state {
            may_change(o, &cmd, &subject)?;
        }
        Ok(Opportunity::decide(state, &cmd)?.into_iter().map(DomainEvent::Opportunity).collect())
    }
}

/// Whether `subject` may give `cmd` on the opportunity as the writer holds it.
pub(crate) fn may_change(o: &Opportunity, cmd: &OpportunityCommand, subject: &Subject) -> Result<(), CommandError> {
    // An approval step is decided by its approver, whom the domain names; not by whoever
    // may change the opportunity.
    if matches!(cmd, OpportunityCommand::Quote(QuoteCommand::Decide { .. })) {
        return Ok(());
    }
    let amount = match cmd {
        OpportunityCommand::ChangeAmount { amount }
        | OpportunityCommand::Offline { intent: Intent { change: Change::ChangeAmount { amount }, .. }, .. }
        | OpportunityCommand::ResolveReview { edited: Some(Side::Amount(amount)), .. } => Some(amount),
        _ => None,
    };
    let shared_with: Vec<String> = o.shared_with.iter().cloned().collect();
    let record = Owned { owner: &o.owner_id, team: o.team_id.as_deref(), shared_with: &shared_with };
    policy::authorize(subject, &Action::ChangeOpportunity { record, amount }).map_err(CommandError::Denied)
}

/// Runs a command and answers; a denial is recorded for auditors on the way out.
pub(crate) async fn run(
    state: &AppState,
    call: (CommandRequest, Session),
    action: &str,
    decide: impl FnOnce(Option<&AnyAggregate>) -> Result<Vec<DomainEvent>, CommandError> + Send + 'static,
) -> Result<Response, Problem> {
    run_with(state, call, action, Box::new(decide), None).await
}

/// Runs a command and the commands that follow from it in one transaction (see
/// [`Writer::execute_with`](crate::writer::Writer::execute_with)), and answers for the first.
#[tracing::instrument(name = "command", skip_all, fields(
    action,
    aggregate = request.aggregate_type,
    id = %request.aggregate_id,
    command_id = %request.meta.command_id,
    correlation_id = %request.meta.correlation_id,
))]
pub(crate) async fn run_with(
    state: &AppState,
    (request, session): (CommandRequest, Session),
    action: &str,
    decide: Decide,
    follow_ups: Option<FollowUps>,
) -> Result<Response, Problem> {
    let target = format!("{}/{}", request.aggregate_type, request.aggregate_id);
    let command_id = request.meta.command_id.clone();
    match state.writer.execute_with(request, decide, follow_ups).await {
        Ok(outcome) => Ok(answer(outcome, session)),
        Err(e) => Err(refused(state, &session.principal, (action, &target, &command_id), e).await),
    }
}

/// The problem for a command the writer did not accept; a denial, or a refusal of the domain
/// (or of an older version), is recorded for auditors on the way.
pub(crate) async fn refused(state: &AppState, who: &Principal, (action, target, command_id): (&str, &str, &str), error: CommandError) -> Problem {
    match error {
        CommandError::Denied(denial) => denials::deny(&state.pool, who, action, target, denial).await,
        CommandError::Rejected(Rejection::NotYours { code, message }) => denials::deny(&state.pool, who, action, target, Denial { code, reason: message }).await,
        e @ (CommandError::Rejected(_) | CommandError::VersionConflict { .. } | CommandError::IdempotencyKeyReused) => {
            let rule = match &e {
                CommandError::Rejected(r) => r.rule(),
                CommandError::VersionConflict { .. } => "version-conflict",
                _ => "idempotency-key-reused",
            };
            // The audit trail outlives erasure, so it keeps no refused personal value.
            let reason = match &e {
                CommandError::Rejected(r) if r.field().is_some_and(|field| tidemark_events::personal::is_personal(target, field)) => {
                    let field = r.field().unwrap_or_default();
                    format!("{field}: the value given is not valid (not recorded: personal data)")
                }
                _ => e.to_string(),
            };
            audit::record_rejection(&state.pool, who, audit::Refused { action, target, command_id, rule, reason: &reason }).await;
            e.into()
        }
        e => e.into(),
    }
}

/// Refuses early what the policy refuses without looking at any record.
pub(crate) async fn authorize(state: &AppState, who: &Principal, action: Action<'_>, target: &str) -> Result<(), Problem> {
    match policy::authorize(&who.subject(), &action) {
        Ok(()) => Ok(()),
        Err(denial) => Err(denials::deny(&state.pool, who, action.name(), target, denial).await),
    }
}

#[derive(Deserialize, ToSchema, Hash)]
struct OpenAccount {
    /// The account's name, e.g. "Acme GmbH".
    #[schema(schema_with = tidemark_http::openapi::name)]
    name: String,
}

/// Opens an account.
#[utoipa::path(post, path = "/v1/accounts", request_body = OpenAccount, tag = "accounts",
    responses((status = 201, body = CommandAnswer), (status = 400), (status = 422), (status = 503)))]
async fn open_account(State(state): State<AppState>, ctx: CommandContext, ProblemJson(body): ProblemJson<OpenAccount>) -> Result<Response, Problem> {
    authorize(&state, &ctx.principal, Action::OpenAccount, "account/new").await?;
    let call = ctx.request_new(&state, account::AGGREGATE_TYPE, ("open-account", &body));
    let cmd = AccountCommand::Open { name: body.name };
    run(&state, call, "open-account", decision::<account::Account>(cmd)).await
}

#[derive(Deserialize, ToSchema, Hash)]
struct CreateOpportunity {
    account_id: Uuid,
    #[schema(schema_with = tidemark_http::openapi::name)]
    name: String,
    #[schema(schema_with = tidemark_http::openapi::name)]
    owner_id: String,
    #[schema(schema_with = tidemark_http::openapi::money)]
    amount: Money,
    /// ISO 8601 date, e.g. 2026-12-31.
    #[schema(schema_with = tidemark_http::openapi::date)]
    close_date: NaiveDate,
}

/// Creates an opportunity on an account; it starts at the first stage (Prospecting, 10%).
#[utoipa::path(post, path = "/v1/opportunities", request_body = CreateOpportunity, tag = "opportunities",
    responses((status = 201, body = CommandAnswer), (status = 400), (status = 422), (status = 503)))]
async fn create_opportunity(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemJson(body): ProblemJson<CreateOpportunity>,
) -> Result<Response, Problem> {
    let who = ctx.principal.clone();
    authorize(&state, &who, Action::CreateOpportunity { owner: &body.owner_id, amount: &body.amount }, "opportunity/new").await?;
    let account_exists = state.writer.exists(&who.tenant_id, account::AGGREGATE_TYPE, body.account_id).await;
    let call = ctx.request_new(&state, opportunity::AGGREGATE_TYPE, ("create-opportunity", &body));
    let cmd = OpportunityCommand::Create(NewOpportunity {
        account_id: body.account_id,
        account_exists,
        name: body.name,
        owner_id: body.owner_id,
        // The creator's team: a manager's deals land in the manager's team.
        team_id: who.team.clone(),
        amount: body.amount,
        close_date: body.close_date,
    });
    run(&state, call, "create-opportunity", opportunity_decision(cmd, who.subject())).await
}

async fn change(state: AppState, ctx: CommandContext, id: Uuid, cmd: OpportunityCommand) -> Result<Response, Problem> {
    let subject = ctx.principal.subject();
    let call = ctx.request(&state, opportunity::AGGREGATE_TYPE, id, (id, &cmd));
    run(&state, call, "change-opportunity", opportunity_decision(cmd, subject)).await
}

fn open_stages() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(opportunity::STAGES.iter().map(|(stage, _)| *stage).filter(|s| !s.is_closed()).map(Stage::name))
}

#[derive(Deserialize, ToSchema)]
struct MoveStage {
    /// Prospecting, Qualification, Proposal or Negotiation (closing goes through /close).
    #[schema(schema_with = open_stages)]
    stage: Stage,
}

/// Moves an open opportunity to another open stage; its probability follows the stage.
#[utoipa::path(post, path = "/v1/opportunities/{id}/stage", request_body = MoveStage, tag = "opportunities",
    params(("If-Match" = Option<String>, Header, description = "expected version, e.g. \"3\"", pattern = r#"^(W/)?"?[0-9]{1,18}"?$"#)),
    responses((status = 200, body = CommandAnswer), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn move_stage(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>, ProblemJson(body): ProblemJson<MoveStage>) -> Result<Response, Problem> {
    change(state, ctx, id, OpportunityCommand::MoveStage { stage: body.stage }).await
}

#[derive(Deserialize, ToSchema)]
struct ChangeAmount {
    #[schema(schema_with = tidemark_http::openapi::money)]
    amount: Money,
}

/// Changes the amount (in the opportunity's currency).
#[utoipa::path(post, path = "/v1/opportunities/{id}/amount", request_body = ChangeAmount, tag = "opportunities",
    responses((status = 200, body = CommandAnswer), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn change_amount(State(state): State<AppState>, ctx: CommandContext, ProblemPath(id): ProblemPath<Uuid>, ProblemJson(body): ProblemJson<ChangeAmount>) -> Result<Response, Problem> {
    change(state, ctx, id, OpportunityCommand::ChangeAmount { amount: body.amount }).await
}

#[derive(Deserialize, ToSchema)]
struct ChangeCloseDate {
    #[schema(schema_with = tidemark_http::openapi::date)]
    close_date: NaiveDate,
}

/// Changes the expected close date. The close date is a preference: between this and offline
/// intents, the last writer wins by the time each was written.
#[utoipa::path(post, path = "/v1/opportunities/{id}/close-date", request_body = ChangeCloseDate, tag = "opportunities",
    responses((status = 200, body = CommandAnswer), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn change_close_date(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath(id): ProblemPath<Uuid>,
    ProblemJson(body): ProblemJson<ChangeCloseDate>,
) -> Result<Response, Problem> {
    crate::sync::set_preference_now(&state, ctx, id, Preference::CloseDate, Some(body.close_date.to_string())).await
}

fn outcomes() -> utoipa::openapi::Object {
    tidemark_http::openapi::one_of(DealOutcome::names())
}

#[derive(Deserialize, ToSchema)]
struct CloseOpportunity {
    #[schema(schema_with = outcomes)]
    outcome: DealOutcome,
    #[schema(schema_with = tidemark_http::openapi::name)]
    reason: String,
}

/// Closes the opportunity as won or lost, with a reason; it refuses every change afterwards.
#[utoipa::path(post, path = "/v1/opportunities/{id}/close", request_body = CloseOpportunity, tag = "opportunities",
    responses((status = 200, body = CommandAnswer), (status = 404), (status = 409), (status = 422), (status = 503)))]
async fn close_opportunity(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath(id): ProblemPath<Uuid>,
    ProblemJson(body): ProblemJson<CloseOpportunity>,
) -> Result<Response, Problem> {
    change(state, ctx, id, OpportunityCommand::Close { outcome: body.outcome, reason: body.reason }).await
}

#[derive(Deserialize, ToSchema)]
struct ShareOpportunity {
    /// The user who may read the opportunity from now on.
    #[schema(schema_with = tidemark_http::openapi::name)]
    user_id: String,
}

/// Shares the opportunity with a user, who may then read it (not change it). Whoever may
/// change the opportunity may share it; closed opportunities may be shared too.
#[utoipa::path(post, path = "/v1/opportunities/{id}/shares", request_body = ShareOpportunity, tag = "opportunities",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn share_opportunity(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath(id): ProblemPath<Uuid>,
    ProblemJson(body): ProblemJson<ShareOpportunity>,
) -> Result<Response, Problem> {
    change(state, ctx, id, OpportunityCommand::Share { user_id: body.user_id }).await
}

/// Withdraws a user's share of the opportunity.
#[utoipa::path(delete, path = "/v1/opportunities/{id}/shares/{user_id}", tag = "opportunities",
    responses((status = 200, body = CommandAnswer), (status = 403), (status = 404), (status = 422), (status = 503)))]
async fn unshare_opportunity(
    State(state): State<AppState>,
    ctx: CommandContext,
    ProblemPath((id, user_id)): ProblemPath<(Uuid, String)>,
) -> Result<Response, Problem> {
    change(state, ctx, id, OpportunityCommand::Unshare { user_id }).await
}

/// Whether the service and its dependencies (PostgreSQL, broker, registry) answer, and
/// whether this writer still owns its partitions.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200), (status = 503)))]
async fn healthz(State(state): State<AppState>) -> Response {
    let postgres = tidemark_http::health::postgres_ok(&state.pool).await;
    let broker = {
        let writer = state.writer.clone();
        tokio::task::spawn_blocking(move || writer.broker_answers()).await.unwrap_or_else(|e| Err(e.to_string()))
    };
    let registry = tidemark_http::health::http_ok(&format!("{}/config", state.registry_url)).await;
    // A writer that a newer one fenced can append nothing: it must not take traffic.
    let writer = state.writer.fenced().map_or(Ok(()), Err);
    let checks = [("postgres", postgres), ("broker", broker), ("registry", registry), ("writer", writer)];
    tidemark_http::health::answer(&checks, json!({"writer": state.writer.name(), "shards": state.writer.owned_shards(), "start": state.writer.start_report()}))
}
